"""The runner against real papermill executions of the stand-in runbooks.

One module-scoped run covers every status (kernel start-ups are the cost); the outer
timeout gets a run of its own.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from imds_helpers.model.errors import UsageError
from imds_helpers.fleet.runner import RunSummary, notebook_parameters, plan_hosts, run_hosts
from imds_helpers.fleet.sidecar import read_sidecar

from .conftest import NOTEBOOKS

BEHAVIOURS = {
    # host: (parameter file text, expected run status)
    "ok-host": ("behaviour: ok\n", "ok"),
    "findings-host": ("behaviour: findings\n", "findings"),
    "raise-host": ("behaviour: raise\n", "failed"),
    "nosidecar-host": ("behaviour: nosidecar\n", "failed"),
    "late-host": ("behaviour: raise_after_sidecar\n", "failed"),
    "sleep-host": ("behaviour: sleep\nsleep_s: 60\n", "timeout"),
    "exit-host": ("behaviour: exit\n", "dead_kernel"),
    "arc-file": ("host: arc-host\ntarget: arc\nbehaviour: ok\n", "ok"),
}


@pytest.fixture(scope="module")
def status_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSummary, Path, list]:
    root = tmp_path_factory.mktemp("status-run")
    params = root / "params"
    params.mkdir()
    files = []
    for name, (text, _) in BEHAVIOURS.items():
        (params / f"{name}.yaml").write_text(text)
        files.append(params / f"{name}.yaml")
    out = root / "out"
    # A stale sidecar from an earlier run must not be mistaken for this run's result.
    (out / "nosidecar-host").mkdir(parents=True)
    (out / "nosidecar-host" / "nosidecar-host.json").write_text('{"stale": true}')
    seen: list = []
    summary = run_hosts(files, notebook="auto", out_dir=out, workers=2, cell_timeout=2,
                        host_timeout=60, notebooks_dir=NOTEBOOKS, progress=seen.append)
    return summary, out, seen


def _row(summary: RunSummary, host: str):
    return next(r for r in summary.rows if r.host == host)


@pytest.mark.parametrize("name", list(BEHAVIOURS))
def test_each_status_comes_from_a_real_execution(status_run, name: str):
    summary, out, _ = status_run
    host = "arc-host" if name == "arc-file" else name
    row = _row(summary, host)
    assert row.status == BEHAVIOURS[name][1], row.error
    side = read_sidecar(out / host / f"{host}.json")          # always one valid sidecar
    assert side["host"] == host
    assert side["run"]["status"] == row.status
    assert side["run"]["error"] == row.error
    assert (row.error is None) == (row.status in ("ok", "findings"))


def test_status_details(status_run):
    summary, out, seen = status_run
    assert [r.host for r in summary.rows] == [
        "arc-host" if n == "arc-file" else n for n in BEHAVIOURS]          # file order
    assert sorted(r.host for r in seen) == sorted(r.host for r in summary.rows)
    assert summary.exit_code == 1
    assert summary.counts == {"ok": 2, "findings": 1, "failed": 3, "timeout": 1, "dead_kernel": 1}
    json.dumps(summary.to_dict())

    findings = _row(summary, "findings-host")
    assert (findings.verdict, findings.failing_codes) == ("fail", ("IMDS-TOKEN-004",))
    assert findings.tally == {"ok": 1, "warn": 0, "fail": 1, "skip": 0}
    assert "RuntimeError: boom from the test runbook" in _row(summary, "raise-host").error
    assert "without writing its sidecar" in _row(summary, "nosidecar-host").error
    late = _row(summary, "late-host")          # sidecar written, then a cell raised
    assert late.verdict == "ok" and "ValueError" in late.error
    assert "cell timeout of 2 s" in _row(summary, "sleep-host").error
    assert "kernel died" in _row(summary, "exit-host").error

    # the runner's minimal sidecar when the notebook wrote none
    timeout = read_sidecar(out / "sleep-host" / "sleep-host.json")
    assert (timeout["verdict"], timeout["checks"]) == ("fail", [])
    assert timeout["parameters"]["behaviour"] == "sleep"

    arc = _row(summary, "arc-host")
    assert arc.notebook == "arc"
    assert read_sidecar(out / "arc-host" / "arc-host.json")["notebook"] == "02_arc_himds"
    assert _row(summary, "ok-host").notebook == "vm"


def test_per_host_artefacts(status_run):
    summary, out, _ = status_run
    row = _row(summary, "ok-host")
    folder = out / "ok-host"
    assert row.notebook_path == str(folder / "ok-host.ipynb")
    assert row.html_path == str(folder / "ok-host.html")
    assert row.sidecar_path == str(folder / "ok-host.json")
    executed = json.loads(Path(row.notebook_path).read_text())
    code = "".join("".join(c["source"]) for c in executed["cells"] if c["cell_type"] == "code")
    html = Path(row.html_path).read_text()
    assert '"CODE_ONLY_" + "SECRET_MARKER"' in code          # the code is in the notebook ...
    assert "CODE_ONLY_" not in html                          # ... but not in the HTML report
    assert "sidecar_path" not in html                        # nor the parameters cells
    assert "OUTPUT_MARKER ok" in html                        # outputs and markdown are
    assert "Test runbook (vm)" in html
    params = read_sidecar(row.sidecar_path)["parameters"]
    assert params["behaviour"] == "ok"
    assert set(os.listdir(folder)) == {"ok-host.ipynb", "ok-host.html", "ok-host.json",
                                       "ok-host.log"}
    # a failed run still leaves its notebook (with papermill's error banner) and report
    failed = _row(summary, "raise-host")
    assert failed.notebook_path and failed.html_path
    assert "boom from the test runbook" in Path(failed.html_path).read_text()


def test_host_timeout_kills_worker_and_kernel(tmp_path: Path, param_file):
    pid_file = tmp_path / "kernel.pid"
    slow = param_file("slow", f"behaviour: sleep\nsleep_s: 120\npid_path: '{pid_file}'\n")
    t0 = time.monotonic()
    summary = run_hosts([slow], notebook="vm", out_dir=tmp_path / "out", workers=1,
                        cell_timeout=100, host_timeout=3, notebooks_dir=NOTEBOOKS)
    row = summary.rows[0]
    assert row.status == "timeout"
    assert "host timeout of 3 s" in row.error
    assert 3 <= row.duration_s < 10 and time.monotonic() - t0 < 30
    assert read_sidecar(row.sidecar_path)["run"]["status"] == "timeout"
    kernel_pid = int(pid_file.read_text())
    assert _gone(kernel_pid), f"kernel {kernel_pid} still running"
    assert row.notebook_path is not None     # partial notebook, saved cell by cell


def _gone(pid: int, wait_s: float = 5.0) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":   # zombie: dead, not reaped
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


# --------------------------------------------------------------------------- bad input


def _bad(tmp_path: Path, param_file, case: str):
    """(args, kwargs) for run_hosts that must be refused."""
    good = param_file("good", "behaviour: ok\n")
    kw = dict(notebook="vm", out_dir=tmp_path / "out", notebooks_dir=NOTEBOOKS)
    if case == "missing file":
        return [tmp_path / "nope.yaml"], kw
    if case == "invalid yaml":
        return [param_file("broken", "behaviour: [ok\n")], kw
    if case == "not a mapping":
        return [param_file("listy", "- a\n- b\n")], kw
    if case == "unknown notebook kind":
        return [good], {**kw, "notebook": "windows"}
    if case == "workers 0":
        return [good], {**kw, "workers": 0}
    if case == "workers fractional":
        return [good], {**kw, "workers": 1.5}
    if case == "workers absurd":
        return [good], {**kw, "workers": 10_000}
    if case == "timeout 0":
        return [good], {**kw, "host_timeout": 0}
    if case == "timeout negative":
        return [good], {**kw, "host_timeout": -5}
    if case == "timeout absurd":
        return [good], {**kw, "host_timeout": 1e9}
    if case == "timeout nan":
        return [good], {**kw, "host_timeout": float("nan")}
    if case == "cell timeout 0":
        return [good], {**kw, "cell_timeout": 0}
    if case == "out under a file":
        (tmp_path / "afile").write_text("x")
        return [good], {**kw, "out_dir": tmp_path / "afile" / "out"}
    if case == "duplicate host":
        return [good, param_file("other", "host: good\n")], kw
    if case == "bad host name":
        return [param_file("x", "host: ../etc\n")], kw
    if case == "unknown parameter":
        return [param_file("typo", "behavior: ok\n")], kw
    if case == "sidecar_path set":
        return [param_file("sp", "sidecar_path: /tmp/x.json\n")], kw
    if case == "target mismatch":
        return [param_file("mm", "target: arc\n")], kw
    if case == "bad target":
        return [param_file("bt", "target: windows\n")], {**kw, "notebook": "auto"}
    if case == "missing runbook":
        (tmp_path / "empty").mkdir()
        return [good], {**kw, "notebooks_dir": tmp_path / "empty"}
    if case == "unknown kernel":
        return [good], {**kw, "kernel_name": "no-such-kernel-xyz"}
    raise AssertionError(case)


BAD_CASES = ["missing file", "invalid yaml", "not a mapping", "unknown notebook kind",
             "workers 0", "workers fractional", "workers absurd", "timeout 0",
             "timeout negative", "timeout absurd", "timeout nan", "cell timeout 0",
             "out under a file", "duplicate host", "bad host name", "unknown parameter",
             "sidecar_path set", "target mismatch", "bad target", "missing runbook",
             "unknown kernel"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path, param_file, case: str):
    files, kw = _bad(tmp_path, param_file, case)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(UsageError) as info:
        run_hosts(files, **kw)
    message = str(info.value)
    assert message and "\n" not in message
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("case, expected", [
    ("invalid yaml", "invalid YAML at line 2: expected ',' or ']'"),
    ("unknown parameter", "unknown parameter 'behavior' for 01_azure_vm_imds.ipynb (did you mean 'behaviour'?)"),
    ("workers 0", "--workers: "),
    ("timeout absurd", "--timeout: "),
    ("unknown notebook kind", "unknown notebook kind 'windows'"),
    ("out under a file", "is not a directory"),
    ("missing file", "nope.yaml: parameter file not found"),
    ("unknown kernel", "no Jupyter kernel named 'no-such-kernel-xyz'"),
])
def test_usage_messages_name_the_problem(tmp_path: Path, param_file, case: str, expected: str):
    files, kw = _bad(tmp_path, param_file, case)
    with pytest.raises(UsageError) as info:
        run_hosts(files, **kw)
    assert expected in str(info.value)


def test_plan_host_names_and_parameters(tmp_path: Path, param_file):
    files = [param_file("web-01", "behaviour: ok\nsleep_s: 2020-01-02\n"),
             param_file("whatever", "host: db-02\nbehaviour: ok\n")]
    plans = plan_hosts(files, notebook="auto", out_dir=tmp_path / "out", notebooks_dir=NOTEBOOKS)
    assert [p.host for p in plans] == ["web-01", "db-02"]
    assert plans[0].parameters["sleep_s"] == "2020-01-02"            # YAML date -> ISO string
    assert "host" not in plans[1].parameters                         # consumed, not passed on
    assert plans[1].parameters["host_name"] == "db-02"
    assert plans[1].parameters["sidecar_path"] == str((tmp_path / "out" / "db-02" / "db-02.json").resolve())
    assert not (tmp_path / "out").exists()
    local = plan_hosts([], notebook="vm", out_dir=tmp_path / "out", notebooks_dir=NOTEBOOKS)
    assert len(local) == 1 and local[0].param_file is None


def test_notebook_parameters_reads_the_parameters_cell():
    names = notebook_parameters(NOTEBOOKS / "01_azure_vm_imds.ipynb")
    assert names == {"sidecar_path", "host_name", "behaviour", "sleep_s", "pid_path", "target"}
