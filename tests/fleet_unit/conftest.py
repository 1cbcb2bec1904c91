"""Fixtures for imds-runbook fleet's own tests: real bundles from the emulator, the captured
playbook records (fixtures/records.json, from capture_records.py), and a stand-in
``ansible-playbook`` that replays records without Ansible."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RECORDS = HERE / "fixtures" / "records.json"          # ansible-core 2.19 (the one pip installs now)
OLDEST_RECORDS = HERE / "fixtures" / "records-2.17.json"   # the oldest the [fleet] extra allows
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which(
    "ansible-playbook")
NO_ANSIBLE = "ansible-playbook is not installed (pip install 'imds-runbook[fleet]')"


@pytest.fixture(scope="session")
def records() -> dict[str, dict[str, Any]]:
    """The playbook's real records, one per captured case (ssh-healthy, python-old, ...)."""
    return json.loads(RECORDS.read_text(encoding="utf-8"))["records"]


@pytest.fixture(scope="session", params=[RECORDS, OLDEST_RECORDS], ids=["ansible-core-2.19", "ansible-core-2.17"])
def any_records(request) -> dict[str, dict[str, Any]]:
    """The same cases as written by each ansible-core (2.17 gives numbers as text)."""
    return json.loads(request.param.read_text(encoding="utf-8"))["records"]


def collect_bundle(folder: Path, name: str, endpoint: str, *extra: str) -> Path:
    """``imds-runbook collect`` against ``endpoint`` (an emulator or a closed loopback port)."""
    from imds_helpers.cli import main

    path = folder / f"{name}.json"
    assert main(["collect", "--target", "vm", "--endpoint", endpoint, "--timeout", "2", *extra,
                 "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """Real bundles: two healthy VMs (two emulators, two vmIds), one without identity, and
    one whose IMDS did not answer (no vmId)."""
    from imds_helpers.emulator import Emulator

    folder = tmp_path_factory.mktemp("bundles")
    found: dict[str, Path] = {}
    for name, scenario in (("healthy", "vm-healthy"), ("healthy2", "vm-healthy"), ("no-identity", "vm-no-identity")):
        with Emulator(mode="vm", scenario=scenario) as emulator:
            found[name] = collect_bundle(folder, name, emulator.base_url)
    found["silent"] = collect_bundle(folder, "silent", "http://127.0.0.1:9")
    return found


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def fake_ansible(tmp_path: Path) -> Callable[..., Path]:
    """An ``ansible-playbook`` stand-in: writes the play's start, the given records (host ->
    record) as the callback would, copies a bundle for each host given one, and exits with
    ``rc``. Returns its path (run_fleet's ``ansible_playbook``)."""
    def make(records: dict[str, dict[str, Any]], bundles: dict[str, Path] | None = None, rc: int = 0,
             hosts: list[str] | None = None) -> Path:
        script = tmp_path / "fake-ansible-playbook"
        plan = {"records": records, "bundles": {h: str(p) for h, p in (bundles or {}).items()}, "rc": rc,
                "hosts": hosts if hosts is not None else list(records)}
        (tmp_path / "fake-plan.json").write_text(json.dumps(plan))
        script.write_text(f"""#!{sys.executable}
import json, os, shutil, sys
plan = json.load(open({str(tmp_path / 'fake-plan.json')!r}))
extra = json.load(open(next(a[1:] for a in sys.argv if a.startswith('@'))))
events = os.environ["IMDS_RUNBOOK_FLEET_EVENTS"]
with open(events, "a") as out:
    out.write(json.dumps({{"event": "start", "hosts": plan["hosts"], "t": 0}}) + "\\n")
    for host, record in plan["records"].items():
        if host in plan["bundles"]:
            os.makedirs(os.path.join(extra["imds_out_dir"], host), exist_ok=True)
            shutil.copy(plan["bundles"][host], os.path.join(extra["imds_out_dir"], host, "evidence.json"))
        out.write(json.dumps({{"event": "record", "host": host, "record": record, "t": 0}}) + "\\n")
    out.write(json.dumps({{"event": "end", "stats": {{}}, "t": 0}}) + "\\n")
print("fake ansible-playbook", sys.argv[1:])
sys.exit(plan["rc"])
""")
        script.chmod(0o755)
        return script

    return make


def record_for(records: dict[str, dict[str, Any]], case: str, host: str, **expect: str) -> dict[str, Any]:
    """A captured record, as if it were inventory host ``host`` (with ``imds_expect_*``)."""
    record = json.loads(json.dumps(records[case]))
    record["host"] = host
    record["expect"] = {"hostname": expect.get("hostname", ""), "smbios_uuid": expect.get("smbios_uuid", ""),
                        "vm_id": expect.get("vm_id", "")}
    return record


def in_netns() -> bool:
    return os.environ.get("IMDS_RUNBOOK_NETNS") == "1"
