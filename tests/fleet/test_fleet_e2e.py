"""`imds-runbook fleet -i INVENTORY --out DIR` over real SSH against the namespace fleet (issue 15):
every reachable host's report names its own fault and no other's - also the one whose Python is
masked, diagnosed through the shell collector -, the broken host is named for what it is, the summary counts are right, and no emulator canary appears anywhere
in the output folder or in what Ansible and the command printed.

The rig (tests/fleet/rig.py) is the ground truth: which fault each VM has, its vmId, SMBIOS UUID
and canary. One fleet run per module; each test reads one aspect of its output."""

from __future__ import annotations

import collections
import csv
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import skip_unless_fleet
from .rig import FAULT_CODES, KINDS, Rig, fleet

pytestmark = pytest.mark.timeout(600)

#: Findings that come from where the suite runs, the same on every VM. The rig hides Docker's
#: /.dockerenv from its VMs; podman's /run/.containerenv stays visible. Nothing else may be
#: non-OK on a healthy VM.
ENVIRONMENT_CODES = frozenset({"IMDS-PLAT-006"} if os.path.exists("/run/.containerenv") else ())

#: What a fleet run calls a host with a bundle (with or without findings) / without.
DIAGNOSED = {"ok", "findings"}


def _fleet_command_available() -> bool:
    try:
        from imds_helpers.cli import COMMANDS
    except ImportError:
        return False
    return "fleet" in COMMANDS


@dataclass(frozen=True)
class FleetRun:
    rig: Rig
    out: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def sidecar(self, name: str) -> dict:
        return json.loads((self.out / name / f"{name}.json").read_text())

    def summary_rows(self) -> dict[str, dict[str, str]]:
        with open(self.out / "summary.csv", newline="", encoding="utf-8") as fh:
            return {row["host"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> FleetRun:
    if not _fleet_command_available():
        pytest.skip("imds-runbook fleet not available")
    skip_unless_fleet()
    tmp = tmp_path_factory.mktemp("fleet-e2e")
    out = tmp / "out"
    with fleet(tmp) as rig:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "imds_helpers", "fleet", "-i", str(rig.inventory), "--out", str(out),
             "--forks", str(len(rig.hosts))],
            env=rig.ansible_env(), cwd=tmp, capture_output=True, text=True, timeout=540)
        seconds = time.monotonic() - started
        yield FleetRun(rig, out, proc.returncode, proc.stdout, proc.stderr, seconds)


def _non_ok_codes(checks: list[dict]) -> set[str]:
    return {c["code"] for c in checks if c["status"] in ("warn", "fail") and c.get("code")}


def _names_in(text: str, names) -> set[str]:
    return {n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)}


def test_the_run_finishes_and_says_so(run):
    assert "Traceback" not in run.stderr + run.stdout, run.stderr[-3000:]
    assert run.returncode in (0, 1), f"exit {run.returncode}:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    # findings that fail (no identity, DROP, unknown identity) make the run's exit say so
    assert run.returncode == 1
    print(f"imds-runbook fleet on {len(run.rig.hosts)} namespace VMs: {run.seconds:.1f} s")


def test_every_host_has_a_result_named_for_what_happened(run):
    got, want = {}, {}
    for name, host in run.rig.hosts.items():
        result = run.sidecar(name)["run"]
        got[name] = result["status"] if result["status"] not in DIAGNOSED else "diagnosed"
        want[name] = host.expect_status
    assert got == want, "\n".join(f"{n}: {run.sidecar(n)['run']}" for n in got if got[n] != want[n])


def test_each_report_names_its_own_fault_and_no_other(run):
    names = set(run.rig.hosts)
    for name, host in run.rig.hosts.items():
        if host.expect_status != "diagnosed":
            continue
        sidecar = run.sidecar(name)
        codes = _non_ok_codes(sidecar["checks"])
        assert set(host.expect_codes) <= codes, (name, codes)
        assert codes & FAULT_CODES == set(host.expect_codes), f"{name} carries another VM's fault: {codes}"
        assert codes - set(host.expect_codes) <= ENVIRONMENT_CODES, (name, codes)
        # the executed report a person reads says the same, and about this host only
        html = (run.out / name / f"{name}.html").read_text(errors="replace")
        shown = set(re.findall(r"IMDS-[A-Z]+-\d{3}", html))
        assert set(host.expect_codes) <= shown and shown & FAULT_CODES == set(host.expect_codes), (name, shown)
        assert _names_in(html, names) == {name}, f"{name}'s report names {_names_in(html, names) - {name}}"
        fails = any(c["code"] in host.expect_codes and c["status"] == "fail" for c in sidecar["checks"])
        assert sidecar["verdict"] == ("fail" if fails else "warn" if codes else "ok"), (name, sidecar["verdict"])
        if not host.expect_codes:        # the healthy ones: a token really came back
            token_code = "IMDS-ARC-000" if host.mode == "arc" else "IMDS-TOKEN-000"
            assert any(c["code"] == token_code and c["status"] == "ok" for c in sidecar["checks"]), name


def test_evidence_came_from_the_vm_it_is_filed_under(run):
    """A mix-up (a bundle fetched from one VM filed under another's name) fails here: the
    bundle's own hostname, vmId and SMBIOS UUID are the VM's, which only that VM can know."""
    from imds_helpers.analyze import analyze
    from imds_helpers.model.evidence import load

    for name, host in run.rig.hosts.items():
        path = run.out / name / "evidence.json"
        if host.expect_status != "diagnosed":
            assert not path.exists(), name
            continue
        bundle = load(path.read_bytes())
        assert bundle["host"]["hostname"] == name
        assert (bundle["host"]["smbios_uuid"] or "").lower() == host.smbios_uuid
        if not KINDS[host.kind].firewall_drop:        # the DROP VM never got its instance document
            assert bundle["host"]["vmId"] == host.vm_id, name
        # the report is this evidence's: analyzing the bundle here gives the same findings
        report = analyze(bundle)
        assert _non_ok_codes([c.to_dict() for c in report.checks]) == _non_ok_codes(run.sidecar(name)["checks"])


def test_the_broken_hosts_are_named_for_what_they_are(run):
    rows = run.summary_rows()
    for name, host in run.rig.hosts.items():
        row = rows[name]
        if host.expect_status == "unreachable":
            assert row["run_status"] == "unreachable" and "Connection refused" in row["error"], row
        else:
            assert row["run_status"] in DIAGNOSED and not row["error"], row


def test_each_host_was_collected_by_the_collector_it_can_run(run):
    """The VM whose interpreter is masked is diagnosed through the shell collector (and the
    fleet says so and why); every other VM through the probe."""
    for name, host in run.rig.hosts.items():
        if host.expect_status != "diagnosed":
            continue
        kind = KINDS[host.kind]
        fleet_block = run.sidecar(name)["fleet"]
        assert fleet_block["collector"] == kind.collector, name
        bundle = json.loads((run.out / name / "evidence.json").read_text())
        assert (bundle.get("collector", {}).get("name") == "imds-collect.sh") == (kind.collector == "shell"), name
        notes = [n for n in fleet_block["notes"] if "shell collector" in n]
        if kind.collector == "shell":       # which Python was found, and that it does not run
            assert notes and run.rig.vm_python in notes[0] and "does not run" in notes[0], fleet_block["notes"]
        else:
            assert not notes, fleet_block["notes"]
    assert any(KINDS[h.kind].collector == "shell" for h in run.rig.hosts.values())
    assert re.search(r"collect vm-nopython: collected .*\(shell collector", run.stderr), run.stderr[-2000:]


def test_the_summary_counts_are_right(run):
    rows = run.summary_rows()
    assert set(rows) == set(run.rig.hosts)
    expected = collections.Counter(h.expect_status for h in run.rig.hosts.values())
    got = collections.Counter("diagnosed" if r["run_status"] in DIAGNOSED else r["run_status"] for r in rows.values())
    assert got == expected
    for name, row in rows.items():
        host = run.rig.hosts[name]
        listed = {c.strip() for c in row["failing_codes"].split(",") if c.strip()}
        assert listed & FAULT_CODES == set(host.expect_codes), (name, listed)
    # the readable summaries list every host too, and the fleet notebook was executed
    assert "not executed" not in run.stdout + run.stderr
    for summary in ("summary.md", "summary.html", "summary.ipynb"):
        assert _names_in((run.out / summary).read_text(errors="replace"), run.rig.hosts) == set(run.rig.hosts)


def test_no_canary_anywhere(run):
    canaries = {name: host.canary for name, host in run.rig.hosts.items()}
    printed = run.stdout + run.stderr
    leaks = [(name, "output") for name, canary in canaries.items() if canary in printed]
    files = [p for p in run.out.rglob("*") if p.is_file()]
    assert len(files) > 20            # reports, evidence, summaries and Ansible's own log
    for path in files:
        data = path.read_bytes()
        leaks += [(name, str(path.relative_to(run.out))) for name, canary in canaries.items()
                  if canary.encode() in data]
    assert not leaks, f"emulator canaries (tokens or Arc secrets) found: {leaks}"
    # ...and they were live: the probe got tokens (each carrying its VM's canary) on these VMs
    issued = [name for name, host in run.rig.hosts.items() if host.expect_status == "diagnosed" and any(
        c["code"] in ("IMDS-TOKEN-000", "IMDS-ARC-000") and c["status"] == "ok" for c in run.sidecar(name)["checks"])]
    assert len(issued) >= 3, issued


def test_an_inventory_naming_one_vm_twice_or_expecting_another_vm_is_caught(tmp_path):
    """Identity is checked, not assumed (issue 15 item 3), over SSH: a second inventory name
    for the healthy VM's address, and vm-noid's entry expecting the healthy VM's vmId (a stale
    inventory). Each name gets identity_mismatch with the reason, and no report is rendered
    under a name whose evidence is not that machine's."""
    if not _fleet_command_available():
        pytest.skip("imds-runbook fleet not available")
    skip_unless_fleet(["vm-healthy", "vm-noid"])
    import yaml

    out = tmp_path / "out"
    with fleet(tmp_path, vms=["vm-healthy", "vm-noid"]) as small:
        healthy, noid = small.hosts["vm-healthy"], small.hosts["vm-noid"]
        inventory = yaml.safe_load(small.inventory.read_text())
        hosts = inventory["all"]["hosts"]
        hosts["vm-healthy-again"] = {k: v for k, v in hosts["vm-healthy"].items() if not k.startswith("imds_expect_")}
        hosts["vm-noid"]["imds_expect_vm_id"] = healthy.vm_id
        edited = tmp_path / "edited.yml"
        edited.write_text(yaml.safe_dump(inventory))
        proc = subprocess.run([sys.executable, "-m", "imds_helpers", "fleet", "-i", str(edited), "--out", str(out)],
                              env=small.ansible_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
        canaries = [h.canary for h in small.hosts.values()]
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        rows = {row["host"]: row for row in csv.DictReader(fh)}
    assert {name: row["run_status"] for name, row in rows.items()} == dict.fromkeys(
        ("vm-healthy", "vm-healthy-again", "vm-noid"), "identity_mismatch")
    assert "vm-healthy-again" in rows["vm-healthy"]["error"] and healthy.vm_id in rows["vm-healthy"]["error"]
    assert re.search(r"(?<![\w-])vm-healthy(?![\w-])", rows["vm-healthy-again"]["error"])
    assert healthy.vm_id in rows["vm-noid"]["error"] and noid.vm_id in rows["vm-noid"]["error"]
    for name in rows:
        assert not (out / name / f"{name}.html").exists(), name
    for path in (p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert not any(c.encode() in data for c in canaries), path
