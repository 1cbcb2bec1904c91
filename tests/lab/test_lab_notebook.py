"""The lab notebook (notebooks/04_fault_lab.ipynb) run headlessly by papermill, as a class's
grading would: a right and a wrong `answer` say so in the graded outputs, with the points the
engine's rules give; nothing before the answer names the case, the grade does; no canary anywhere.
The committed notebook (run by nbval) shows its seed's case without naming it."""

from __future__ import annotations

import json

import nbformat
import papermill
import pytest

from imds_helpers.runbooks import fault_lab
from imds_helpers.runbooks.resources import data_dir

NOTEBOOK = data_dir("notebooks") / "04_fault_lab.ipynb"
CANARY = "imdsrbcanaryl2nb0b00k"


def _texts(cell) -> str:
    """Everything a code cell shows (every output, every representation)."""
    parts = []
    for output in cell.get("outputs", []):
        parts += [output.get("text", ""), output.get("evalue", "")]
        parts += [v if isinstance(v, str) else json.dumps(v) for v in output.get("data", {}).values()]
    return "\n".join(parts)


def _split(nb) -> tuple[str, str, str]:
    """(outputs before the answer cell, the answer cell's, the ones after it)."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    at = next(i for i, c in enumerate(cells) if "lab_view.answer(" in c.source)
    return ("\n".join(_texts(c) for c in cells[:at]), _texts(cells[at]),
            "\n".join(_texts(c) for c in cells[at + 1:]))


def _run(tmp_path, monkeypatch, **parameters):
    monkeypatch.setenv("IMDS_EMULATOR_CANARY", CANARY)          # the kernel inherits it
    monkeypatch.setenv("IMDS_RUNBOOK_ENDPOINT", "http://127.0.0.1:9")
    out = tmp_path / "graded.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters=parameters, kernel_name="python3",
                               cwd=str(tmp_path), progress_bar=False, log_output=False, execution_timeout=120)
    return nbformat.read(out, as_version=4)


# seed 4's second VM case answers at once (seed 5's is a service that never answers: 16 s of deadlines)
@pytest.mark.parametrize("track, right, hints, with_fix, seed", [("arc", True, 1, True, 5), ("vm", False, 0, False, 4)])
def test_a_graded_run_says_right_or_wrong(tmp_path, monkeypatch, track, right, hints, with_fix, seed):
    round_ = 1
    case = fault_lab.draw(seed, track, None, round_ + 1)[round_]
    given = case.cause.lower() if right else case.distractors[-1]
    fix = ""
    if with_fix:
        with fault_lab.Lab(seed, track, None, round=round_) as lab:
            fix = next(c.letter for c in lab.fixes if c.title == case.fix)
    nb = _run(tmp_path, monkeypatch, seed=seed, track=track, round=round_, answer=given, fix=fix, hints=hints)

    before, graded, after = _split(nb)
    assert case.story in before and (f"Hint {hints} (costs" if hints else "No hint taken") in before
    assert case.scenario not in before and case.key not in before
    points = (fault_lab.CAUSE_POINTS - sum(fault_lab.HINT_COST[:hints]) + (fault_lab.FIX_POINTS if with_fix else 0)
              if right else 0)
    assert ("**Right.**" in graded) is right and ("**Not this time.**" in graded) is (not right)
    assert f"**{points} / {fault_lab.MAX_POINTS}**" in graded
    assert f"The cause is **{case.cause}" in graded and case.scenario in graded
    assert ("right fix" if with_fix else "no fix chosen") in graded
    assert case.cause in after and "Verdict" in after     # the runbook's full verdict names it too
    assert CANARY not in before + graded + after


def test_without_an_answer_it_says_how_to_answer_and_keeps_the_verdict(tmp_path, monkeypatch):
    nb = _run(tmp_path, monkeypatch, seed=3, track="vm")
    before, graded, after = _split(nb)
    case = fault_lab.draw(3, "vm")[0]
    assert "Set `answer` to a cause's letter or code" in graded
    assert "shown once you have answered" in after and case.cause not in after
    assert case.scenario not in before + graded + after and CANARY not in before + graded + after


def test_the_committed_notebook_shows_its_case_without_naming_it():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    defaults = {}
    exec(parameters.source, {}, defaults)                      # our own generated cell: seed = 7 ...
    case = fault_lab.draw(defaults["seed"], defaults["track"], defaults["difficulty"] or None,
                          defaults["round"] + 1)[defaults["round"]]
    shown = "\n".join(_texts(c) for c in nb.cells if c.cell_type == "code")
    assert case.story in shown and "Set `answer`" in shown
    assert case.scenario not in shown and case.key not in shown and defaults["answer"] == ""
