"""A fleet run in which one host's kernel dies mid-run: ``imds-runbook run`` over four hosts,
and while the victim's runbook waits in its instance-metadata cell (a server that accepts and
never answers), this test SIGKILLs that host's kernel - as the OOM killer would. The victim is
recorded dead_kernel with a sidecar, a partial notebook, an HTML report and a summary row; the
other hosts complete and say what their matrix rows say."""

from __future__ import annotations

import csv

import pytest

from matrix.fault_matrix import problems

from .conftest import FLEET_VICTIM, FleetRun

pytestmark = pytest.mark.timeout(300)


def test_victim_was_killed_mid_cell(fleet_run: FleetRun):
    assert fleet_run.killed_pid is not None, (
        f"the victim's kernel was never caught in its instance cell (last status "
        f"{fleet_run.victim_cell_status!r}); stderr: {fleet_run.cli.stderr[-1500:]}")


def test_victim_is_recorded_dead_kernel(fleet_run: FleetRun):
    cli = fleet_run.cli
    sidecar = cli.sidecar(FLEET_VICTIM)
    assert sidecar["run"]["status"] == "dead_kernel", sidecar["run"]
    assert "kernel died" in sidecar["run"]["error"]
    assert sidecar["verdict"] == "fail" and sidecar["checks"] == []
    folder = cli.host_dir(FLEET_VICTIM)
    assert sidecar["run"]["notebook_path"] == str(folder / f"{FLEET_VICTIM}.ipynb")
    assert sidecar["run"]["html_path"] == str(folder / f"{FLEET_VICTIM}.html")   # from the partial notebook
    assert (folder / f"{FLEET_VICTIM}.html").stat().st_size > 0
    assert f"{FLEET_VICTIM}: dead_kernel" in cli.stderr


def test_the_other_hosts_completed(fleet_run: FleetRun):
    cli = fleet_run.cli
    for host, case in cli.hosts.items():
        if host == FLEET_VICTIM:
            continue
        sidecar = cli.sidecar(host)
        assert sidecar["run"]["status"] in ("ok", "findings"), (host, sidecar["run"])
        assert problems(case, sidecar) == [], host


def test_summary_has_every_host(fleet_run: FleetRun):
    cli = fleet_run.cli
    assert cli.returncode == 1
    for name in ("summary.csv", "summary.html", "summary.md"):
        text = (cli.out / name).read_text(encoding="utf-8")
        assert all(host in text for host in cli.hosts), name
        assert "dead_kernel" in text, name
    with open(cli.out / "summary.csv", newline="", encoding="utf-8") as fh:
        rows = {r["host"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == sorted(cli.hosts)
    statuses = [rows[h]["run_status"] for h in cli.hosts]
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(f"\nfleet: {len(cli.hosts)} hosts {counts}; victim kernel killed "
          f"{fleet_run.killed_after_s:.1f} s into the run; whole run {cli.duration_s:.1f} s")
    assert counts.get("dead_kernel") == 1
    assert sum(counts.get(s, 0) for s in ("ok", "findings")) == len(cli.hosts) - 1
