"""``imds-runbook fleet`` end to end with the real playbook and ansible-playbook, over Ansible's
local connection: seven inventory hosts on this machine, each pointed at its own emulator (or at
its own fault; the one without Python collected by the shell collector), in the private namespace of tests/isolated.sh. The SSH fleet of namespace VMs
is tests/fleet/'s; this run proves the command, the playbook and the outputs on their own."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml

from imds_helpers.emulator import Emulator

from .conftest import ANSIBLE_PLAYBOOK, NO_ANSIBLE, in_netns

pytestmark = [
    pytest.mark.netns, pytest.mark.timeout(240),
    pytest.mark.skipif(not in_netns(), reason="needs the private namespace of tests/isolated.sh"),
    pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason=NO_ANSIBLE),
]


def test_fleet_over_the_local_connection(tmp_path):
    canary = f"CANARY{uuid.uuid4().hex}"
    leftovers = {p for name in ("imds-probe.pyz", "imds-collect.sh") for p in Path(tempfile.gettempdir()).glob(f"*/{name}")}
    with Emulator(mode="vm", scenario="vm-healthy", canary=canary) as healthy, \
            Emulator(mode="vm", scenario="vm-no-identity", canary=canary) as no_identity, \
            Emulator(mode="vm", scenario="vm-healthy", canary=canary) as impostor, \
            Emulator(mode="vm", scenario="vm-healthy", canary=canary) as shell_host, \
            Emulator(mode="vm", scenario="vm-accept-then-hang", canary=canary) as hang:
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "imds_target": "vm",
                     "imds_timeout": 3},
            "hosts": {
                "vm-ok": {"imds_endpoint": healthy.base_url, "imds_expect_vm_id": healthy.machine.vm_id.upper()},
                "vm-noid": {"imds_endpoint": no_identity.base_url},
                # no Python: the shell collector collects instead - or nothing does, when it is not given
                "vm-nopy": {"imds_python": "/nonexistent/python3", "imds_endpoint": shell_host.base_url,
                            "imds_expect_vm_id": shell_host.machine.vm_id},
                "vm-noshell": {"imds_python": "/nonexistent/python3", "imds_shell_collector": ""},
                "vm-down": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9},
                # the inventory says this is the healthy VM; another one answers
                "vm-wrong": {"imds_endpoint": impostor.base_url, "imds_expect_vm_id": healthy.machine.vm_id},
                "vm-slow": {"imds_endpoint": hang.base_url, "imds_collect_timeout": 2},
            }}}))
        out = tmp_path / "out"
        for host in ("vm-ok", "vm-noid", "vm-nopy", "vm-noshell", "vm-down", "vm-wrong", "vm-slow"):
            (out / host).mkdir(parents=True)     # so only the evidence files count as changes
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "imds_helpers", "fleet", "-i", str(inventory), "--out", str(out),
                               "--forks", "7"], capture_output=True, text=True, timeout=200)
        elapsed = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr[-3000:]

    with open(out / "summary.csv", newline="") as handle:
        rows = {row["host"]: row for row in csv.DictReader(handle)}
    assert {h: r["run_status"] for h, r in rows.items()} == {
        "vm-ok": "ok", "vm-noid": "findings", "vm-nopy": "ok", "vm-noshell": "no_python", "vm-down": "unreachable",
        "vm-wrong": "identity_mismatch", "vm-slow": "collect_timeout"}
    assert rows["vm-noid"]["failing_codes"] == "IMDS-TOKEN-001"
    assert "/nonexistent/python3" in rows["vm-noshell"]["error"] and "no shell collector" in rows["vm-noshell"]["error"]
    assert "port 9: Connection refused" in rows["vm-down"]["error"]
    assert healthy.machine.vm_id in rows["vm-wrong"]["error"] and impostor.machine.vm_id in rows["vm-wrong"]["error"]

    # each report is its own host's: its evidence came from its own emulator (a mix-up fails here)
    for host, emulator in (("vm-ok", healthy), ("vm-noid", no_identity), ("vm-nopy", shell_host)):
        sidecar = json.loads((out / host / f"{host}.json").read_text())
        assert sidecar["host"] == host and sidecar["evidence"]["vmId"] == emulator.machine.vm_id
        # which collector ran: the shell one only where Python is missing, and the report says why
        assert sidecar["fleet"]["collector"] == ("shell" if host == "vm-nopy" else "python"), host
        assert any("shell collector" in note for note in sidecar["fleet"]["notes"]) == (host == "vm-nopy"), host
        assert json.loads((out / host / "evidence.json").read_text())["host"]["vmId"] == emulator.machine.vm_id
        assert (out / host / f"{host}.html").is_file() and (out / host / f"{host}.ipynb").is_file()
    assert "IMDS-TOKEN-001" in (out / "vm-noid" / "vm-noid.html").read_text()
    assert "IMDS-TOKEN-001" not in (out / "vm-ok" / "vm-ok.html").read_text()
    assert not (out / "vm-wrong" / "vm-wrong.html").exists() and (out / "vm-wrong" / "evidence.json").is_file()
    for name in ("summary.html", "summary.md", "summary.ipynb"):
        assert (out / name).is_file(), name
    executed = json.loads((out / "summary.ipynb").read_text())
    assert any("vm-noshell" in json.dumps(cell.get("outputs", [])) for cell in executed["cells"])
    shell_bundle = json.loads((out / "vm-nopy" / "evidence.json").read_text())
    assert shell_bundle["collector"]["name"] == "imds-collect.sh"

    # progress per host, as results arrived, and the summary table
    assert "collecting from 7 hosts" in proc.stderr
    for host, status in (("vm-down", "unreachable"), ("vm-noshell", "no_python"), ("vm-ok", "collected"),
                         ("vm-nopy", r"collected .*\(shell collector: no Python >= 3\.10\)"),
                         ("vm-slow", "collect_timeout")):
        assert re.search(rf"\[\d/7\] collect {host}: {status}", proc.stderr), proc.stderr
    assert re.search(r"\[\d/3\] report vm-noid: findings", proc.stderr)
    assert ("7 host results: 2 ok, 1 findings, 1 unreachable, 1 no_python, 1 collect_timeout, 1 identity_mismatch"
            in proc.stdout)

    # nothing on the hosts changes: the only changes are the three evidence files written here
    recap = dict(re.findall(r"^(vm-\w+)\s+: ok=\d+\s+changed=(\d+)", (out / "_ansible" / "ansible.log").read_text(), re.M))
    assert recap == {"vm-ok": "1", "vm-noid": "1", "vm-wrong": "1", "vm-nopy": "1", "vm-noshell": "0", "vm-down": "0",
                     "vm-slow": "0"}
    # ... and the collectors are gone from the hosts' temporary folders, also where one was stopped
    assert {p for name in ("imds-probe.pyz", "imds-collect.sh")
            for p in Path(tempfile.gettempdir()).glob(f"*/{name}")} <= leftovers

    # no secret anywhere: not in a file of the results (Ansible's log included), not on the terminal
    leaks = [str(p) for p in out.rglob("*") if p.is_file() and canary.encode() in p.read_bytes()]
    assert leaks == [] and canary not in proc.stdout + proc.stderr
    print(f"fleet of 6 local hosts: {elapsed:.1f} s")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("su"), reason="needs root and su (become another user)")
def test_become_runs_the_probe_as_the_become_user_and_a_refused_become_is_named(tmp_path):
    """The probe reaches the host on standard input, also through become (su here: what sudo
    does for Ansible is the same wrapping); an account that cannot be become is auth_failed."""
    from imds_helpers.fleet import fleet_hosts as fh
    from imds_helpers.fleet.ansible_run import EVENTS_ENV, PLAYBOOK, EventReader
    from imds_helpers.fleet.fleet_run import build_probe

    probe = build_probe(tmp_path / "imds-probe.pyz")
    with Emulator(mode="vm", scenario="vm-healthy") as healthy:
        become = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                  "imds_endpoint": healthy.base_url, "imds_target": "vm", "imds_python": "/usr/bin/python3",
                  "imds_become": True, "ansible_become_method": "su", "ansible_become_user": "nobody"}
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {
            "as-nobody": {**become, "ansible_become_flags": "-s /bin/sh"},
            "nologin": become}}}))       # nobody's own shell refuses a login
        events = tmp_path / "events.jsonl"
        subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inventory), str(PLAYBOOK), "-e", f"imds_out_dir={tmp_path / 'out'}",
                        "-e", f"imds_probe={probe}"], env={**os.environ, EVENTS_ENV: str(events)},
                       capture_output=True, text=True, timeout=120)
    seen = EventReader(events).read()
    records = {e["host"]: e["record"] for e in seen if e["event"] == "record"}
    failures = {e["host"]: e["msg"] for e in seen if e["event"] in ("failed", "unreachable")}
    assert fh.classify(records.get("as-nobody")) == (fh.COLLECTED, "")
    bundle = json.loads((tmp_path / "out" / "as-nobody" / "evidence.json").read_text())
    assert bundle["host"]["vmId"] == healthy.machine.vm_id
    status, reason = fh.classify(records.get("nologin"), failures.get("nologin", ""))
    assert status == "auth_failed" and "become" in reason, (status, reason)
