"""Names and folders from outside (issue 13, item 6): host names that would collide with the
run's own outputs or leave the results folder, result folders holding FIFOs, devices and
symlinks, and output folders that are symlinks."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from imds_helpers.fleet import runner
from imds_helpers.model.errors import UsageError
from imds_helpers.fleet.fleet_read import read_columns
from imds_helpers.runbooks.runbook import validate_parameters
from imds_helpers.fleet.runner import plan_hosts
from imds_helpers.fleet.sidecar import SidecarError, read_regular_file, read_sidecar

from .conftest import NOTEBOOKS, make_report, write_host
from .test_cli import cli

REPO = Path(__file__).resolve().parents[2]
OK = ("network.tcp", "IMDS-NET-000", "ok", 1.0)


# ----- host names ----------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["summary.csv", "SUMMARY.HTML", "Summary.md"])
def test_host_named_like_a_run_output_is_refused(tmp_path: Path, param_file, host: str):
    """out/summary.csv/ (the host's folder) would stop the run from writing out/summary.csv -
    after every host had run. Case-insensitive: macOS and Windows file systems are."""
    files = [param_file("web-01", "behaviour: ok\n"), param_file("x", f"host: {host}\nbehaviour: ok\n")]
    with pytest.raises(UsageError) as info:
        plan_hosts(files, notebook="auto", out_dir=tmp_path / "out", notebooks_dir=NOTEBOOKS)
    assert f"host name {host!r} collides with the run's {host.lower()}" in str(info.value)
    assert str(files[1]) in str(info.value)
    assert not (tmp_path / "out").exists()


def test_host_from_the_file_name_colliding_is_refused_by_the_cli(tmp_path: Path):
    (tmp_path / "summary.md.yaml").write_text("behaviour: ok\n")
    done = cli("run", str(tmp_path / "summary.md.yaml"), "--out", str(tmp_path / "out"),
               "--notebooks-dir", str(NOTEBOOKS), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "collides with the run's summary.md" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
    assert not (tmp_path / "out").exists()


def test_similar_host_names_are_fine(tmp_path: Path, param_file):
    files = [param_file("summary"), param_file("summary.json"), param_file("my-summary.csv")]
    plans = plan_hosts(files, notebook="auto", out_dir=tmp_path / "out", notebooks_dir=NOTEBOOKS)
    assert [p.host for p in plans] == ["summary", "summary.json", "my-summary.csv"]


@pytest.mark.parametrize("kind", ["vm", "arc"])
@pytest.mark.parametrize("host", ["../x", "../../x", "a/b", "/etc/x", ".", "..", ".hidden",
                                  "a\\b", "x" * 129, "web\x1b[31m", "web 01"])
def test_runbook_host_name_is_the_runners_rule(kind: str, host: str):
    """Plain papermill (-p host_name ...) reaches validate_parameters, not the runner: the
    sidecar's default path is results/<host_name>.json, so a path here wrote outside."""
    with pytest.raises(UsageError) as info:
        validate_parameters(kind, {"host_name": host})
    assert str(info.value).startswith("host_name: host name ")
    assert "\x1b" not in str(info.value) and "\n" not in str(info.value)
    assert validate_parameters(kind, {"host_name": "web-01.contoso"})["host_name"] == "web-01.contoso"
    assert validate_parameters(kind, {})["host_name"] == ""          # '' = this machine


def test_plain_papermill_host_name_with_a_path_stops_the_first_cell(tmp_path: Path, monkeypatch):
    """One real papermill run of the real runbook: the first cell stops, nothing is written."""
    import papermill as pm

    monkeypatch.setenv("IMDS_RUNBOOK_ENDPOINT", "http://127.0.0.1:9")   # never a real IMDS
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(REPO / "notebooks" / "01_azure_vm_imds.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"host_name": "../../x"}, cwd=str(work), kernel_name="python3",
                            progress_bar=False, log_output=False)
    assert info.value.ename == "UsageError" and "host_name: host name '../../x'" in info.value.evalue
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["out.ipynb"]


# ----- result folders: only regular files, bounded, never through a symlink --------------------

def _hostile_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    write_host(folder, "web-01", make_report(OK))
    os.mkfifo(folder / "evil.json")                                  # no writer: open() blocks
    os.symlink("/dev/zero", folder / "zero.json")                    # read() never ends
    os.symlink(folder / "web-01" / "web-01.json", folder / "link.json")
    return folder


def test_report_skips_fifos_devices_and_symlinks_with_a_note(tmp_path: Path):
    folder = _hostile_folder(tmp_path)
    t0 = time.monotonic()
    done = cli("report", str(folder), "--format", "csv", timeout=30)
    assert time.monotonic() - t0 < 10
    assert done.returncode == 1 and done.stderr == ""              # unreadable rows -> 1
    rows = {line.split(",")[0]: line for line in done.stdout.splitlines()[1:]}
    assert sorted(rows) == ["evil", "link", "web-01", "zero"]
    assert "unreadable" in rows["evil"] and "is a FIFO (named pipe), not a regular file" in rows["evil"]
    assert "unreadable" in rows["zero"] and "is a symlink, not followed" in rows["zero"]
    assert "is a symlink, not followed" in rows["link"]            # the choice: no symlink is read
    assert ",ok," in rows["web-01"]


def test_read_columns_in_process_is_bounded_in_time(tmp_path: Path):
    folder = _hostile_folder(tmp_path)
    if os.geteuid() == 0:                                            # a device node itself
        os.mknod(folder / "dev.json", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    t0 = time.monotonic()
    cols = read_columns(folder)
    assert time.monotonic() - t0 < 5
    errors = dict(zip(cols["host"], cols["error"]))
    assert errors["evil"] == "is a FIFO (named pipe), not a regular file"
    if os.geteuid() == 0:                                            # a device node itself
        assert errors["dev"] == "is a character device, not a regular file"
    # named files (the runner's sidecars) go through the same reader
    cols = read_columns([folder / "evil.json", folder / "web-01" / "web-01.json"])
    assert cols["run_status"] == ["unreadable", "ok"]


def test_read_sidecar_refuses_what_is_not_a_regular_file(tmp_path: Path):
    os.mkfifo(tmp_path / "fifo.json")
    os.symlink("/dev/zero", tmp_path / "zero.json")
    for name, problem in (("fifo.json", "is a FIFO (named pipe), not a regular file"),
                          ("zero.json", "is a symlink, not followed")):
        with pytest.raises(SidecarError) as info:
            read_sidecar(tmp_path / name)
        assert info.value.problem == problem


def test_read_regular_file_is_bounded(tmp_path: Path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 100_000)
    assert len(read_regular_file(big, 1000)) == 1000
    assert read_regular_file(big, 10**6) == b" " * 100_000


# ----- output folders are never followed through a symlink --------------------------------------

def test_run_out_that_is_a_symlink_is_refused(tmp_path: Path, param_file):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    with pytest.raises(UsageError) as info:
        plan_hosts([param_file("web-01", "behaviour: ok\n")], notebook="auto",
                   out_dir=tmp_path / "link", notebooks_dir=NOTEBOOKS)
    assert str(info.value) == f"--out: {tmp_path / 'link'} is a symbolic link; output folders are " \
                              f"not followed (name the real folder)"
    done = cli("run", "--out", str(tmp_path / "link"), "--notebooks-dir", str(NOTEBOOKS), cwd=tmp_path)
    assert done.returncode == 2 and "is a symbolic link" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert list(elsewhere.iterdir()) == []


def test_planted_host_folder_symlink_is_refused(tmp_path: Path, param_file):
    """Someone who can write in a shared results folder plants out/web-01 -> /somewhere."""
    out, target = tmp_path / "out", tmp_path / "target"
    out.mkdir()
    target.mkdir()
    (out / "web-01").symlink_to(target)
    with pytest.raises(UsageError) as info:
        plan_hosts([param_file("web-01", "behaviour: ok\n")], notebook="auto", out_dir=out,
                   notebooks_dir=NOTEBOOKS)
    assert f"{out / 'web-01'} is a symbolic link" in str(info.value)
    assert list(target.iterdir()) == []


def test_symlink_planted_after_planning_is_not_followed(tmp_path: Path):
    folder, target = tmp_path / "out", tmp_path / "target"
    target.mkdir()
    folder.symlink_to(target)
    with pytest.raises(UsageError, match="is a symbolic link"):
        runner._make_real_dir(folder)
    runner._make_real_dir(tmp_path / "new" / "dir")
    assert (tmp_path / "new" / "dir").is_dir()


def test_report_output_that_is_a_symlink_is_refused(tmp_path: Path):
    folder = tmp_path / "results"
    write_host(folder, "web-01", make_report(OK))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "report.html").symlink_to(victim)
    done = cli("report", str(folder), "--format", "html", "--output", str(tmp_path / "report.html"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith(": --output: is a symbolic link; not followed (name the real file)\n")
    assert len(done.stderr.splitlines()) == 1
    assert victim.read_text() == "keep me" and (tmp_path / "report.html").is_symlink()

