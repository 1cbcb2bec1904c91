"""Errors that reach the user.

UsageError
    Bad input (arguments, parameter files, parameters). The CLI prints its message as one
    line and exits with code 2; nothing is written. Its message names the offending
    argument or parameter.

Network trouble is never an exception here: checks turn it into findings.
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad input. ``str(err)`` is the one line shown to the user (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}" if argument else message)

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: a bad parameter stops a runbook's
        # first cell with one line.
        return [f"UsageError: {self}"]
