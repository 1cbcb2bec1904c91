"""``imds-runbook run`` / ``report`` end to end, as a user runs them (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from imds_helpers.fleet.runner import SUMMARY_FILES

from .conftest import NOTEBOOKS, make_report, write_host

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "imds_helpers", *args], cwd=cwd or REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    write_host(folder, "web-01", make_report(("network.tcp", "IMDS-NET-000", "ok", 1.0)))
    write_host(folder, "web-02", make_report(("network.tcp", "IMDS-NET-002", "fail", 1.0)))
    (folder / "junk.json").write_text("{not json")
    return folder


def test_report_smoke(tmp_path: Path):
    folder = _results(tmp_path)
    done = cli("report", str(folder))
    assert done.returncode == 1, done.stderr            # findings + unreadable -> 1
    assert "web-01" in done.stdout and "web-02" in done.stdout and "junk" in done.stdout
    assert "3 host results: 1 ok, 1 findings, 1 unreadable" in done.stdout
    assert done.stderr == ""

    out = tmp_path / "summary.csv"
    done = cli("report", str(folder), "--format", "csv", "--output", str(out))
    assert done.returncode == 1 and done.stdout == ""
    assert list(pd.read_csv(out)["host"]) == ["junk", "web-01", "web-02"]

    for fmt, needle in (("html", 'id="T_imds_summary"'), ("markdown", "| web-02 | findings |")):
        done = cli("report", str(folder), "--format", fmt)
        assert needle in done.stdout

    ok_only = tmp_path / "ok"
    write_host(ok_only, "web-01", make_report(("network.tcp", "IMDS-NET-000", "ok", 1.0)))
    assert cli("report", str(ok_only)).returncode == 0


def test_report_bad_usage(tmp_path: Path):
    folder = _results(tmp_path)
    cases = [
        (["report", str(tmp_path / "nope")], "folder not found"),
        (["report", str(folder), "--format", "pdf"], "invalid choice"),
        (["report", str(folder), "--output", str(tmp_path / "no" / "dir" / "x.csv")], "does not exist"),
        (["report", str(folder), "--output", str(tmp_path)], "is a folder"),
        (["report", str(tmp_path / "results" / "web-01" / "web-01.json")], "not a folder"),
        (["report", str(_empty(tmp_path))], "no sidecar results"),
    ]
    for args, needle in cases:
        done = cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert needle in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert done.stdout == ""
    assert not (tmp_path / "no").exists()


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir(exist_ok=True)
    return tmp_path / "empty"


def test_run_smoke(tmp_path: Path):
    params = tmp_path / "params"
    params.mkdir()
    (params / "good.yaml").write_text("behaviour: ok\n")
    (params / "bad.yaml").write_text("behaviour: findings\n")
    out = tmp_path / "out"
    done = cli("run", str(params / "good.yaml"), str(params / "bad.yaml"), "--out", str(out),
               "--notebooks-dir", str(NOTEBOOKS), "--workers", "2", "--cell-timeout", "30",
               "--timeout", "90", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "[1/2]" in done.stderr and "[2/2]" in done.stderr          # not a TTY: plain lines
    assert "bad: findings (IMDS-TOKEN-004)" in done.stderr
    assert "good" in done.stdout and "2 host results: 1 ok, 1 findings" in done.stdout
    assert "out/summary.html" in done.stdout
    # what the run writes beside the host folders is the table host names are checked against
    assert {p.name for p in out.iterdir() if not p.is_dir()} == set(SUMMARY_FILES.values()) \
        == {"summary.csv", "summary.html", "summary.md"}
    for host in ("good", "bad"):
        assert {p.name for p in (out / host).iterdir()} >= {f"{host}.ipynb", f"{host}.html", f"{host}.json"}
    assert '<a href="good/good.html">report</a>' in (out / "summary.html").read_text()
    assert list(pd.read_csv(out / "summary.csv")["host"]) == ["bad", "good"]


def test_run_bad_usage_writes_nothing(tmp_path: Path):
    """The CLI path of the bad-input cases (all of them are covered in-process in test_runner)."""
    (tmp_path / "p.yaml").write_text("behaviour: [ok\n")
    out = tmp_path / "out"
    for args, needle in (
        (["run", str(tmp_path / "missing.yaml")], "parameter file not found"),
        (["run", "--workers", "0", str(tmp_path / "p.yaml")], "--workers"),
        (["run", "--notebook", "windows"], "invalid choice"),
    ):
        done = cli(*args, "--out", str(out), "--notebooks-dir", str(NOTEBOOKS), cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert needle in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


def test_cli_modules_import_no_pandas_or_papermill():
    code = ("import sys, imds_helpers.cli, imds_helpers.cli.run, imds_helpers.cli.report, "
            "imds_helpers.fleet.runner, imds_helpers.fleet.sidecar; "
            "heavy = {'pandas', 'papermill', 'nbformat', 'nbconvert', 'nbclient', 'jupyter_client', 'IPython'} & set(sys.modules); "
            "print(sorted(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
