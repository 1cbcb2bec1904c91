"""Suite-wide guard: outside the private namespace of tests/isolated.sh, a test that tries to
connect anywhere but loopback fails at once instead of sending a packet. (Inside the namespace
the kernel already makes that impossible: only `lo` exists.)"""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

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
