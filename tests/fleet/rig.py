"""A fleet of namespace "VMs" reachable over real SSH, for the fleet tests and `make fleet-demo`.

Each VM is a network namespace with ``eth0`` on a bridge in the caller's namespace (which must be
the private one tests/isolated.sh makes: the addresses exist nowhere else) and an ``sshd``. An
Azure VM reaches 169.254.169.254 on-link through eth0: its own emulator, in a platform namespace
of its own on the same bridge (a permanent neighbour entry names its MAC), as an Azure VM reaches
IMDS through its primary NIC. The Arc VM runs HIMDS on its own localhost:40342. The VM's
processes also run in their own UTS, mount and PID namespace: each VM has its own hostname, a
private ``/var/tmp``, its own DMI (Azure's asset tag, an SMBIOS UUID matching its vmId), no
container marker, and killing its first process kills everything in it. One fault per VM (the
table ``KINDS``).

    with fleet(tmp_path, vms=["vm-healthy", "vm-drop"]) as rig:
        subprocess.run(["ansible-playbook", "-i", str(rig.inventory), ...], env=rig.ansible_env())
        rig.hosts["vm-drop"].expect_codes     # what a report for that host must name

Standard library only: tools/fleet_rig.py loads this file by path. Needs real root (``ip netns``,
mounts, sshd's privilege separation); :func:`unavailable` names what is missing, so a test can skip
and say why.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]

IMDS_ADDRESS = "169.254.169.254"
HIMDS_PORT = 40342
TOKENS_DIR = "/var/opt/azcmagent/tokens"
HIMDS_BINARY = "/opt/azcmagent/bin/himds"
#: The interpreter the VMs offer, when it is Python >= 3.10 (else the controller's own, resolved).
SYSTEM_PYTHON = "/usr/bin/python3"
AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
#: Private subnets for the bridges, one /24 per rig (they exist only in the caller's namespace).
SUBNETS = ipaddress.ip_network("10.213.0.0/16")
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
BRING_UP_TIMEOUT = 30.0
PROXY_PORT = 3128          # nothing listens there: the proxy VM's proxy refuses every connection


# --- the kinds of VM -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """One row of the fault table: how a VM of this kind is built and what a diagnosis must say.

    ``expect_status`` is what a fleet run can make of the host: ``diagnosed`` (a bundle came
    back) or ``unreachable`` (no SSH); ``collector`` is which collector brings the bundle back
    (``python``: the probe; ``shell``: imds-collect.sh, on a VM whose interpreter does not run).
    ``expect_codes`` are the findings a diagnosed host's report must name (none: a healthy host,
    whose identity and token steps are OK); no other host's codes may appear in it."""

    kind: str
    description: str
    scenario: str                       # the emulator scenario serving this VM
    mode: str = "vm"                    # vm: IMDS at 169.254.169.254:80; arc: HIMDS on its localhost:40342
    firewall_drop: bool = False         # iptables DROP on 169.254.169.254:80 inside the VM
    proxy: bool = False                 # http(s)_proxy / HTTP(S)_PROXY without NO_PROXY in the login env
    unknown_client_id: bool = False     # the inventory asks for a user-assigned identity the VM lacks
    sshd: bool = True
    python: bool = True
    expect_status: str = "diagnosed"
    collector: str = "python"
    expect_codes: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {k.kind: k for k in (
    Kind("vm-healthy", "healthy Azure VM: system- and user-assigned identity, tokens issued", "vm-healthy"),
    Kind("vm-noid", "no managed identity assigned: IMDS answers 400 'Identity not found'", "vm-no-identity",
         expect_codes=("IMDS-TOKEN-001",)),
    Kind("vm-drop", "iptables DROP on 169.254.169.254:80 inside the VM", "vm-healthy", firewall_drop=True,
         expect_codes=("IMDS-NET-011", "IMDS-NET-021")),
    Kind("vm-proxy", "a proxy in the login environment (http_proxy, HTTPS_PROXY, ...) and no NO_PROXY",
         "vm-healthy", proxy=True, expect_codes=("IMDS-PROXY-002",)),
    Kind("vm-uami", "the inventory asks for a user-assigned identity this VM does not have", "vm-healthy",
         unknown_client_id=True, expect_codes=("IMDS-TOKEN-002",)),
    Kind("arc-01", "Arc-enabled server: HIMDS on its localhost:40342, key files in its own tokens directory",
         "arc-healthy", mode="arc"),
    Kind("vm-nossh", "sshd never started: SSH connections are refused", "vm-healthy", sshd=False,
         expect_status="unreachable"),
    Kind("vm-nopython", "the interpreter is masked (exec fails): SSH works, Python does not - the shell "
         "collector diagnoses it", "vm-healthy", python=False, collector="shell"),
)}
DEFAULT_VMS: tuple[str, ...] = tuple(KINDS)
#: Every code that names some VM's fault: a report may carry only its own VM's.
FAULT_CODES: frozenset[str] = frozenset(code for k in KINDS.values() for code in k.expect_codes)


@dataclass(frozen=True)
class VM:
    """A VM to build: its inventory name and its kind (a key of ``KINDS``)."""

    name: str
    kind: str

    @staticmethod
    def of(item: "str | VM") -> "VM":
        if isinstance(item, VM):
            return item
        return VM(item, item)


@dataclass(frozen=True)
class Host:
    """What the rig knows about one VM once it is up (the test's ground truth)."""

    name: str                     # inventory_hostname and the VM's own hostname
    kind: str
    description: str
    address: str
    netns: str                    # the VM's network namespace
    platform_netns: str | None    # where its IMDS emulator runs (vm mode), reached over eth0
    scenario: str
    mode: str
    canary: str                   # in every token / Arc secret this VM's emulator issues
    vm_id: str | None             # the emulator's vmId
    smbios_uuid: str | None       # /sys/class/dmi/id/product_uuid inside the VM
    expect_status: str
    expect_codes: tuple[str, ...]
    vars: Mapping[str, Any] = field(default_factory=dict)   # this host's inventory variables

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["vars"] = dict(self.vars)
        data["expect_codes"] = list(self.expect_codes)
        return data


class RigError(RuntimeError):
    """The fleet could not be brought up; the message says which VM and why."""


# --- what this machine must offer ----------------------------------------------------------------

def _full_root() -> bool:
    if os.geteuid() != 0:
        return False
    try:   # a user namespace maps root to someone else: sshd cannot drop privileges there
        fields = open("/proc/self/uid_map", encoding="ascii").read().split()
    except OSError:
        return True
    return fields[:3] == ["0", "0", "4294967295"]


def sshd_binary() -> str | None:
    return next((p for p in SSHD_CANDIDATES if os.access(p, os.X_OK)), None) or shutil.which("sshd")


def ansible_bin(name: str = "ansible-playbook") -> str | None:
    """The venv's own ansible command first (the `[fleet]` extra), then PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if os.access(beside, os.X_OK) else shutil.which(name)


def unavailable(vms: Iterable["str | VM"] = DEFAULT_VMS, *, ansible: bool = False) -> str | None:
    """None when this machine can build these VMs (and run Ansible, if asked); else the missing
    capability, in one line, for a skip message."""
    if os.environ.get("IMDS_RUNBOOK_NETNS") != "1":
        return "needs the private network namespace of tests/isolated.sh (IMDS_RUNBOOK_NETNS=1)"
    if not _full_root():
        return "needs real root (ip netns, mounts, sshd privilege separation); not root or in a user namespace"
    tools = ["ip", "unshare", "ssh", "ssh-keygen", "mount", "sed"] + (["pivot_root"] if os.path.exists("/.dockerenv") else [])
    for tool in tools:
        if not shutil.which(tool):
            return f"needs the {tool!r} command"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "needs 'ip netns' (iproute2 with network namespace support)"
    if b"--kill-child" not in subprocess.run(["unshare", "--help"], capture_output=True).stdout:
        return "needs util-linux unshare with --kill-child"
    if not sshd_binary():
        return "needs an sshd binary (Debian: openssh-server; `make sysdeps` installs it as root)"
    kinds = [KINDS[VM.of(v).kind] for v in vms]
    if any(k.firewall_drop for k in kinds) and not shutil.which("iptables"):
        return "needs iptables for the firewalled VM (Debian: iptables)"
    if ansible and not ansible_bin():
        return "needs ansible-playbook (pip install -e '.[fleet]', or ansible-core)"
    return None


# --- the rig ------------------------------------------------------------------------------------

def _pdeathsig() -> None:
    """In the child before exec: die with the parent (so a killed test leaves no VM behind)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG


def _run(cmd: Sequence[str], *, input: str | None = None, timeout: float = 20) -> str:
    proc = subprocess.run(list(cmd), input=input, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RigError(f"{shlex.join(cmd)}: exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-400:]}")
    return proc.stdout


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return any(line.split()[4] == path for line in fh)


def _private_run_dirs() -> None:
    """Private tmpfs on /run/netns (namespace names) and /run/sshd (sshd's privilege separation
    directory) in this mount namespace, once per process."""
    for path in ("/run/netns", "/run/sshd"):
        if _mounted(path):
            continue
        os.makedirs(path, mode=0o755, exist_ok=True)
        _run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", "imds-fleet-run", path])


def _free_subnet() -> ipaddress.IPv4Network:
    used = _run(["ip", "-o", "-4", "addr", "show"])
    for net in SUBNETS.subnets(new_prefix=24):
        if f" {net.network_address + 1}/" not in used:
            return net
    raise RigError(f"no free /24 left in {SUBNETS}")


def vm_python() -> str:
    """The interpreter every VM offers: the system's python3 when it is >= 3.10, else this one."""
    try:
        ok = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; sys.exit(sys.version_info < (3, 10))"],
                            capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return SYSTEM_PYTHON if ok else os.path.realpath(sys.executable)


def _yaml(data: Mapping[str, Any], indent: int = 0) -> str:
    """Block YAML for nested dicts and lists of scalars (scalars written as JSON, which YAML reads)."""
    pad = " " * indent
    lines = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            lines.append(f"{pad}{key}:" + ("" if value else " {}"))
            if value:
                lines.append(_yaml(value, indent + 2))
        elif isinstance(value, (list, tuple)):
            lines.append(f"{pad}{key}:" + ("" if value else " []"))
            lines.extend(f"{pad}  - {json.dumps(item)}" for item in value)
        else:
            lines.append(f"{pad}{key}: {json.dumps(value)}")
    return "\n".join(lines)


class Rig:
    """A running fleet. Use :func:`fleet` (it tears everything down on exit)."""

    def __init__(self, root: Path, vms: Sequence[VM], *, forks: int | None = None,
                 python: str | None = None) -> None:
        names = [vm.name for vm in vms]
        if len(set(names)) != len(names):
            raise RigError(f"duplicate VM names: {names}")
        for vm in vms:
            if vm.kind not in KINDS:
                raise RigError(f"unknown VM kind {vm.kind!r} (known: {', '.join(KINDS)})")
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", vm.name):
                raise RigError(f"VM name {vm.name!r}: lower-case letters, digits and '-' only")
        self.root = root
        self.vms = tuple(vms)
        self.forks = forks or max(len(vms), 1)
        self.python = python or sys.executable        # runs the emulators (the controller's venv)
        self.vm_python = vm_python()                  # what the VMs offer to Ansible and the probe
        self.id = secrets.token_hex(2)
        self.prefix = f"imf{self.id}"
        self.hosts: dict[str, Host] = {}
        self.inventory = root / "inventory.yml"
        self.ansible_cfg = root / "ansible.cfg"
        self.known_hosts = root / "known_hosts"
        self.client_key = root / "id_ed25519"
        self.timings: dict[str, float] = {}
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self._netns: list[str] = []
        self._links: list[str] = []
        self._bridge: str | None = None
        self._cp_link: Path | None = None
        self._subnet: ipaddress.IPv4Network | None = None
        self._gen2 = os.path.isdir("/sys/firmware/efi")    # the VMs share this kernel's firmware view

    # -- public -------------------------------------------------------------------------------

    @property
    def gateway(self) -> str:
        """The controller's address on the VMs' bridge."""
        assert self._subnet is not None
        return str(next(self._subnet.hosts()))

    @property
    def control_dir(self) -> Path:
        """Where SSH control sockets live (short: a socket path must fit in 108 bytes)."""
        return self._cp_link or (self.root / "cp")

    def ansible_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for ansible / ansible-playbook / `imds-runbook fleet` against this rig:
        ``base`` (default: this process's) without its ANSIBLE_* settings, plus ANSIBLE_CONFIG
        (the rig's ansible.cfg), a private ANSIBLE_HOME, and the venv's bin directory on PATH."""
        env = dict(os.environ if base is None else base)
        for name in [n for n in env if n.startswith("ANSIBLE_")]:
            del env[name]
        env.update({
            "ANSIBLE_CONFIG": str(self.ansible_cfg),
            "ANSIBLE_HOME": str(self.root / "ansible-home"),
            "ANSIBLE_NOCOLOR": "1",
        })
        bindir = str(Path(self.python).parent)
        if bindir not in env.get("PATH", "").split(os.pathsep):
            env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        return env

    def ssh_command(self, name: str, command: str) -> list[str]:
        """``ssh`` to a VM with the inventory's key and known_hosts (for a look inside by hand)."""
        return ["ssh", "-i", str(self.client_key), "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                "-l", "root", self.hosts[name].address, command]

    def log(self, name: str) -> str:
        """The tail of the VM's logs (its init, sshd, emulator), each canary replaced by <canary>."""
        out = []
        for part in ("init.log", "sshd.log", "emulator.log", "platform/init.log", "platform/emulator.log"):
            path = self.root / "vms" / name / part
            if path.exists() and path.stat().st_size:
                text = path.read_text(errors="replace")[-3000:]
                for host in self.hosts.values():
                    text = text.replace(host.canary, "<canary>")
                out.append(f"--- {name}/{part}\n{text}")
        return "\n".join(out) or f"--- {name}: no log"

    def ssh_common_args(self) -> str:
        return " ".join([
            f"-o UserKnownHostsFile={self.known_hosts}", "-o StrictHostKeyChecking=yes",
            "-o ControlMaster=auto", "-o ControlPersist=30s", f"-o ControlPath={self.control_dir}/%h-%p-%r",
        ])

    # -- bring up -----------------------------------------------------------------------------

    def up(self) -> "Rig":
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "vms").mkdir(exist_ok=True)
        (self.root / "ansible-home" / "tmp").mkdir(parents=True, exist_ok=True)
        self._control_dir()
        _private_run_dirs()
        self._keys()
        t = time.monotonic()
        self.timings["keys_s"] = round(t - started, 3)
        self._network()
        self.timings["network_s"] = round(time.monotonic() - t, 3)
        t = time.monotonic()
        self._start()
        self._wait_ready()
        self.timings["vms_s"] = round(time.monotonic() - t, 3)
        self._write_known_hosts()
        self._write_inventory()
        self._write_ansible_cfg()
        self.timings["up_s"] = round(time.monotonic() - started, 3)
        return self

    def _control_dir(self) -> None:
        real = self.root / "cp"
        real.mkdir(mode=0o700, exist_ok=True)
        # ssh binds "<ControlPath>.<16 random chars>" first: the whole path must stay under 108 bytes.
        if len(str(real)) + len("/255.255.255.255-22-root") + 17 >= 100:
            link = Path("/tmp") / f"imds-fleet-cp-{self.id}{secrets.token_hex(3)}"
            link.symlink_to(real)
            self._cp_link = link

    def _keys(self) -> None:
        jobs = [["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "imds-fleet-client", "-f", str(self.client_key)]]
        for vm in self.vms:
            vmdir = self.root / "vms" / vm.name
            (vmdir / "platform").mkdir(parents=True, exist_ok=True)
            jobs.append(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", vm.name,
                         "-f", str(vmdir / "ssh_host_ed25519_key")])
        procs = [subprocess.Popen(job, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for job in jobs]
        for job, proc in zip(jobs, procs):
            out = proc.communicate(timeout=20)[0]
            if proc.returncode != 0:
                raise RigError(f"{shlex.join(job)}: exit {proc.returncode}: {out.decode(errors='replace').strip()}")
        (self.root / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())

    def _network(self) -> None:
        """One bridge here; per VM a namespace with eth0 on it and, for an Azure VM, a platform
        namespace on the same bridge holding 169.254.169.254: the VM reaches it on-link through
        eth0 (a permanent neighbour entry names that platform's MAC), as an Azure VM reaches
        IMDS through its primary NIC, and no other VM can."""
        self._subnet = _free_subnet()
        addresses = list(self._subnet.hosts())
        if len(self.vms) > len(addresses) - 10:
            raise RigError(f"too many VMs for one /24: {len(self.vms)}")
        bridge = f"{self.prefix}br"
        batch = [f"link add {bridge} type bridge", f"addr add {self.gateway}/24 dev {bridge}", f"link set {bridge} up"]
        self._bridge = bridge
        inner: list[tuple[str, list[str]]] = []
        for i, vm in enumerate(self.vms):
            kind = KINDS[vm.kind]
            ns, address = f"{self.prefix}-{vm.name}", addresses[9 + i]
            batch += [f"netns add {ns}", f"link add {self.prefix}v{i} type veth peer name eth0 netns {ns}",
                      f"link set {self.prefix}v{i} master {bridge} up"]
            self._netns.append(ns)
            self._links.append(f"{self.prefix}v{i}")
            vm_lines = ["link set lo up", f"addr add {address}/24 dev eth0", "link set eth0 up"]
            platform = None
            if kind.mode == "vm":
                platform, mac = f"{self.prefix}-p{i}", f"02:1d:{self.id[:2]}:{self.id[2:]}:{i // 256:02x}:{i % 256:02x}"
                batch += [f"netns add {platform}",
                          f"link add {self.prefix}p{i} type veth peer name eth0 netns {platform}",
                          f"link set {self.prefix}p{i} master {bridge} up"]
                self._netns.append(platform)
                self._links.append(f"{self.prefix}p{i}")
                inner.append((platform, ["link set lo up", f"link set eth0 address {mac}",
                                         f"addr add {IMDS_ADDRESS}/32 dev eth0", "link set eth0 up",
                                         f"route add {self._subnet} dev eth0 scope link"]))
                vm_lines += [f"route add default via {self.gateway} dev eth0",
                             f"route add {IMDS_ADDRESS}/32 dev eth0 scope link",
                             f"neigh replace {IMDS_ADDRESS} lladdr {mac} dev eth0 nud permanent"]
            inner.append((ns, vm_lines))
            self.hosts[vm.name] = Host(
                name=vm.name, kind=vm.kind, description=kind.description, address=str(address), netns=ns,
                platform_netns=platform, scenario=kind.scenario, mode=kind.mode,
                canary=f"imdsrbcanary{secrets.token_hex(8)}", vm_id=None, smbios_uuid=None,
                expect_status=kind.expect_status, expect_codes=kind.expect_codes)
        _run(["ip", "-batch", "-"], input="\n".join(batch) + "\n")
        for netns, lines in inner:
            _run(["ip", "-n", netns, "-batch", "-"], input="\n".join(lines) + "\n")

    def _emulator(self, vm: VM) -> list[str]:
        kind, host = KINDS[vm.kind], self.hosts[vm.name]
        if kind.mode == "arc":
            listen = ["--mode", "arc", "--host", "127.0.0.1", "--port", str(HIMDS_PORT), "--key-dir", TOKENS_DIR]
        else:   # the platform namespace has eth0, so the emulator needs its explicit flag
            listen = ["--host", IMDS_ADDRESS, "--port", "80", "--allow-remote", "--no-rate-limits"]
        return [self.python, "-m", "imds_helpers", "emulator", "--scenario", kind.scenario, *listen,
                "--canary", host.canary]

    def _start_emulator_lines(self, vm: VM, where: Path, base: str) -> list[str]:
        """sh lines: start the emulator in the background, wait for its URL, write its vmId."""
        q = shlex.quote
        url, vm_id = q(str(where / "emulator.url")), q(str(where / "vm_id"))
        ask = ("import json,sys,urllib.request as u;"
               "r=u.Request(sys.argv[1]+'/metadata/instance?api-version=2020-06-01',headers={'Metadata':'true'});"
               "print(json.load(u.build_opener(u.ProxyHandler({})).open(r,timeout=5))['compute']['vmId'])")
        return [
            f"cd {q(str(REPO))}",
            f"{shlex.join(self._emulator(vm))} > {url} 2> {q(str(where / 'emulator.log'))} &",
            "emu=$!",
            "i=0",
            f"while [ ! -s {url} ]; do",
            "  i=$((i + 1)); [ $i -le 400 ] || { echo 'emulator: no URL after 20 s' >&2; exit 1; }",
            "  kill -0 $emu 2>/dev/null || { echo 'emulator exited' >&2; exit 1; }",
            "  sleep 0.05",
            "done",
            f"{q(self.python)} -c {q(ask)} {q(base)} > {vm_id}.tmp",
            f"mv {vm_id}.tmp {vm_id}",
        ]

    def _platform_init(self, vm: VM) -> Path:
        """The platform namespace's first process: the VM's IMDS emulator."""
        where = self.root / "vms" / vm.name / "platform"
        lines = ["#!/bin/sh", "set -eu", *self._start_emulator_lines(vm, where, f"http://{IMDS_ADDRESS}:80"),
                 "wait $emu"]
        path = where / "init.sh"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _dmi_lines(self, vm: VM, vmdir: Path) -> list[str]:
        """sh lines: /sys/class in the VM's mount namespace rebuilt with a DMI of its own
        (Azure's asset tag and an SMBIOS UUID derived from its vmId; a plain PC for Arc)."""
        q = shlex.quote
        kind = KINDS[vm.kind]
        orig = q(str(vmdir / "sysclass"))
        lines = [
            f"mkdir -p {orig}",
            f"mount --bind /sys/class {orig}",
            "mount -t tmpfs -o mode=0755,size=1m imds-fleet-sysclass /sys/class",
            f"for e in {orig}/*; do n=${{e##*/}}; [ \"$n\" = dmi ] && continue;"
            " mkdir \"/sys/class/$n\"; mount --bind \"$e\" \"/sys/class/$n\"; done",
            "mkdir -p /sys/class/dmi/id",
        ]
        vm_id_file = vmdir / ("vm_id" if kind.mode == "arc" else "platform/vm_id")
        if kind.mode == "vm":
            tag, vendor, product = AZURE_ASSET_TAG, "Microsoft Corporation", "Virtual Machine"
            lines += [   # wait for the platform's emulator to say which VM this is
                "i=0",
                f"while [ ! -s {q(str(vm_id_file))} ]; do",
                "  i=$((i + 1)); [ $i -le 400 ] || { echo 'platform: no vmId after 20 s' >&2; exit 1; }",
                "  sleep 0.05",
                "done",
                f"vmid=$(cat {q(str(vm_id_file))})",
            ]
            # Generation 1 (BIOS) VMs keep the first three fields byte-swapped, generation 2 not.
            swap = "" if self._gen2 else (
                " | sed -E 's/^(..)(..)(..)(..)-(..)(..)-(..)(..)-/\\4\\3\\2\\1-\\6\\5-\\8\\7-/'")
            lines.append(f"smbios=$(printf '%s' \"$vmid\"{swap})")
        else:
            tag, vendor, product = "", "QEMU", "Standard PC (Q35 + ICH9, 2009)"
            lines.append(f"smbios={q(_uuid4())}")
        lines += [
            f"printf '%s\\n' {q(tag)} > /sys/class/dmi/id/chassis_asset_tag",
            f"printf '%s\\n' {q(vendor)} > /sys/class/dmi/id/sys_vendor",
            f"printf '%s\\n' {q(product)} > /sys/class/dmi/id/product_name",
            "printf '%s\\n' \"$smbios\" > /sys/class/dmi/id/product_uuid",
            "chmod 0400 /sys/class/dmi/id/product_uuid",
            f"printf '%s\\n' \"$smbios\" > {q(str(vmdir / 'smbios_uuid'))}",
        ]
        return lines

    @staticmethod
    def _root_lines(vmdir: Path) -> list[str]:
        """sh lines: where the rig itself runs in a Docker container, the VM gets a root of its
        own without /.dockerenv (every top-level directory bound as it is, then pivot_root), so
        a VM looks like the VM it plays, not like the container it shares with the controller."""
        root = shlex.quote(str(vmdir / "root"))
        return [
            "if [ -e /.dockerenv ]; then",
            f"  mkdir -p {root}",
            f"  mount -t tmpfs -o mode=0755,size=1m imds-fleet-root {root}",
            "  for p in /* /.[!.]*; do",
            "    n=${p#/}",
            "    case $n in .dockerenv|'*'|'.[!.]*') continue;; esac",
            f"    if [ -L \"$p\" ]; then ln -s \"$(readlink \"$p\")\" {root}/\"$n\"",
            f"    elif [ -d \"$p\" ]; then mkdir {root}/\"$n\"; mount --rbind \"$p\" {root}/\"$n\"",
            f"    elif [ -e \"$p\" ]; then : > {root}/\"$n\"; mount --bind \"$p\" {root}/\"$n\"",
            "    fi",
            "  done",
            f"  mkdir {root}/.oldroot",
            f"  cd {root}",
            "  pivot_root . .oldroot",
            "  cd /",
            "  umount -l /.oldroot",
            "  rmdir /.oldroot",
            "fi",
        ]

    def _vm_init(self, vm: VM) -> Path:
        """The VM's first process (PID 1 of its PID namespace), in its own UTS and mount namespace."""
        kind = KINDS[vm.kind]
        vmdir = self.root / "vms" / vm.name
        q = shlex.quote
        lines = [
            "#!/bin/sh",
            "set -eu",
            f"hostname {q(vm.name)}",
            *self._root_lines(vmdir),
            "mount -t tmpfs -o mode=1777,size=256m imds-fleet-vartmp /var/tmp",
        ]
        if kind.mode == "arc":
            lines += [
                "mount -t tmpfs -o mode=0755,size=16m imds-fleet-varopt /var/opt",
                f"mkdir -p {TOKENS_DIR}",
                f"chmod 0750 {TOKENS_DIR}",
                # the agent's binary, as the platform check looks for it (a placeholder: HIMDS is the emulator)
                f"if [ -d /opt ]; then mount -t tmpfs -o mode=0755,size=1m imds-fleet-opt /opt;"
                f" mkdir -p {os.path.dirname(HIMDS_BINARY)}; : > {HIMDS_BINARY}; chmod 0755 {HIMDS_BINARY}; fi",
                *self._start_emulator_lines(vm, vmdir, f"http://127.0.0.1:{HIMDS_PORT}"),
            ]
        lines += self._dmi_lines(vm, vmdir)
        if kind.firewall_drop:
            lines.append(f"iptables -w 5 -A OUTPUT -d {IMDS_ADDRESS}/32 -p tcp --dport 80 -j DROP")
        if not kind.python:
            masked = vmdir / "python-masked"
            masked.write_text("")
            masked.chmod(0o644)
            lines.append(f"mount --bind {q(str(masked))} {q(self.vm_python)}")
        lines.append(f": > {q(str(vmdir / 'ready'))}")
        if kind.sshd:
            lines.append(f"exec {q(sshd_binary() or 'sshd')} -D -e -f {q(str(vmdir / 'sshd_config'))}"
                         f" 2> {q(str(vmdir / 'sshd.log'))}")
        else:
            lines.append("exec sleep infinity")      # nothing listens on port 22
        path = vmdir / "init.sh"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _sshd_config(self, vm: VM) -> None:
        kind, host = KINDS[vm.kind], self.hosts[vm.name]
        vmdir = self.root / "vms" / vm.name
        lines = [
            f"ListenAddress {host.address}:22",
            f"HostKey {vmdir / 'ssh_host_ed25519_key'}",
            "PidFile none",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "StrictModes no",                      # the keys sit under the test's tmp dir
            "UsePAM no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 200:30:400",
            "MaxSessions 100",
            "Subsystem sftp internal-sftp",
            "LogLevel INFO",
        ]
        env = []
        if kind.proxy:
            proxy = f"http://{self.gateway}:{PROXY_PORT}"       # nothing listens there: refused
            env += [f"{name}={proxy}" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")]
        if kind.mode == "arc":
            env += [f"IDENTITY_ENDPOINT=http://localhost:{HIMDS_PORT}/metadata/identity/oauth2/token",
                    f"IMDS_ENDPOINT=http://localhost:{HIMDS_PORT}"]
        if env:
            lines.append("SetEnv " + " ".join(env))
        (vmdir / "sshd_config").write_text("\n".join(lines) + "\n")

    def _spawn(self, label: str, netns: str, init: Path, log: Path, *, uts_mount: bool) -> None:
        ns_flags = ["--uts", "--mount", "--propagation", "private"] if uts_mount else []
        cmd = ["ip", "netns", "exec", netns, "unshare", *ns_flags, "--pid", "--fork", "--kill-child",
               "--mount-proc", "/bin/sh", str(init)]
        env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "HOME") if k in os.environ}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=_pdeathsig, env=env, cwd="/")
        self._procs.append((label, proc))

    def _start(self) -> None:
        for vm in self.vms:
            host, vmdir = self.hosts[vm.name], self.root / "vms" / vm.name
            if host.platform_netns:
                self._spawn(f"{vm.name}/platform", host.platform_netns, self._platform_init(vm),
                            vmdir / "platform" / "init.log", uts_mount=False)
            self._sshd_config(vm)
            self._spawn(vm.name, host.netns, self._vm_init(vm), vmdir / "init.log", uts_mount=True)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + BRING_UP_TIMEOUT
        names = [vm.name for vm in self.vms]
        pending = set(names)
        listening = {vm.name for vm in self.vms if not KINDS[vm.kind].sshd}
        while True:
            for label, proc in self._procs:
                if proc.poll() is not None:
                    name = label.split("/")[0]
                    raise RigError(f"{label} did not come up (exit {proc.returncode}):\n" + self.log(name))
            for name in sorted(pending):
                vmdir = self.root / "vms" / name
                if (vmdir / "ready").exists():
                    pending.discard(name)
                    host = self.hosts[name]
                    vm_id = (vmdir / ("platform/vm_id" if host.platform_netns else "vm_id")).read_text().strip()
                    smbios = (vmdir / "smbios_uuid").read_text().strip()
                    self.hosts[name] = replace(host, vm_id=vm_id or None, smbios_uuid=smbios or None)
            for name in sorted(set(names) - pending - listening):
                try:
                    with socket.create_connection((self.hosts[name].address, 22), timeout=0.5) as sock:
                        sock.settimeout(2)
                        if sock.recv(64).startswith(b"SSH-2.0-"):
                            listening.add(name)
                except OSError:
                    pass
            if not pending and len(listening) == len(names):
                return
            if time.monotonic() > deadline:
                late = sorted(pending | (set(names) - listening))
                raise RigError(f"VMs not up after {BRING_UP_TIMEOUT:.0f} s: {', '.join(late)}\n"
                               + "\n".join(self.log(n) for n in late))
            time.sleep(0.02)

    def _write_known_hosts(self) -> None:
        lines = []
        for vm in self.vms:
            key = (self.root / "vms" / vm.name / "ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"{self.hosts[vm.name].address} {key[0]} {key[1]}")
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def _write_inventory(self) -> None:
        hosts: dict[str, Any] = {}
        for vm in self.vms:
            kind, host = KINDS[vm.kind], self.hosts[vm.name]
            hv: dict[str, Any] = {
                "ansible_host": host.address,
                "ansible_python_interpreter": self.vm_python,
                "imds_target": kind.mode,
                "imds_expect_hostname": vm.name,
            }
            if host.vm_id:
                hv["imds_expect_vm_id"] = host.vm_id
            if host.smbios_uuid:
                hv["imds_expect_smbios_uuid"] = host.smbios_uuid
            if kind.unknown_client_id:
                hv["imds_client_ids"] = [_uuid4()]
            if kind.mode == "arc":
                hv["imds_tokens_dir"] = TOKENS_DIR
            hosts[vm.name] = hv
            self.hosts[vm.name] = replace(host, vars=dict(hv))
        inventory = {"all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(self.client_key),
                "ansible_ssh_common_args": self.ssh_common_args(),
            },
            "hosts": hosts,
        }}
        header = ("# Written by tests/fleet/rig.py: namespace VMs inside one private network namespace\n"
                  "# (tests/isolated.sh). Every address below exists only there.\n")
        self.inventory.write_text(header + _yaml(inventory) + "\n")

    def _write_ansible_cfg(self) -> None:
        self.ansible_cfg.write_text("\n".join([
            "# Written by tests/fleet/rig.py for its namespace VMs.",
            "[defaults]",
            f"inventory = {self.inventory}",
            "host_key_checking = True",
            f"interpreter_python = {self.vm_python}",
            "remote_tmp = /var/tmp/.ansible",
            f"local_tmp = {self.root / 'ansible-home' / 'tmp'}",
            f"forks = {self.forks}",
            "timeout = 10",
            "gathering = explicit",
            "retry_files_enabled = False",
            "nocows = True",
            "",
            "[ssh_connection]",
            "pipelining = True",
            f"control_path_dir = {self.control_dir}",
            "control_path = %(directory)s/%%h-%%p-%%r",
            f"ssh_args = -o ControlMaster=auto -o ControlPersist=30s -o UserKnownHostsFile={self.known_hosts}"
            " -o StrictHostKeyChecking=yes",
            "",
        ]))

    # -- tear down ----------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop every VM process, close SSH masters, delete links and namespaces. Returns the
        problems met (empty when everything went)."""
        problems: list[str] = []
        cp = self.root / "cp"
        for sock in sorted(cp.iterdir()) if cp.is_dir() else []:
            if sock.is_socket():
                subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "rig"],
                               capture_output=True, timeout=10)
        # PID 1 of each VM first: the kernel then kills everything in that PID namespace, and
        # unshare (waiting for it) exits only once they are all gone.
        for _, proc in self._procs:
            if proc.poll() is None:
                for pid in _children(proc.pid) or [proc.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        for label, proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                problems.append(f"{label}: process {proc.pid} did not exit")
        self._procs.clear()
        for ns in self._netns:     # anything else started in a VM's namespace (by a test, say)
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        # Deleting one end of a veth deletes the pair at once; a namespace itself goes lazily.
        for link in self._links + ([self._bridge] if self._bridge else []):
            r = subprocess.run(["ip", "link", "del", link], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"ip link del {link}: {r.stderr.strip()}")
        self._links.clear()
        self._bridge = None
        for ns in self._netns:
            r = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"ip netns del {ns}: {r.stderr.strip()}")
        self._netns.clear()
        if self._cp_link is not None:
            with contextlib.suppress(OSError):
                self._cp_link.unlink()
            self._cp_link = None
        return problems


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _uuid4() -> str:
    import uuid
    return str(uuid.uuid4())


@contextlib.contextmanager
def fleet(tmp_path: Path | str, vms: Iterable["str | VM"] = DEFAULT_VMS, *, forks: int | None = None,
          python: str | None = None) -> Iterator[Rig]:
    """Bring up the namespace VMs under ``tmp_path/rig``; tear them all down on exit.
    ``vms``: kinds (each VM named after its kind) or ``VM(name, kind)`` rows. Raises
    :class:`RigError` when the machine cannot (:func:`unavailable`) or a VM does not come up."""
    vms = [VM.of(v) for v in vms]
    reason = unavailable(vms)
    if reason:
        raise RigError(reason)
    rig = Rig(Path(tmp_path) / "rig", vms, forks=forks, python=python)
    try:
        rig.up()
        yield rig
    finally:
        problems = rig.down()
        if problems and sys.exc_info()[0] is None:
            raise RigError("teardown: " + "; ".join(problems))
