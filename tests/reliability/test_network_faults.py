"""Real network faults through the whole diagnosis (private namespace only).

The emulator serves the REAL endpoints (Azure IMDS on 169.254.169.254:80, Arc HIMDS on
localhost:40342) and the kernel breaks the path to them: iptables DROP / REJECT, the address
removed, nothing listening. Each row runs ``python -m imds_helpers check --json --target ...``
against the default endpoint (no --endpoint) and asserts the named verdict: the network.tcp
code and error kind, the firewall / route codes where they tell the cause, every later HTTP
step skipped, and the verdict within the step's time budget. A new fault is one new row.

Two control rows (the same emulator, no fault) prove the harness: they pass the whole chain.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterator

import pytest

from imds_helpers.emulator import Emulator

from .conftest import IMDS, cli, clean_env, netns

pytestmark = netns
ARC_PORT = 40342
TOKENS_DIR = "/var/opt/azcmagent/tokens"
HAS_IPTABLES = shutil.which("iptables") is not None


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=10)


@contextmanager
def rule(*spec: str, table: str = "filter") -> Iterator[None]:
    """One iptables rule for the duration of the block, removed in ``finally``."""
    _sh("iptables", "-t", table, "-I", *spec)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-t", table, "-D", *spec], capture_output=True, timeout=10)


@contextmanager
def address_removed() -> Iterator[None]:
    _sh("ip", "addr", "del", f"{IMDS}/32", "dev", "lo")
    try:
        yield
    finally:
        subprocess.run(["ip", "addr", "add", f"{IMDS}/32", "dev", "lo"], capture_output=True, timeout=10)


def _to(address: str, port: int) -> tuple[str, ...]:
    return ("OUTPUT", "-d", address, "-p", "tcp", "--dport", str(port), "-j")


VM_OUT = _to(IMDS, 80)
ARC_OUT = _to("127.0.0.1", ARC_PORT)


@dataclass(frozen=True)
class Fault:
    name: str
    target: str                                   # vm | arc
    fault: Callable[[], ContextManager] | None    # the broken path (None: a control row)
    tcp: str                                      # network.tcp code
    kind: str | None                              # network.tcp evidence error_kind
    budget_s: float                               # the whole check's verdict must come within this
    emulator: bool = True                         # the emulator serves the endpoint meanwhile
    firewall: str | None = None                   # network.firewall code, when it tells the cause
    route: str | None = None                      # network.route code, when it tells the cause
    args: tuple[str, ...] = ()
    tcp_at_least_s: float = 0.0                   # a timeout must really have been waited for
    iptables: bool = False
    extra: dict[str, str] = field(default_factory=dict)   # more check id -> code


FAULTS: tuple[Fault, ...] = (
    # --- controls: the same set-up without a fault passes the whole chain
    Fault("vm-control-healthy", "vm", None, "IMDS-NET-010", None, 3.0, route="IMDS-NET-004",
          firewall="IMDS-NET-020", extra={"metadata.instance": "IMDS-META-000",
                                          "token.system.management": "IMDS-TOKEN-000"}),
    Fault("arc-control-healthy", "arc", None, "IMDS-NET-010", None, 3.0, route="IMDS-NET-001",
          firewall="IMDS-NET-020", args=("--tokens-dir", TOKENS_DIR),
          extra={"arc.challenge": "IMDS-ARC-001", "arc.token": "IMDS-ARC-000"}),
    # --- Azure IMDS on 169.254.169.254:80
    Fault("vm-iptables-drop", "vm", lambda: rule(*VM_OUT, "DROP"), "IMDS-NET-011", "connect_timeout", 3.0,
          firewall="IMDS-NET-021", tcp_at_least_s=1.9, iptables=True),
    Fault("vm-iptables-drop-timeout-1", "vm", lambda: rule(*VM_OUT, "DROP"), "IMDS-NET-011", "connect_timeout",
          1.8, firewall="IMDS-NET-021", args=("--timeout", "1"), tcp_at_least_s=0.9, iptables=True),
    Fault("vm-input-drops-replies", "vm", lambda: rule("INPUT", "-s", IMDS, "-j", "DROP"), "IMDS-NET-011",
          "connect_timeout", 3.0, firewall="IMDS-NET-021", tcp_at_least_s=1.9, iptables=True),
    Fault("vm-reject-tcp-reset", "vm", lambda: rule(*VM_OUT, "REJECT", "--reject-with", "tcp-reset"),
          "IMDS-NET-012", "connect_refused", 1.0, firewall="IMDS-NET-021", iptables=True),
    Fault("vm-reject-icmp-port-unreachable", "vm",
          lambda: rule(*VM_OUT, "REJECT", "--reject-with", "icmp-port-unreachable"),
          "IMDS-NET-012", "connect_refused", 1.0, firewall="IMDS-NET-021", iptables=True),
    Fault("vm-reject-icmp-host-unreachable", "vm",
          lambda: rule(*VM_OUT, "REJECT", "--reject-with", "icmp-host-unreachable"),
          "IMDS-NET-014", "host_unreachable", 1.0, firewall="IMDS-NET-021", iptables=True),
    Fault("vm-reject-icmp-net-unreachable", "vm",
          lambda: rule(*VM_OUT, "REJECT", "--reject-with", "icmp-net-unreachable"),
          "IMDS-NET-013", "network_unreachable", 1.0, firewall="IMDS-NET-021", iptables=True),
    Fault("vm-address-absent", "vm", address_removed, "IMDS-NET-013", "network_unreachable", 1.0,
          emulator=False, route="IMDS-NET-002"),
    Fault("vm-port-closed", "vm", None, "IMDS-NET-012", "connect_refused", 1.0, emulator=False,
          route="IMDS-NET-004", firewall="IMDS-NET-020"),
    # --- Arc HIMDS on localhost:40342
    # No rule rejects it: the refusal means HIMDS is down, and the challenge step says so.
    Fault("arc-nothing-listening", "arc", None, "IMDS-NET-012", "connect_refused", 1.0, emulator=False,
          route="IMDS-NET-001", firewall="IMDS-NET-020", extra={"arc.challenge": "IMDS-ARC-010"}),
    Fault("arc-iptables-drop", "arc", lambda: rule(*ARC_OUT, "DROP"), "IMDS-NET-011", "connect_timeout", 3.0,
          firewall="IMDS-NET-021", tcp_at_least_s=1.9, iptables=True),
    Fault("arc-reject-tcp-reset", "arc", lambda: rule(*ARC_OUT, "REJECT", "--reject-with", "tcp-reset"),
          "IMDS-NET-012", "connect_refused", 1.0, firewall="IMDS-NET-021", iptables=True),
)

LATER_STEPS = {"vm": ("metadata.instance", "token"), "arc": ("metadata.instance", "arc.challenge")}


def _ruleset() -> str:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=10).stdout
    return "\n".join(line for line in out.splitlines() if line.startswith("-A "))   # rules only


@pytest.fixture(scope="module", autouse=True)
def _rules_left_as_found() -> Iterator[None]:
    before = _ruleset() if HAS_IPTABLES else ""
    yield
    if HAS_IPTABLES:
        assert _ruleset() == before, "a fault row left an iptables rule behind"
    routes = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True,
                            timeout=10).stdout
    assert f"{IMDS}/32" in routes, "169.254.169.254 was not restored on lo"


def _emulator(row: Fault) -> ContextManager:
    if not row.emulator:
        return nullcontext(None)
    if row.target == "vm":
        return Emulator(mode="vm", scenario="vm-healthy", host=IMDS, port=80)
    key_dir = TOKENS_DIR if os.environ.get("IMDS_RUNBOOK_TOKENS_DIR_MOUNTED") == "1" else None
    return Emulator(mode="arc", scenario="arc-healthy", host="127.0.0.1", port=ARC_PORT, key_dir=key_dir)


@pytest.mark.parametrize("row", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_gets_its_named_verdict(row: Fault, reliability_counts, tmp_path):
    if row.iptables and not HAS_IPTABLES:
        pytest.skip("iptables is not installed (Debian package iptables)")
    if row.target == "arc" and row.fault is None and row.emulator and \
            os.environ.get("IMDS_RUNBOOK_TOKENS_DIR_MOUNTED") != "1":
        pytest.skip("the private /var/opt/azcmagent/tokens mount is not available")

    with _emulator(row) as emu, (row.fault() if row.fault else nullcontext()):
        started = time.monotonic()
        run = cli(["check", "--json", "--target", row.target, "--save-evidence", str(tmp_path / "evidence.json"),
                   *row.args], env=clean_env(), timeout=60)
        wall = time.monotonic() - started
        served = list(emu.request_log) if emu is not None else []

    assert "Traceback" not in run.stderr and run.stderr == "", run.stderr
    data = json.loads(run.stdout)
    assert run.returncode == (0 if data["verdict"] in ("ok", "skip") else 1)
    # The real kernel fault, kept as evidence and judged apart from the machine: the same report.
    analyzed = cli(["analyze", "--json", str(tmp_path / "evidence.json")], env=clean_env(), timeout=60)
    assert analyzed.returncode == run.returncode and analyzed.stderr == "", analyzed.stderr
    assert {k: v for k, v in json.loads(analyzed.stdout).items() if k != "elapsed_ms"} == \
        {k: v for k, v in data.items() if k != "elapsed_ms"}
    checks = {c["id"]: c for c in data["checks"]}
    expected_endpoint = f"http://{IMDS}" if row.target == "vm" else f"http://localhost:{ARC_PORT}"
    assert data["endpoint"] == expected_endpoint and data["target"] == row.target

    tcp = checks["network.tcp"]
    assert (tcp["code"], tcp["evidence"]["error_kind"]) == (row.tcp, row.kind), tcp["detail"]
    if row.route:
        assert checks["network.route"]["code"] == row.route, checks["network.route"]["detail"]
    if row.firewall:
        assert checks["network.firewall"]["code"] == row.firewall, checks["network.firewall"]["detail"]
    for check_id, code in row.extra.items():
        assert checks[check_id]["code"] == code, checks[check_id]["detail"]

    # Time: the verdict within the step's budget; a timeout really waited for its connect timeout.
    assert data["elapsed_ms"] / 1000 < row.budget_s, (data["elapsed_ms"], tcp["elapsed_ms"])
    assert row.tcp_at_least_s <= tcp["elapsed_ms"] / 1000 < max(row.tcp_at_least_s, 0.0) + 0.6
    assert wall < row.budget_s + 3.0     # interpreter start included

    if row.tcp == "IMDS-NET-010":
        assert served, "the control row never reached the emulator"
        reliability_counts.scenario(f"network:{row.name}")
        return
    assert data["verdict"] == "fail"
    for check_id in LATER_STEPS[row.target]:
        if check_id in row.extra:
            continue
        skipped = checks[check_id]
        assert skipped["status"] == "skip" and f"TCP connect failed ({row.tcp})" in skipped["detail"]
    later = [c for c in data["checks"] if c["id"].startswith(("token.", "arc.token", "arc.realm", "metadata.newest"))]
    if row.extra.get("arc.challenge") == "IMDS-ARC-010":   # the chain's later steps: not attempted
        assert [(c["id"], c["code"]) for c in later] == [("arc.realm", "IMDS-ARC-099"), ("arc.token", "IMDS-ARC-099")]
    else:
        assert later == []
    assert served == [], "the fault let a request through to the emulator"
    reliability_counts.scenario(f"network:{row.name}")


def test_every_fault_row_is_distinct():
    names = [f.name for f in FAULTS]
    assert len(names) == len(set(names))
