"""What a service's error text means is decided in one table (answers.ERROR_TEXTS), and every
error kind the taxonomy declares is produced somewhere (no kind that nothing can report)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from imds_helpers.model import answers
from imds_helpers.model.answers import ERROR_TEXTS, says
from imds_helpers.model.taxonomy import ErrorKind

PACKAGE = Path(answers.__file__).resolve().parents[1]


def _body(where: str, fragment: str) -> tuple[object, str]:
    """A parsed body and raw text in which ``fragment`` sits where the row looks for it."""
    body = {"error": fragment if where == "error" else "invalid_request",
            "error_description": f"Something: {fragment.upper()} here" if where in ("description", "text") else ""}
    return body, (f"<html>{fragment}</html>" if where == "body" else "")


@pytest.mark.parametrize("kind,where,fragment", [(k, w, f) for k, w, fs in ERROR_TEXTS for f in fs])
def test_every_row_of_the_table_is_what_says_reads(kind, where, fragment):
    body, raw = _body(where, fragment)
    assert says(kind, body, raw)
    assert not says(kind, {"error": "invalid_request", "error_description": "something else"}, "<html></html>")


def test_says_reads_only_the_field_a_row_names():
    # "identity not found" counts in error_description only, invalid_resource only as the whole error field.
    assert not says(ErrorKind.IDENTITY_NOT_FOUND, {"error": "identity not found", "error_description": ""})
    assert not says(ErrorKind.INVALID_RESOURCE, {"error": "not_invalid_resource_really", "error_description": ""})
    assert says(ErrorKind.INVALID_RESOURCE, {"error": "invalid_request", "error_description": "AADSTS500011: no"})
    assert not says(ErrorKind.NOT_IMDS, {"error": "unreachable"}, "")          # a "body" row reads the raw text
    assert says(ErrorKind.ARC_AGENT_UNAVAILABLE, {"error": "Agent_Disconnected"})  # "text": either field
    assert not says(ErrorKind.ARC_AGENT_UNAVAILABLE, "not a dict", "disconnected")


def _string_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.value.lower() for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_other_module_matches_the_service_error_texts():
    # The distinctive ones: phrases and AADSTS numbers ("api-version" is also a parameter name).
    fragments = {f for _, _, fs in ERROR_TEXTS for f in fs if " " in f or f.startswith("aadsts")}
    found = {}
    for path in sorted(PACKAGE.glob("*.py")):    # the checks (the emulator, which writes them, is a subpackage)
        if path.name == "answers.py":
            continue
        hits = sorted({f for literal in _string_literals(path) for f in fragments if literal == f})
        if hits:
            found[path.name] = hits
    assert found == {}, f"match service error texts through answers.says: {found}"


def test_every_error_kind_is_produced_somewhere():
    """Each kind is named as ``ErrorKind.X`` by some module other than the taxonomy (the transport
    produces them, answers.TRANSPORT_CODES / ERROR_TEXTS map them), so none is declared for nothing."""
    used = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name != "taxonomy.py":
            used |= set(re.findall(r"\bErrorKind\.([A-Z_]+)\b", path.read_text(encoding="utf-8")))
    assert sorted(set(ErrorKind.__members__) - used) == []
    # The kinds the service's words mean are each in the table.
    assert {k for k, _, _ in ERROR_TEXTS} >= {ErrorKind.IDENTITY_NOT_FOUND, ErrorKind.MULTIPLE_IDENTITIES,
                                              ErrorKind.INVALID_RESOURCE, ErrorKind.ARC_AGENT_UNAVAILABLE}
