"""The suite runs in a private loopback-only network namespace (tests/isolated.sh)."""

from __future__ import annotations

import os
import socket

import pytest

netns = pytest.mark.skipif(os.environ.get("IMDS_RUNBOOK_NETNS") != "1",
                           reason="needs tests/isolated.sh's private network namespace (unshare unavailable)")


@netns
def test_only_loopback_interface_exists():
    assert [name for _, name in socket.if_nameindex()] == ["lo"]


@netns
def test_metadata_address_is_local_and_bindable():
    with socket.socket() as sock:
        sock.bind(("169.254.169.254", 0))
        assert sock.getsockname()[0] == "169.254.169.254"


@netns
def test_arc_tokens_dir_is_private():
    assert os.environ.get("IMDS_RUNBOOK_TOKENS_DIR_MOUNTED") == "1"
    assert os.path.isdir("/var/opt/azcmagent/tokens")
