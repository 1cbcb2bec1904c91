"""Running host commands (systemctl, iptables-save, nft, ip, netsh ...) for the checks.

Every command gets a timeout and the C locale; a missing binary, a permission error or a
timeout comes back as evidence in :class:`CommandOutput`, never as an exception. A check
takes a :data:`Runner` so tests can hand it captured outputs instead.

:class:`CommandPrefetch` starts commands before the step that reads them: the quick check
and a runbook's first cell start the Linux evidence commands first thing, and they finish
while Python is still importing the steps; the route lookups start once the platform step
has chosen the endpoint, and finish while the proxy step runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Iterable, Sequence

from imds_helpers.model.evidence import (COMMAND_TIMEOUT, HIMDS_STATE_LINUX, IPTABLES_SAVE, LINUX_EVIDENCE,
                                   LINUX_HIMDS_UNIT, NFT_RULESET, CommandOutput, Runner)


def evidence_commands() -> tuple[tuple[str, ...], ...]:
    """The commands every check run on this OS reads, whatever the target (to prefetch)."""
    return LINUX_EVIDENCE if sys.platform.startswith("linux") else ()


def run_command(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> CommandOutput:
    """Run ``argv`` (no shell) with a timeout and the C locale; never raises."""
    args, start = tuple(argv), time.monotonic()
    return _collect(_start(args), args, start, timeout)


def _start(args: tuple[str, ...]) -> subprocess.Popen | str:
    """The running process, or the error kind when it could not start."""
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    except FileNotFoundError:
        return "not_found"
    except PermissionError:
        return "permission_denied"
    except (OSError, ValueError) as exc:
        return f"os_error: {exc}"


def _collect(proc: subprocess.Popen | str, args: tuple[str, ...], start: float, timeout: float) -> CommandOutput:
    """Read ``proc`` for at most ``timeout`` seconds from now, killing it after that.

    From now, not from ``start``: a prefetched command may have finished long ago, or be
    blocked on a full pipe until someone reads it; neither is a timeout. ``elapsed_ms``
    counts from ``start``.
    """
    if isinstance(proc, str):
        return CommandOutput(args, None, error=proc, elapsed_ms=_ms(start))
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _stop(proc)
        return CommandOutput(args, None, _decode(exc.stdout), _decode(exc.stderr), error="timeout",
                             elapsed_ms=_ms(start))
    return CommandOutput(args, proc.returncode, _decode(stdout), _decode(stderr), elapsed_ms=_ms(start))


def _stop(proc: subprocess.Popen) -> None:
    # wait(), not communicate(): a grandchild that inherited the pipes would keep them open
    # and a read would never end (subprocess.run does the same on POSIX).
    proc.kill()
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


class CommandPrefetch:
    """A :data:`Runner` whose commands were started ahead of time.

    Each prefetched command is handed out once, to the first call with the same argv, which
    waits at most its timeout from the call. Any other call (or a second one) runs now, and
    so does a call more than ``max_age`` seconds after the prefetch started: in a notebook
    run cell by cell, the firewall may have been changed since. ``close()`` kills whatever
    nobody collected.
    """

    def __init__(self, commands: Iterable[Sequence[str]], max_age: float | None = None) -> None:
        self._max_age = max_age
        self._pending: dict[tuple[str, ...], tuple[subprocess.Popen | str, float]] = {}
        self.start(commands)

    def start(self, commands: Iterable[Sequence[str]]) -> None:
        """Start more commands now, e.g. once the endpoint they depend on is known; one
        already pending is not started twice."""
        for argv in commands:
            args = tuple(argv)
            if args not in self._pending:
                self._pending[args] = (_start(args), time.monotonic())

    def __call__(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> CommandOutput:
        args = tuple(argv)
        started = self._pending.pop(args, None)
        if started is None:
            return run_command(args, timeout)
        proc, start = started
        if self._max_age is not None and time.monotonic() - start > self._max_age:
            if not isinstance(proc, str):
                _stop(proc)
            return run_command(args, timeout)
        return _collect(proc, args, start, timeout)

    @property
    def pending(self) -> tuple[tuple[str, ...], ...]:
        return tuple(self._pending)

    def close(self) -> None:
        for proc, _ in self._pending.values():
            if not isinstance(proc, str):
                _stop(proc)
        self._pending.clear()

    def __enter__(self) -> CommandPrefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


def _ms(start: float) -> float:
    return (time.monotonic() - start) * 1000.0


__all__ = ["COMMAND_TIMEOUT", "CommandOutput", "CommandPrefetch", "HIMDS_STATE_LINUX", "IPTABLES_SAVE", "LINUX_EVIDENCE",
           "LINUX_HIMDS_UNIT", "NFT_RULESET", "Runner", "evidence_commands", "run_command"]
