"""Finding codes by name: imds_helpers/model/catalog.py names every row once (``NET_TCP_TIMEOUT =
"IMDS-NET-011"``), and no other module of the package writes a code as a string literal - a
check says which finding it reports through the catalog's name, so a renumbered or mistyped
code is an ImportError, not a KeyError on a rare path."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from imds_helpers.model import catalog

from source_scan import docstring_ids

PACKAGE = Path(catalog.__file__).resolve().parents[1]
CODE = re.compile(r"IMDS-[A-Z]+-\d{3}")


def _names() -> dict[str, str]:
    return {name: value for name, value in vars(catalog).items()
            if re.fullmatch(r"[A-Z][A-Z0-9_]*", name) and isinstance(value, str) and CODE.fullmatch(value)}


def test_every_row_has_exactly_one_name_and_every_name_a_row():
    names = _names()
    assert sorted(names.values()) == sorted(catalog.CATALOG)   # one name per row, no name without a row
    for name, code in names.items():
        area = code.split("-")[1]
        assert name.startswith(area + "_"), f"{name} = {code!r}: a name starts with its area"


def code_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal outside docstrings that contains a finding code."""
    tree = ast.parse(source)
    skip = docstring_ids(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and CODE.search(node.value)]


def test_the_scan_finds_a_literal_and_ignores_docstrings_and_comments():
    source = ('"""Reports IMDS-NET-011."""\n'
              'CODE = "IMDS-NET-011"  # IMDS-NET-012\n'
              'def f():\n    """IMDS-ARC-010"""\n    return f"see IMDS-ARC-010 {CODE}"\n')
    assert code_literals(source) == [(2, "IMDS-NET-011"), (5, "see IMDS-ARC-010 ")]


def test_only_the_catalog_writes_finding_codes():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "model/catalog.py":
            continue
        hits = code_literals(path.read_text(encoding="utf-8"))
        if hits:
            found[relative] = hits
    assert found == {}, "use the names in imds_helpers/model/catalog.py: " + repr(found)
