"""The fleet rig itself, before any playbook: every VM is reachable over real SSH (except the one
whose sshd is stopped), has its own hostname, DMI, /var/tmp and IMDS, and the faults are real.
If these fail, a fleet test's failure says nothing about `imds-runbook fleet`."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import skip_unless_fleet
from .rig import IMDS_ADDRESS, KINDS, Rig, RigError, ansible_bin, fleet, unavailable

CALLBACKS = Path(__file__).with_name("callback_plugins")


def _ansible(rig: Rig, *args: str, timeout: float = 120) -> dict[str, dict]:
    """`ansible all ARGS` against the rig's inventory: host -> {status, result} as Ansible
    decided them (status: ok, failed, unreachable), read through callback_plugins/rig_results."""
    env = rig.ansible_env()
    env.update(ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS), ANSIBLE_STDOUT_CALLBACK="rig_results",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    proc = subprocess.run([ansible_bin("ansible"), "all", *args], env=env, cwd=rig.root,
                          capture_output=True, text=True, timeout=timeout)
    found = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            answer = json.loads(line)
            found[answer["host"]] = answer
    assert set(found) == set(rig.hosts), f"not every host answered:\n{proc.stdout}\n{proc.stderr}"
    return found


def _stdout(answer: dict) -> str:
    """What a `raw` task printed (through a pty: CR LF line ends)."""
    return answer["result"].get("stdout", "").replace("\r\n", "\n")


def _by_status(rig: Rig, status: str) -> list[str]:
    return [name for name, host in rig.hosts.items() if host.expect_status == status]


def _masked(rig: Rig) -> list[str]:
    return [name for name, host in rig.hosts.items() if not KINDS[host.kind].python]


def test_ping_reaches_every_vm_but_the_two_broken_ones(rig):
    result = _ansible(rig, "-m", "ping")
    for name in set(_by_status(rig, "diagnosed")) - set(_masked(rig)):
        assert result[name]["status"] == "ok" and result[name]["result"]["ping"] == "pong", result[name]
    for name in _by_status(rig, "unreachable"):
        assert result[name]["status"] == "unreachable", result[name]
        assert "Connection refused" in result[name]["result"]["msg"]
    for name in _masked(rig):
        # SSH worked; the interpreter did not start (exec of the masked file fails)
        assert result[name]["status"] == "failed", result[name]
        assert result[name]["result"]["rc"] == 126
        assert f"{rig.vm_python}: Permission denied" in result[name]["result"]["module_stderr"]


def test_each_vm_has_its_own_hostname_dmi_and_var_tmp(rig):
    # raw needs no Python on the target: the masked VM answers too
    first = _ansible(rig, "-m", "raw", "-a", "hostname > /var/tmp/rig-mark; hostname; cat /sys/class/dmi/id/product_uuid")
    second = _ansible(rig, "-m", "raw", "-a", "ls -A /var/tmp; cat /var/tmp/rig-mark; findmnt -n -o FSTYPE /var/tmp;"
                                           " if [ -e /.dockerenv ]; then echo container-marker; fi")
    for name, host in rig.hosts.items():
        if host.expect_status == "unreachable":
            assert first[name]["status"] == second[name]["status"] == "unreachable"
            continue
        assert first[name]["status"] == second[name]["status"] == "ok", (first[name], second[name])
        words = _stdout(first[name]).split()
        assert words[:2] == [name, host.smbios_uuid], first[name]
        listing = _stdout(second[name]).split()
        assert listing == ["rig-mark", name, "tmpfs"], second[name]       # nobody else's files, no /.dockerenv
    assert len({h.smbios_uuid for h in rig.hosts.values()}) == len(rig.hosts)
    assert not Path("/var/tmp/rig-mark").exists()


PROBE = r"""
import json, sys, urllib.error, urllib.request as u
mode, base = sys.argv[1], sys.argv[2]
opener = u.build_opener(u.ProxyHandler({}))

def get(path, **headers):
    try:
        with opener.open(u.Request(base + path, headers={"Metadata": "true", **headers}), timeout=2) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers
    except OSError as e:
        return None, repr(e), {}

out = {}
status, body, _ = get("/metadata/instance?api-version=2020-06-01")
out["instance"] = status
out["vm_id"] = json.loads(body)["compute"]["vmId"] if status == 200 else body
if status == 200:
    path = "/metadata/identity/oauth2/token?api-version=%s&resource=https://management.azure.com/" % (
        "2020-06-01" if mode == "arc" else "2018-02-01")
    status, body, headers = get(path)
    if mode == "arc" and status == 401:
        realm = headers["WWW-Authenticate"].split("=", 1)[1]
        out["realm"] = realm
        status, body, _ = get(path, Authorization="Basic " + open(realm).read())
    out["token_status"], out["token"] = status, body
print(json.dumps(out))
"""


def _probe_inside(rig: Rig) -> dict[str, dict]:
    """The PROBE above, run inside every VM at once: over SSH with the VM's own Python where it
    has one, else (no sshd, masked Python) in its network namespace with the controller's."""
    procs = {}
    for name, host in rig.hosts.items():
        base = f"http://{IMDS_ADDRESS}:80" if host.mode == "vm" else "http://127.0.0.1:40342"
        if host.expect_status == "diagnosed" and KINDS[host.kind].python:
            cmd = rig.ssh_command(name, f"{rig.vm_python} - {host.mode} {base}")
        else:
            cmd = ["ip", "netns", "exec", host.netns, rig.python, "-", host.mode, base]
        procs[name] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(PROBE, timeout=60)
        assert proc.returncode == 0, f"{name}: {err[-500:]}"
        results[name] = json.loads(out)
    return results


def test_each_vm_reaches_only_its_own_emulator(rig):
    results = _probe_inside(rig)
    canaries = {name: host.canary for name, host in rig.hosts.items()}
    for name, host in rig.hosts.items():
        got = results[name]
        kind = KINDS[host.kind]
        if kind.firewall_drop:       # the DROP rule: the connection is never answered
            assert got["instance"] is None and "timed out" in got["vm_id"], got["vm_id"]
            continue
        assert got["instance"] == 200 and got["vm_id"] == host.vm_id, (name, got["vm_id"])
        token = got.get("token", "")
        others = [other for other, canary in canaries.items() if other != name and canary in token]
        assert not others, f"{name} got a token from the emulator of {others}"
        if host.scenario == "vm-no-identity":
            assert got["token_status"] == 400 and "Identity not found" in token
        else:
            assert got["token_status"] == 200 and host.canary in token, (name, got["token_status"])
        if host.mode == "arc":   # the key file lives in that VM's own tokens directory
            assert got["realm"].startswith("/var/opt/azcmagent/tokens/")
            assert not os.path.exists(got["realm"])
    assert len({h.vm_id for h in rig.hosts.values()}) == len(rig.hosts)


def test_proxy_and_arc_variables_are_in_their_vms_login_environment_only(rig):
    env = _ansible(rig, "-m", "raw", "-a", "env | grep -E '^(https?_proxy|HTTPS?_PROXY|NO_PROXY|no_proxy|IDENTITY_ENDPOINT|IMDS_ENDPOINT)=' | sort || true")
    for name, host in rig.hosts.items():
        if host.expect_status == "unreachable":
            continue
        shown = _stdout(env[name])
        names = set(re.findall(r"\b([A-Za-z_]+)=", shown))
        if KINDS[host.kind].proxy:
            assert names == {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"}, shown
        elif host.mode == "arc":
            assert names == {"IDENTITY_ENDPOINT", "IMDS_ENDPOINT"}, shown
        else:
            assert names == set(), (name, shown)


def test_a_rig_that_cannot_come_up_says_why_and_leaves_nothing(tmp_path):
    skip_unless_fleet(["vm-healthy"], ansible=False)
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    with pytest.raises(RigError) as err:
        with fleet(tmp_path, vms=["vm-healthy"], python="/bin/false"):
            pass
    assert "vm-healthy/platform did not come up" in str(err.value) and "emulator exited" in str(err.value)
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout == before


def test_teardown_leaves_no_process_namespace_or_link(tmp_path):
    skip_unless_fleet(["vm-healthy", "arc-01"], ansible=False)
    before = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split())
    with fleet(tmp_path, vms=["vm-healthy", "arc-01"]) as small:
        root, prefix = str(small.root), small.prefix
        addresses = [h.address for h in small.hosts.values()]
        assert subprocess.run(small.ssh_command("arc-01", "hostname"), capture_output=True, text=True,
                              timeout=30).stdout.strip() == "arc-01"
        marks = [root] + [h.canary for h in small.hosts.values()]     # inits and sshd; emulators
        assert len(_processes_under(marks)) >= 6
    assert not _processes_under(marks)
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix not in after and set(after.split()) == before
    assert prefix not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert not any(a in subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout for a in addresses)


def _processes_under(marks: list[str]) -> list[int]:
    """Processes whose command line holds one of ``marks``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(mark in cmdline for mark in marks):
            found.append(int(pid))
    return found


def test_unavailable_names_the_missing_capability(monkeypatch):
    monkeypatch.setenv("IMDS_RUNBOOK_NETNS", "0")
    assert "tests/isolated.sh" in unavailable()


@pytest.mark.parametrize("missing, says", [("sshd_binary", "sshd"), ("ansible_bin", "ansible-playbook")])
def test_a_missing_tool_is_named(monkeypatch, missing, says):
    from . import rig as rig_module
    reason = rig_module.unavailable(ansible=True)
    if reason:
        pytest.skip(f"fleet rig: {reason}")
    monkeypatch.setattr(rig_module, missing, lambda *a: None)
    assert says in rig_module.unavailable(ansible=True)
