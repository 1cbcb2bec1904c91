"""Capture the playbook's real per-host records for the classification tests.

    tests/isolated.sh .venv/bin/python tests/fleet_unit/capture_records.py   # as root
        [--ansible-playbook PATH] [--out FILE]    # another ansible-core (e.g. 2.17), elsewhere

Runs imds_helpers/fleet/ansible/collect.yml with ansible-playbook against one inventory of cases
and writes each host's record (what the callback passes on) to fixtures/records.json:

* over real SSH to an sshd on 127.0.0.1 started here: a healthy login, a key the sshd does not
  accept, a host key known_hosts does not hold, a closed port, a port whose SYNs are dropped
  (iptables, this namespace only);
* over the local connection: Python missing, too old (a stand-in printing 3.6.8, asking for the
  proxy comparison the shell has not), masked (one that fails) - each collected by the shell
  collector -, Python missing with no shell collector given, the shell collector refusing its
  arguments and running too long, a probe that refuses its arguments, one that runs too long,
  output that is no JSON document, an inventory variable no command line may carry, and a
  healthy collection.

Everything listens on loopback inside the namespace isolated.sh made; the emulator answers as
the metadata service. The records are facts of Ansible's behaviour (messages, registered
results), so the unit tests judge the classification on what Ansible really says.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "fixtures" / "records.json"
sys.path.insert(0, str(ROOT))

from imds_helpers.emulator import Emulator  # noqa: E402
from imds_helpers.fleet.ansible_run import EVENTS_ENV, PLAYBOOK, EventReader  # noqa: E402


def build_probe(out: Path) -> Path:
    """tools/build_probe.py, what `make probe` runs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_probe", ROOT / "tools" / "build_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_probe(out)


def sh(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kwargs)


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--ansible-playbook", default=str(Path(sys.executable).parent / "ansible-playbook"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if os.environ.get("IMDS_RUNBOOK_NETNS") != "1" or os.geteuid() != 0:
        print("run as root inside tests/isolated.sh", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="capture-"))
    try:
        return capture(work, args.ansible_playbook, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def capture(work: Path, ansible_playbook: str, target: Path) -> int:
    sh("mount", "-t", "tmpfs", "capture-run", "/run")      # private: this mount namespace only
    Path("/run/sshd").mkdir(mode=0o755)
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "hostkey"))
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "otherhostkey"))
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "client"))
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "stranger"))
    shutil.copy(work / "client.pub", work / "authorized_keys")
    (work / "sshd_config").write_text(
        "ListenAddress 127.0.0.1:2222\nListenAddress 127.0.0.3:2222\nListenAddress 127.0.0.4:2222\n"
        f"HostKey {work / 'hostkey'}\nPidFile none\nUsePAM no\n"
        f"StrictModes no\nAuthorizedKeysFile {work / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n")
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(work / "sshd_config")],
                            stderr=subprocess.DEVNULL)
    key = (work / "hostkey.pub").read_text().split()[:2]
    other = (work / "otherhostkey.pub").read_text().split()[:2]
    (work / "known_hosts").write_text("".join(f"[127.0.0.{i}]:2222 {' '.join(key)}\n" for i in (1, 2, 3, 4)))
    (work / "wrong_known_hosts").write_text(f"[127.0.0.4]:2222 {' '.join(other)}\n")
    # SYNs to 127.0.0.2:2222 vanish: a host that never answers. Each SSH case has its own
    # address: Ansible shares one SSH master connection per address, port and user.
    for i in (2, 3, 4):
        sh("ip", "addr", "add", f"127.0.0.{i}/8", "dev", "lo")
    sh("iptables", "-A", "INPUT", "-d", "127.0.0.2", "-p", "tcp", "--dport", "2222", "-j", "DROP")

    fake = work / "bin"
    fake.mkdir()
    (fake / "python-old").write_text("#!/bin/sh\necho 3.6.8\n")
    (fake / "python-masked").write_text("#!/bin/sh\necho 'python3: this interpreter has been masked' >&2\nexit 1\n")
    (fake / "python-garbage").write_text('#!/bin/sh\ncase "$1" in -c) echo 3.11.9;; *) echo "<html>no</html>";; esac\n')
    for item in fake.iterdir():
        item.chmod(0o755)

    probe = build_probe(work / "imds-probe.pyz")
    out = work / "out"
    out.mkdir()
    healthy = Emulator(mode="vm", scenario="vm-healthy")
    hang = Emulator(mode="vm", scenario="vm-accept-then-hang")
    healthy.__enter__()
    hang.__enter__()
    ssh_common = f"-o UserKnownHostsFile={work / 'known_hosts'} -o StrictHostKeyChecking=yes"
    ssh = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 2222, "ansible_user": "root",
           "ansible_ssh_private_key_file": str(work / "client"), "ansible_ssh_common_args": ssh_common,
           "imds_endpoint": healthy.base_url}
    local = {"ansible_connection": "local", "imds_endpoint": healthy.base_url}
    hosts = {
        "ssh-healthy": ssh,
        "ssh-auth-failed": {**ssh, "ansible_host": "127.0.0.3", "ansible_ssh_private_key_file": str(work / "stranger")},
        "ssh-host-key": {**ssh, "ansible_host": "127.0.0.4", "ansible_ssh_common_args":
                         f"-o UserKnownHostsFile={work / 'wrong_known_hosts'} -o StrictHostKeyChecking=yes"},
        "ssh-refused": {**ssh, "ansible_port": 9},
        "ssh-timeout": {**ssh, "ansible_host": "127.0.0.2"},
        "python-missing": {**local, "imds_python": "/nonexistent/python3"},
        "python-old": {**local, "imds_python": str(fake / "python-old"), "imds_proxy_comparison": True},
        "python-masked": {**local, "imds_python": str(fake / "python-masked")},
        "python-missing-no-shell": {**local, "imds_python": "/nonexistent/python3", "imds_shell_collector": ""},
        "shell-bad-usage": {**local, "imds_python": "/nonexistent/python3", "imds_client_ids": ["not-a-guid"]},
        "shell-timeout": {**local, "imds_python": "/nonexistent/python3", "imds_endpoint": hang.base_url,
                          "imds_collect_timeout": 2},
        "probe-bad-usage": {**local, "imds_client_ids": ["not-a-guid"]},
        "probe-timeout": {**local, "imds_endpoint": hang.base_url, "imds_collect_timeout": 2},
        "probe-not-json": {**local, "imds_python": str(fake / "python-garbage")},
        "local-healthy": {**local, "imds_target": "vm"},
        "bad-variables": {**local, "imds_tokens_dir": "/x\n--endpoint=http://elsewhere"},
    }
    inventory = work / "inventory.json"
    inventory.write_text(json.dumps({"all": {"vars": {"ansible_python_interpreter": "/usr/bin/python3"},
                                             "hosts": hosts}}))
    events = work / "events.jsonl"
    env = {**os.environ, EVENTS_ENV: str(events), "ANSIBLE_TIMEOUT": "3", "ANSIBLE_HOST_KEY_CHECKING": "True",
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp")}
    t0 = time.monotonic()
    proc = subprocess.run([ansible_playbook, "-i", str(inventory), str(PLAYBOOK),
                           "-e", f"imds_out_dir={out}", "-e", f"imds_probe={probe}", "--forks", "12"],
                          env=env, capture_output=True, text=True, timeout=300)
    healthy.close()
    hang.close()
    sshd.terminate()
    records = {e["host"]: e["record"] for e in EventReader(events).read() if e["event"] == "record"}
    missing = sorted(set(hosts) - set(records))
    if missing:
        print(proc.stdout[-3000:], file=sys.stderr)
        print(f"no record for {missing}", file=sys.stderr)
        return 1
    version = subprocess.run([ansible_playbook, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    target.write_text(json.dumps({"ansible_core": version.split("core ")[-1].rstrip("]"), "records": records},
                                 indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(records)} records in {time.monotonic() - t0:.1f} s -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
