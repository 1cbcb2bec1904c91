"""Suite-wide guard: outside the private namespace of tests/isolated.sh, a test that tries to
connect anywhere but loopback fails at once instead of sending a packet. (Inside the namespace
the kernel already makes that impossible: only `lo` exists.)"""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

# Every emulator honours a canary from the environment; the suite wants fresh random ones
# (and kernels started by papermill inherit this process's environment).
os.environ.pop("IMDS_EMULATOR_CANARY", None)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(address) -> None:
    if not isinstance(address, tuple):
        return  # AF_UNIX and friends
    host = address[0]
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if host == "localhost":
            return
        raise OSError(f"test isolation: refusing to connect to {host!r} outside the private namespace")
    if not ip.is_loopback:
        raise OSError(f"test isolation: refusing to connect to {ip} outside the private namespace")


def _guarded_connect(self, address):
    _loopback_only(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _loopback_only(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_traffic_off_this_machine():
    if os.environ.get("IMDS_RUNBOOK_NETNS") == "1":
        yield
        return
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    try:
        yield
    finally:
        socket.socket.connect = _real_connect
        socket.socket.connect_ex = _real_connect_ex


# --- reliability counts ------------------------------------------------------------------------
# Tests add what they actually exercised; the terminal summary prints one line, e.g.
#   reliability: 40 scenarios covered, 14 bad inputs tried, 1200 fuzz cases, 3000 requests under
#   load, 0 leaks, 0 lost
# Scenarios are distinct names (a set); the rest are plain counters.


class ReliabilityCounts:
    KINDS = ("bad_inputs", "fuzz_cases", "load_requests", "leaks", "lost", "objects_scanned")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {kind: 0 for kind in self.KINDS}
        self.scenarios: set[str] = set()

    def add(self, kind: str, n: int = 1) -> None:
        if kind not in self.counts:
            raise KeyError(f"unknown reliability counter {kind!r} (known: {', '.join(self.KINDS)})")
        self.counts[kind] += n

    def scenario(self, name: str) -> None:
        self.scenarios.add(name)

    @property
    def touched(self) -> bool:
        return bool(self.scenarios) or any(self.counts.values())

    def line(self) -> str:
        c = self.counts
        return (f"reliability: {len(self.scenarios)} scenarios covered, {c['bad_inputs']} bad inputs tried, "
                f"{c['fuzz_cases']} fuzz cases, {c['load_requests']} requests under load, "
                f"{c['leaks']} leaks ({c['objects_scanned']} objects scanned), {c['lost']} lost")


RELIABILITY = ReliabilityCounts()


@pytest.fixture(scope="session")
def reliability_counts() -> ReliabilityCounts:
    return RELIABILITY


def pytest_runtest_logreport(report) -> None:
    # Every fault-matrix row that passed is a scenario covered (tests/matrix needs no change).
    if report.when == "call" and report.passed and "matrix/test_fault_matrix.py::" in report.nodeid \
            and "[" in report.nodeid:
        RELIABILITY.scenario("matrix:" + report.nodeid.split("[", 1)[1].rstrip("]"))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if RELIABILITY.touched:
        terminalreporter.write_line(RELIABILITY.line())


@pytest.fixture
def make_emulator():
    """Factory: ``make_emulator(mode=..., scenario=..., ...)``; every emulator is closed at teardown."""
    from imds_helpers.emulator import Emulator

    started = []

    def make(**kwargs):
        emu = Emulator(**kwargs)
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.close()
