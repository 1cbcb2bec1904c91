"""Run Python as another user (uid/gid 65534) against the code under test, wherever the
checkout is.

A clone in a private directory (root's home is mode 0700) is not readable by that user, and
neither is a virtualenv inside it: the child gets a copy of the ``imds_helpers`` package in a
fresh world-readable temporary folder, put first on its ``sys.path``, and the first Python
interpreter it can run (this one, or the one behind the virtualenv). The package's host-side
core is standard library only, so the copy needs nothing else. Where that user cannot run
Python at all, or the platform cannot drop privileges, the test skips naming the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

import imds_helpers

UID = 65534
DROP = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups"]


def _readable_copy() -> str:
    """A 0755 folder holding a copy of the package this test process imported."""
    folder = tempfile.mkdtemp(prefix="imds-runbook-other-user-")
    source = Path(imds_helpers.__file__).resolve().parent
    shutil.copytree(source, Path(folder) / "imds_helpers",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    return folder


def _interpreters() -> list[str]:
    found = [sys.executable, os.path.realpath(sys.executable), getattr(sys, "_base_executable", "")]
    return [p for p in dict.fromkeys(found) if p]


def prelude(folder: str) -> str:
    """Code that puts the copy first on the child's sys.path (also ahead of an editable
    install's finder) - the child never imports the checkout."""
    return f"import sys; sys.path.insert(0, {folder!r})\n"


class OtherUser:
    """``run(code, *args)``: ``python -c code args`` as uid 65534, importing the copy."""

    def __init__(self, folder: str, python: str) -> None:
        self.folder = folder
        self.python = python

    def run(self, code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        # -s: no user site; -E: no PYTHON* variables from this environment (PYTHONPATH would
        # point into the private checkout). cwd=/: the child's cwd must be one it can enter.
        return subprocess.run([*DROP, self.python, "-s", "-E", "-c", prelude(self.folder) + code, *args],
                              capture_output=True, text=True, timeout=timeout, cwd="/")


def other_user() -> Iterator[OtherUser]:
    """Generator for a fixture: an :class:`OtherUser`, or a skip naming why there is none."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip(f"dropping to uid {UID} needs root")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    folder = _readable_copy()
    try:
        probe = "import os, imds_helpers; print(os.geteuid(), imds_helpers.__file__)"
        expected = f"{UID} {os.path.join(folder, 'imds_helpers', '__init__.py')}"
        problems = []
        for python in _interpreters():
            user = OtherUser(folder, python)
            try:
                out = user.run(probe, timeout=30)
            except subprocess.TimeoutExpired:
                problems.append(f"{python}: timed out")
                continue
            if out.returncode == 0 and out.stdout.strip() == expected:
                yield user
                return
            problems.append(f"{python}: {(out.stderr.strip().splitlines() or [out.stdout.strip()])[-1][:200]}")
        pytest.skip(f"uid {UID} cannot run Python on the package copy here: {'; '.join(problems)}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
