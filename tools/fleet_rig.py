#!/usr/bin/env python3
"""Bring up the fleet of namespace VMs the fleet tests use (tests/fleet/rig.py), do something
with it over real SSH, and tear it all down. Runs only inside tests/isolated.sh, as root:

    tests/isolated.sh .venv/bin/python tools/fleet_rig.py demo --out reports/fleet-demo
    tests/isolated.sh .venv/bin/python tools/fleet_rig.py run -- ansible all -m ping -o

``demo`` (what `make fleet-demo` runs) shows the VMs and their faults, runs
`imds-runbook fleet -i INVENTORY --out DIR` against them, and prints what came out; where that
command is not installed it stops at `ansible all -m ping`. ``run`` runs any command with the
rig's Ansible environment; ``{inventory}`` in its arguments becomes the inventory's path (also in
$FLEET_INVENTORY). The rig's own files (keys, logs holding the emulators' canaries) live in a
temporary directory, never in --out.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_rig():
    """tests/fleet/rig.py is the one implementation; this tool loads it by path."""
    path = ROOT / "tests" / "fleet" / "rig.py"
    spec = importlib.util.spec_from_file_location("imds_fleet_rig", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


rig_module = _load_rig()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet_rig.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("demo", "bring the fleet up, diagnose it with `imds-runbook fleet`, tear it down"),
                            ("run", "bring the fleet up, run a command against it, tear it down")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--vms", default=",".join(rig_module.DEFAULT_VMS),
                       help="comma-separated VM kinds, or NAME=KIND (default: one of each kind: %(default)s)")
        p.add_argument("--forks", type=int, default=None, help="Ansible forks (default: one per VM)")
        p.add_argument("--keep-rig", action="store_true", help="keep the rig's files (keys, logs) afterwards")
        if name == "demo":
            p.add_argument("--out", default="reports/fleet-demo", help="output folder (default: %(default)s)")
        else:
            p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    return parser


def _vms(spec: str) -> list:
    vms = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, kind = item.partition("=")
        kind = kind or name
        if kind not in rig_module.KINDS:
            raise ValueError(f"unknown VM kind {kind!r} (known: {', '.join(rig_module.KINDS)})")
        vms.append(rig_module.VM(name, kind))
    if not vms:
        raise ValueError("no VMs")
    return vms


def _say(text: str = "") -> None:
    print(text, flush=True)


def _table(rig) -> None:
    rows = [(name, host.address,
             (", ".join(host.expect_codes) or "healthy") if host.expect_status == "diagnosed" else host.expect_status,
             host.description) for name, host in rig.hosts.items()]
    header = ("host", "address", "expected", "fault")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        _say("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    _say()


def _fleet_command(rig) -> list[str] | None:
    """`imds-runbook fleet` when this install has it, else None."""
    exe = Path(sys.executable).parent / "imds-runbook"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "imds_helpers"]
    probe = subprocess.run([*cmd, "fleet", "--help"], capture_output=True, text=True, env=rig.ansible_env())
    return cmd if probe.returncode == 0 else None


def _demo(rig, args) -> int:
    out = Path(args.out)
    cmd = _fleet_command(rig)
    if cmd is None:
        _say("note: `imds-runbook fleet` is not in this install yet; showing the fleet with `ansible all -m ping`")
        _say(f"\ninventory ({rig.inventory}):\n{rig.inventory.read_text()}")
        ansible = rig_module.ansible_bin("ansible")
        if not ansible:
            _say("no ansible in this install: pip install -e '.[fleet]'")
            return 2
        subprocess.run([ansible, "all", "-o", "-m", "ping"], env=rig.ansible_env())
        return 0      # the broken VMs fail on purpose: ping exits 4 whatever
    if out.exists():
        shutil.rmtree(out)
    argv = [*cmd, "fleet", "-i", str(rig.inventory), "--out", str(out), "--forks", str(rig.forks)]
    _say(f"\n$ imds-runbook fleet -i {rig.inventory.name} --out {out} --forks {rig.forks}")
    started = time.monotonic()
    rc = subprocess.run(argv, env=rig.ansible_env()).returncode
    _say(f"\n(exit {rc} after {time.monotonic() - started:.1f} s; the reports are in {out}/)")
    leaked = [name for name, host in rig.hosts.items() if _holds(out, host.canary)]
    if leaked:
        _say(f"ERROR: a token from {', '.join(leaked)} is in {out}")
        return 1
    return 0 if out.exists() and any(out.iterdir()) else (rc or 1)


def _holds(folder: Path, needle: str) -> bool:
    data = needle.encode()
    return any(p.is_file() and data in p.read_bytes() for p in folder.rglob("*")) if folder.exists() else False


def _run(rig, args) -> int:
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        _say("fleet_rig.py run: no command (usage: fleet_rig.py run -- COMMAND ...)")
        return 2
    argv = [a.replace("{inventory}", str(rig.inventory)) for a in argv]
    env = rig.ansible_env()
    env["FLEET_INVENTORY"] = str(rig.inventory)
    try:
        return subprocess.run(argv, env=env).returncode
    except OSError as err:
        _say(f"fleet_rig.py run: {argv[0]}: {err.strerror}")
        return 127


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        vms = _vms(args.vms)
    except ValueError as err:
        _say(f"fleet_rig.py: --vms: {err}")
        return 2
    reason = rig_module.unavailable(vms)
    if reason:
        _say(f"fleet_rig.py: cannot build the fleet here: {reason}")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="imds-fleet-rig-"))
    try:
        started = time.monotonic()
        with rig_module.fleet(workdir, vms=vms, forks=args.forks) as rig:
            _say(f"fleet up: {len(rig.hosts)} namespace VMs in {time.monotonic() - started:.1f} s "
                 f"(bridge {rig.gateway}/24, addresses that exist only in this namespace)\n")
            _table(rig)
            rc = _demo(rig, args) if args.command == "demo" else _run(rig, args)
        _say("fleet down: every VM, namespace and link removed")
        return rc
    except rig_module.RigError as err:
        _say(f"fleet_rig.py: {err}")
        return 1
    finally:
        if args.keep_rig:
            _say(f"rig files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
