"""Outside text made safe to show: on a terminal (:func:`terminal_safe`, :func:`json_safe` for
printed JSON), in a spreadsheet (:func:`csv_safe`) and in markdown (:func:`markdown_safe`).

Whatever answers on the metadata address, and whatever is in a result file someone hands us,
can hold terminal escapes (ESC, CSI, OSC ... BEL: clear the screen, set the window title,
forge colours), line breaks that forge a finding, bidi overrides that reorder what a reader
sees, spreadsheet formulas and HTML. The renderers pass each line they print through these
at the point of rendering; the results themselves keep the original strings (``--json``
and the sidecars hold the same values; JSON writes the characters as escapes).

Standard library only: ``imds-runbook check`` uses it.
"""

from __future__ import annotations

import re

# C0 controls (tab and newline included: one finding stays one line), DEL, C1 controls,
# the bidi marks, embeddings, overrides and isolates ("Trojan Source"), the Unicode line and
# paragraph separators, and lone surrogates (which would make writing to stdout raise).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """``text`` with every control, bidi and line-separator character replaced by a visible
    escape (``\\x1b``, ``\\n``, ``\\u202e``, ...): one line, shown as it is, never interpreted.

    Printable text is returned as it is (the common case costs one ``isprintable()``).
    Backslashes are left alone, so Windows paths read as they are.
    """
    if text.isprintable():
        return text
    return _UNSAFE.sub(_escape, text)


# What json.dumps(ensure_ascii=False) leaves raw but a terminal must not get: DEL, C1, bidi,
# separators, lone surrogates (it escapes C0 itself).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def json_safe(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with the characters of
    :func:`terminal_safe` that it leaves raw written as ``\\uXXXX`` escapes: the same JSON
    value, safe to print. These characters occur only inside strings, where an escape means
    the same; text without them is returned unchanged."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection");
# a leading tab or CR, the other two on OWASP's list, is already a visible escape here.
_FORMULA_START = ("=", "+", "-", "@")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def csv_safe(value: object) -> object:
    """A CSV cell that is safe in a spreadsheet and on a terminal (CSV goes to stdout too):
    text made :func:`terminal_safe`, then, when it starts with ``= + - @``, given a leading
    ``'`` (the OWASP advice). Numbers, and text that is just a number (``-3.5``), stay as they
    are: a spreadsheet reads them as numbers, not formulas; so does a lone ``-`` (the
    reports' "no code" mark), which no spreadsheet evaluates. Other values are returned as is."""
    if not isinstance(value, str):
        return value
    text = terminal_safe(value)
    if text.startswith(_FORMULA_START) and text != "-" and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def markdown_safe(text: str) -> str:
    """A markdown table cell: HTML special characters as entities (``<script>`` shows, never
    runs), ``\\``, ``|`` and ``[`` escaped (no table break, no link whose text hides its
    target), control characters as the visible escapes of :func:`terminal_safe` (a line break
    would end the row; they show as ``\\x1b`` once rendered)."""
    text = terminal_safe(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("[", "\\[")
