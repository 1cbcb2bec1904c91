"""Errors that reach the user.

UsageError
    Bad input (arguments, parameter files, parameters). The CLI prints its message as one
    line and exits with code 2; nothing is written. Its message names the offending
    argument or parameter.

Network trouble is never an exception here: checks turn it into findings.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 1000


def one_line(text: str) -> str:
    """``text`` as one printable line of bounded length, without a URL's password: line breaks
    and other control characters (a value quoted from a file, an OS error naming a path) are
    escaped, so a usage error is always exactly one line and cannot drive the terminal."""
    from imds_helpers.model.redact import hide_url_credentials_in
    from imds_helpers.model.textsafe import terminal_safe

    text = terminal_safe(hide_url_credentials_in(text))   # whatever quoted it: no password, no escapes
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."


class UsageError(Exception):
    """Bad input. ``str(err)`` is the one line shown to the user (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        self.argument = argument
        super().__init__(one_line(f"{argument}: {message}" if argument else message))

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: a bad parameter stops a runbook's
        # first cell with one line.
        return [f"UsageError: {self}"]
