"""The fault matrix through the runbooks: every row of tests/matrix/fault_matrix.MATRIX without
extra arguments, executed by ``imds-runbook run`` (one CLI run, 2 workers) over the committed
parameters/training/<scenario>.yaml files. Per host: the run completed, the sidecar says what
the row says, the HTML report shows no code and no traceback, no cell raised."""

from __future__ import annotations

import csv
import html
import json
import re

import pytest

from matrix.fault_matrix import problems

from .conftest import RUNBOOK_CASES, TRAINING, CliRun

pytestmark = pytest.mark.timeout(420)   # the first test waits for the whole background run
IDS = [c.scenario for c in RUNBOOK_CASES]
TRACEBACK = "Traceback (most recent call last)"


def _host(run: CliRun, case) -> str:
    for host, row in run.hosts.items():
        if row is case:
            return host
    pytest.fail(f"no parameters/training/{case.scenario}.yaml: the row cannot run through a runbook")


def test_the_cli_run_finished(matrix_run: CliRun):
    run = matrix_run
    assert run.returncode == 1, run.stderr[-2000:]     # findings somewhere: exit 1, never 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == len(run.hosts), run.stderr[-2000:]   # one progress line per host, nothing else
    assert TRACEBACK not in run.stderr and TRACEBACK not in run.stdout
    assert f"{len(run.hosts)} host results" in run.stdout
    for name in ("summary.csv", "summary.html", "summary.md"):
        assert (run.out / name).is_file(), name
    with open(run.out / "summary.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["host"] for r in rows) == sorted(run.hosts)


@pytest.mark.parametrize("case", RUNBOOK_CASES, ids=IDS)
def test_sidecar_matches_the_row(matrix_run: CliRun, case):
    host = _host(matrix_run, case)
    sidecar = matrix_run.sidecar(host)
    assert sidecar["run"]["status"] in ("ok", "findings"), sidecar["run"]
    assert sidecar["run"]["error"] is None
    assert sidecar["parameters"]["emulator_scenario"] == case.scenario
    assert problems(case, sidecar) == []


@pytest.mark.parametrize("case", RUNBOOK_CASES, ids=IDS)
def test_html_report_has_no_code_and_no_traceback(matrix_run: CliRun, case):
    host = _host(matrix_run, case)
    folder = matrix_run.host_dir(host)
    assert matrix_run.sidecar(host)["run"]["html_path"] == str(folder / f"{host}.html")
    report = (folder / f"{host}.html").read_text(encoding="utf-8")
    nb = json.loads((folder / f"{host}.ipynb").read_text(encoding="utf-8"))
    markup = re.sub(r"<(style|script)\b.*?</\1>", "", report, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", "", markup))   # what a reader sees
    assert TRACEBACK not in report and TRACEBACK not in text
    code_cells = re.findall(r'class="jp-Cell jp-CodeCell[^"]*"', markup)
    assert code_cells and all("jp-mod-noInput" in c for c in code_cells)   # nbconvert --no-input
    assert "jp-InputPrompt" not in markup
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                assert line not in text, f"code input in the HTML report: {line!r}"
    assert "Verdict" in text and host in text


@pytest.mark.parametrize("case", RUNBOOK_CASES, ids=IDS)
def test_no_cell_raised(matrix_run: CliRun, case):
    host = _host(matrix_run, case)
    nb = json.loads((matrix_run.host_dir(host) / f"{host}.ipynb").read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "every code cell ran"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    assert TRACEBACK not in json.dumps(nb)


def test_every_training_file_is_a_row():
    """A training parameter file without a matrix row would never be asserted here."""
    assert sorted(p.stem for p in TRAINING.glob("*.yaml")) == sorted(c.scenario for c in RUNBOOK_CASES)
