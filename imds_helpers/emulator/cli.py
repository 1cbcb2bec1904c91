"""``imds-runbook emulator``: serve an emulated IMDS / Arc HIMDS until SIGINT or SIGTERM.

The base URL is the first line on stdout (flushed), so a parent process can read it:
``url=$(imds-runbook emulator --scenario vm-throttled | head -1)``. ``--list`` prints the
scenario table. Bad input is a :class:`~imds_helpers.model.errors.UsageError` (one line, exit 2).

``--scenario-file PATH``: the first word of that file names the scenario; the file is re-read
when it changes (polled every 0.5 s), so a running emulator can be switched without signals.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any

from imds_helpers.emulator.scenarios import DEFAULTS, MODES, SCENARIOS, get_scenario
from imds_helpers.emulator.tokens import CANARY_ENV
from imds_helpers.model.errors import UsageError

SCENARIO_FILE_POLL = 0.5


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list", action="store_true", help="print the scenarios (name, mode, description) and exit")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="vm (Azure IMDS) or arc (Arc HIMDS); default: the scenario's mode, else vm")
    parser.add_argument("--scenario", default=None, help="scenario name (default: vm-healthy / arc-healthy)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a scenario setting (VALUE is JSON when it parses), e.g. for_seconds=1")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; non-loopback needs --allow-remote (or a lo-only namespace)")
    parser.add_argument("--port", default="0", help="TCP port (0: any free port)")
    parser.add_argument("--key-dir", default=None,
                        help="arc mode: directory for challenge key files (default: a fresh temp dir; "
                             "the real agent uses /var/opt/azcmagent/tokens)")
    parser.add_argument("--canary", default=None,
                        help=f"string put into every token and Arc secret (default: ${CANARY_ENV} or random)")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    parser.add_argument("--os-type", default="Linux", choices=("Linux", "Windows"), help="instance document flavour")
    parser.add_argument("--no-rate-limits", action="store_true", help="vm mode: switch off the 429 rate limits")
    parser.add_argument("--scenario-file", default=None, metavar="PATH",
                        help="re-read the scenario name from PATH whenever the file changes")


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"expected KEY=VALUE, got {item!r}", argument="--param")
        if key not in DEFAULTS:
            raise UsageError(f"unknown scenario setting {key!r}", argument="--param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def _parse_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise UsageError(f"not a port number: {raw!r}", argument="--port") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"port out of range 0-65535: {port}", argument="--port")
    return port


def _list() -> int:
    width = max(len(name) for name in SCENARIOS)
    lines = [f"{row.name:<{width}}  {row.mode:<3}  {row.description}" for row in SCENARIOS.values()]
    try:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `--list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _read_scenario_file(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            words = fh.read(4096).split()
    except OSError:
        return None
    return words[0] if words else None


def _watch_scenario_file(emu: Any, path: str, stop: threading.Event) -> None:
    last = None
    while not stop.wait(SCENARIO_FILE_POLL):
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            continue
        if stamp == last:
            continue
        last = stamp
        name = _read_scenario_file(path)
        if not name or name == emu.scenario:
            continue
        try:
            emu.set_scenario(name)
            sys.stderr.write(f"emulator: scenario {name}\n")
        except UsageError as err:
            sys.stderr.write(f"emulator: ignoring {path}: {err}\n")
        sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    port = _parse_port(args.port)
    params = _parse_params(args.param)
    scenario = args.scenario
    if args.scenario_file and scenario is None:
        scenario = _read_scenario_file(args.scenario_file)
    mode = args.mode
    if mode is None:
        mode = get_scenario(scenario).mode if scenario else "vm"
    get_scenario(scenario, mode)  # unknown name / wrong mode -> UsageError before binding
    canary = args.canary or None      # else the Emulator reads $IMDS_EMULATOR_CANARY

    from imds_helpers.emulator.server import Emulator

    emu = Emulator(mode=mode, scenario=scenario, host=args.host, port=port, key_dir=args.key_dir,
                   canary=canary, allow_remote=args.allow_remote, os_type=args.os_type,
                   scenario_params=params, rate_limits=not args.no_rate_limits)
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sys.stdout.write(emu.base_url + "\n")
        sys.stdout.flush()
        sys.stderr.write(f"emulator: mode={emu.mode} scenario={emu.scenario} canary={emu.canary}"
                         + (f" key_dir={emu.key_dir}" if emu.key_dir else "") + "\n")
        sys.stderr.flush()
        if args.scenario_file:
            threading.Thread(target=_watch_scenario_file, args=(emu, args.scenario_file, stop),
                             daemon=True).start()
        while not stop.wait(0.5):
            pass
    finally:
        emu.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
