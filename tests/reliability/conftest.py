"""Shared helpers for the reliability suite: the namespace guard, the CLI runner, scans for
secrets, and loopback utilities."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

import pytest

REPO = Path(__file__).resolve().parents[2]
IMDS = "169.254.169.254"
IN_NETNS = os.environ.get("IMDS_RUNBOOK_NETNS") == "1"
netns = pytest.mark.skipif(not IN_NETNS, reason="needs tests/isolated.sh's private network namespace: "
                           "only there may the tests own 169.254.169.254 and localhost:40342")

JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.")
# "Basic <value>" / "Bearer <value>" whose value is not the placeholder, plain or HTML-escaped.
# (``Basic realm=<path>`` is HIMDS's challenge, not a credential.)
AUTH_VALUE = re.compile(r"\b(?:Basic|Bearer)\s+(?!(?:<|&lt;)(?:redacted|secret)|realm=)[^\s\"'\\,]{8,}",
                        re.IGNORECASE)

# Variables that would steer a client somewhere else: a CLI run starts without them.
_STEERING = re.compile(r"^(?:.*_proxy|IMDS_RUNBOOK_ENDPOINT|IDENTITY_ENDPOINT|IMDS_ENDPOINT|IDENTITY_HEADER|"
                       r"MSI_ENDPOINT|MSI_SECRET|REQUEST_METHOD)$", re.IGNORECASE)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _STEERING.match(k)}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def cli(args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    """``imds-runbook ARGS`` as a user runs it (``python -m imds_helpers``)."""
    return subprocess.run([sys.executable, "-m", "imds_helpers", *args], capture_output=True, text=True,
                          env=dict(env) if env is not None else clean_env(), cwd=cwd or REPO, timeout=timeout)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def secrets_in(text: str, canaries: Sequence[str] = ()) -> list[str]:
    """What in ``text`` looks like a leaked secret: a canary, a JWT, a Basic/Bearer value."""
    found = [c for c in canaries if c and c in text]
    found += JWT.findall(text)
    found += AUTH_VALUE.findall(text)
    return found
