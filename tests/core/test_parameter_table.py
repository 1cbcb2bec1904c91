"""One parameter table, everywhere: runbook.PARAMETERS is what each committed runbook's
parameters cell declares (names, types, defaults, help), what papermill infers from that
cell, and what parameters/<runbook>-defaults.yaml spells out. Rebuild them with
`python notebooks/build_notebooks.py` (plus --execute for the stored outputs) after editing it."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import pytest

from imds_helpers.model.errors import UsageError
from imds_helpers.fleet.paramfile import load_parameter_yaml
from imds_helpers.runbooks.runbook import NOTEBOOKS, PARAMETERS, validate_parameters
from imds_helpers.analyze.tokens import DEFAULT_RESOURCES

ROOT = Path(__file__).resolve().parents[2]
KINDS = sorted(NOTEBOOKS)


def table(kind: str) -> list:
    return [p for p in PARAMETERS if kind in p.runbooks]


def parameters_source(kind: str) -> str:
    nb = json.loads((ROOT / "notebooks" / f"{NOTEBOOKS[kind]}.ipynb").read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1 and cells[0]["cell_type"] == "code", "one code cell tagged 'parameters'"
    source = cells[0]["source"]
    return "".join(source) if isinstance(source, list) else source


def build_notebooks():
    spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "notebooks" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", KINDS)
def test_notebook_parameters_cell_is_the_table(kind):
    source = parameters_source(kind)
    statements = ast.parse(source).body
    assert all(isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) for s in statements), \
        "the parameters cell holds typed assignments only"
    declared = [(s.target.id, s.annotation.id, ast.literal_eval(s.value)) for s in statements]
    expected = [(p.name, p.annotation, p.default_for(kind)) for p in table(kind)]
    assert declared == expected
    for (_, _, value), p in zip(declared, table(kind)):   # 10 == 10.0 and 0 == False: the types too
        assert type(value) is type(p.default_for(kind)), p.name
    comments = [line.split("  # ", 1)[1] for line in source.splitlines()]
    assert comments == [p.help_for(kind) for p in table(kind)]


@pytest.mark.parametrize("kind", KINDS)
def test_papermill_infers_the_table(kind):
    papermill = pytest.importorskip("papermill")
    inferred = papermill.inspect_notebook(str(ROOT / "notebooks" / f"{NOTEBOOKS[kind]}.ipynb"))
    assert list(inferred) == [p.name for p in table(kind)]
    for p in table(kind):
        seen = inferred[p.name]
        assert (seen["inferred_type_name"], ast.literal_eval(seen["default"]), seen["help"]) == \
            (p.annotation, p.default_for(kind), p.help_for(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_yaml_is_the_table(kind):
    path = ROOT / "parameters" / f"{kind}-defaults.yaml"
    loaded = load_parameter_yaml(path)
    expected = {p.name: p.default_for(kind) for p in table(kind)}
    assert loaded == expected
    assert {k: type(v) for k, v in loaded.items()} == {k: type(v) for k, v in expected.items()}
    assert validate_parameters(kind, loaded) == expected == validate_parameters(kind, {})


@pytest.mark.parametrize("kind", KINDS)
def test_committed_files_are_what_the_build_writes(kind):
    """Comments and layout too: a hand edit is overwritten by the next build, so it fails here first."""
    build = build_notebooks()
    assert parameters_source(kind) == build.parameter_cell(kind).source
    assert (ROOT / build.DEFAULTS_YAML[kind]).read_text(encoding="utf-8") == build.defaults_yaml(kind)


def test_arc_checks_one_audience_the_one_check_requests_first():
    """The Arc challenge gets one token (api.arc_challenge_step asks for resources[0]):
    a second audience would be silently ignored, so the default has one and two are refused."""
    assert validate_parameters("arc", {})["resources"] == list(DEFAULT_RESOURCES[:1])
    assert validate_parameters("vm", {})["resources"] == list(DEFAULT_RESOURCES)
    assert validate_parameters("arc", {"resources": []})["resources"] == list(DEFAULT_RESOURCES[:1])
    with pytest.raises(UsageError) as err:
        validate_parameters("arc", {"resources": list(DEFAULT_RESOURCES)})
    assert str(err.value).startswith("resources: the Arc runbook checks one audience")


@pytest.mark.parametrize("kind, other", [("vm", "arc"), ("arc", "vm")])
def test_target_names_this_runbook(kind, other):
    assert validate_parameters(kind, {})["target"] == kind
    assert validate_parameters(kind, {"target": ""})["target"] == ""
    with pytest.raises(UsageError) as err:
        validate_parameters(kind, {"target": other})
    assert str(err.value) == f"target: is {other!r}, but this is the {kind} runbook ({NOTEBOOKS[kind]})"


def test_defaults_are_copies():
    values = validate_parameters("vm", {})
    values["resources"].append("https://example.invalid/")
    assert validate_parameters("vm", {})["resources"] == list(DEFAULT_RESOURCES)
