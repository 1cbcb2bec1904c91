"""tools/fleet_rig.py (what `make fleet-demo` runs): it refuses outside the isolated namespace
in one line, and `run` hands a command the rig's inventory and Ansible environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import skip_unless_fleet

TOOL = Path(__file__).resolve().parents[2] / "tools" / "fleet_rig.py"


def _tool(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120,
                          env=env or dict(os.environ))


def test_outside_the_isolated_namespace_it_refuses_in_one_line():
    proc = _tool("demo", env={**os.environ, "IMDS_RUNBOOK_NETNS": "0"})
    assert proc.returncode == 2
    assert proc.stdout.strip().splitlines() == [
        "fleet_rig.py: cannot build the fleet here: needs the private network namespace of tests/isolated.sh "
        "(IMDS_RUNBOOK_NETNS=1)"]


def test_an_unknown_vm_kind_is_one_line():
    proc = _tool("run", "--vms", "vm-healthy,vm-bogus", "--", "true")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stdout.strip().startswith("fleet_rig.py: --vms: unknown VM kind 'vm-bogus' (known: vm-healthy,")


def test_run_gives_the_command_the_inventory_and_ansible(tmp_path):
    skip_unless_fleet(["vm-healthy"])
    before = set(Path("/tmp").glob("imds-fleet-rig-*"))
    proc = _tool("run", "--vms", "web-1=vm-healthy,web-2=vm-noid", "--",
                 "ansible", "all", "-i", "{inventory}", "-m", "raw", "-a", "hostname")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "fleet up: 2 namespace VMs" in out and "fleet down: every VM, namespace and link removed" in out
    for name in ("web-1", "web-2"):
        assert f"{name} | CHANGED | rc=0 >>\n{name}\n" in out.replace("\r", "")
    assert set(Path("/tmp").glob("imds-fleet-rig-*")) <= before       # its files went with it
