"""JSON as RFC 8259 defines it, bounded the way text from outside must be. Python's parser
also accepts NaN, Infinity and numbers that overflow to infinity; results holding them make
``--json`` output strict parsers (jq) reject, and claims like ``exp: Infinity`` break
arithmetic. Metadata answers with them are "not JSON" here.

The bounds (RFC 8259 section 9 lets a parser set them): a text larger than ``max_bytes``, nested
deeper than ``max_depth`` or holding a number longer than ``MAX_NUMBER_DIGITS`` is refused
before it can cost anything. Depth is counted by a scan before ``json.loads`` runs: the
standard parser recurses once per level, and a few hundred KB of ``[[[[`` would otherwise end
in a ``RecursionError`` (and Python's own digit limit in a ``ValueError`` that names no bound).
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

# An IMDS instance document nests about 6 levels, a sidecar about 10 (a document inside evidence).
MAX_DEPTH = 64
# The metadata client's body limit (http.MAX_BODY_BYTES): nothing larger is an IMDS answer.
MAX_BYTES = 1024 * 1024
# IMDS numbers are counts, ports and epoch seconds; Python refuses integers above 4300 digits.
MAX_NUMBER_DIGITS = 1000

# A JSON string, escapes included (unrolled: no backtracking on long strings). An unterminated
# one does not match, so the brackets after it still count: the scan may over-count a broken
# text, never under-count one that json.loads would descend into.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# A UTF-16 surrogate escape: JSON may pair two into one character; one alone is no text.
_SURROGATE = re.compile("\\\\u[dD][89a-fA-F]|[\ud800-\udfff]")


class NotJson(ValueError):
    """The text is not strict JSON; the message names why (never the text itself)."""


class OutOfBounds(NotJson):
    """The text is larger, deeper or holds a longer number than the bounds allow: nothing a
    metadata service or this tool writes; the message names the bound."""


def _constant(name: str) -> Any:
    raise NotJson(f"{name} is not a JSON value")


def _number_text(text: str) -> None:
    if len(text) > MAX_NUMBER_DIGITS:
        raise OutOfBounds(f"a number with more than {MAX_NUMBER_DIGITS} digits")


def _finite_float(text: str) -> float:
    _number_text(text)
    value = float(text)
    if not math.isfinite(value):      # 1e999 parses as infinity
        raise NotJson(f"number {text[:20]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    _number_text(text)
    return int(text)


def depth(text: str) -> int:
    """How deep the arrays and objects in ``text`` nest (brackets inside strings do not count)."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def loads(data: str | bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` without NaN / Infinity and within the bounds; raises ``ValueError``
    (``OutOfBounds`` naming the bound, ``NotJson``, or ``json.JSONDecodeError``, ``UnicodeDecodeError``)."""
    if len(data) > max_bytes:
        raise OutOfBounds(f"JSON text larger than {max_bytes} bytes")
    if isinstance(data, (bytes, bytearray)):   # as json.loads decodes bytes (UTF-8, -16 or -32)
        data = bytes(data).decode(json.detect_encoding(data), "surrogatepass")
    if depth(data) > max_depth:
        raise OutOfBounds(f"JSON nested deeper than {max_depth} levels")
    value = json.loads(data, parse_constant=_constant, parse_float=_finite_float, parse_int=_bounded_int)
    if _SURROGATE.search(data):
        _refuse_lone_surrogates(value)
    return value


def _refuse_lone_surrogates(value: Any) -> None:
    """A string holding half of a UTF-16 pair (``"\\ud800"``, or undecodable bytes passed
    through) cannot be written as UTF-8: a sidecar, a notebook or stdout would raise on it.
    No metadata service sends one; the text is "not JSON" here."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise NotJson("a lone UTF-16 surrogate is not text") from None
