"""JSON as RFC 8259 defines it, bounded the way text from outside must be. Python's parser
also accepts NaN, Infinity and numbers that overflow to infinity; results holding them make
``--json`` output strict parsers (jq) reject, and claims like ``exp: Infinity`` break
arithmetic. Metadata answers with them are "not JSON" here.

The bounds (RFC 8259 section 9 lets a parser set them): a text larger than ``max_bytes``, nested
deeper than ``max_depth`` or holding a number of more than ``MAX_NUMBER_DIGITS`` digits is
refused, with a message naming the bound. The standard parser (C, fast) reads the text; what
it cannot refuse by itself is checked by one walk over the result (no recursion), and what it
would raise on is named: a few hundred KB of ``[[[[`` reach the interpreter's recursion limit
(``RecursionError``, raised cleanly by the C parser) and a 5,000-digit integer its digit limit
(a ``ValueError`` that names no bound). Why not hooks or a scan of the text: ``parse_int`` /
``parse_float`` call Python once per number and a bracket scan reads every string again; with
them ``report`` on 10,000 sidecars took twice as long.
"""

from __future__ import annotations

import json
import re
from typing import Any

# An IMDS instance document nests about 6 levels, a sidecar about 10 (a document inside evidence).
MAX_DEPTH = 64
# The metadata client's body limit (http.MAX_BODY_BYTES): nothing larger is an IMDS answer.
MAX_BYTES = 1024 * 1024
# IMDS numbers are counts, ports and epoch seconds; Python refuses integers above 4300 digits.
MAX_NUMBER_DIGITS = 1000
# Below this many bits an integer has fewer digits than the bound (log2(10) = 3.32 bits a digit).
_LONG_INT_BITS = int((MAX_NUMBER_DIGITS - 1) * 3.32)

# A UTF-16 surrogate escape: JSON may pair two into one character; one alone is no text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class NotJson(ValueError):
    """The text is not strict JSON; the message names why (never the text itself)."""


class OutOfBounds(NotJson):
    """The text is larger, deeper or holds a longer number than the bounds allow: nothing a
    metadata service or this tool writes; the message names the bound."""


def _constant(name: str) -> Any:
    raise NotJson(f"{name} is not a JSON value")


def loads(data: str | bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` without NaN / Infinity and within the bounds; raises ``ValueError``
    (``OutOfBounds`` naming the bound, ``NotJson``, or ``json.JSONDecodeError``, ``UnicodeDecodeError``)."""
    if len(data) > max_bytes:
        raise OutOfBounds(f"JSON text larger than {max_bytes} bytes")
    if isinstance(data, (bytes, bytearray)):   # as json.loads detects it (UTF-8, -16 or -32), but strict:
        data = bytes(data).decode(json.detect_encoding(data))   # undecodable bytes are no text
    try:
        value = json.loads(data, parse_constant=_constant)
    except RecursionError:
        raise OutOfBounds(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as err:
        if "digits" in str(err) and not isinstance(err, json.JSONDecodeError):   # int's digit limit
            raise OutOfBounds(f"a number with more than {MAX_NUMBER_DIGITS} digits") from None
        raise
    _check(value, max_depth)
    if _SURROGATE_ESCAPE.search(data):
        _refuse_lone_surrogates(value)
    return value


def _check(value: Any, max_depth: int) -> None:
    """One walk, level by level: the nesting depth, numbers too long or out of range."""
    level, depth = [value], 0
    while level:
        deeper: list[Any] = []
        nests = False                     # does this level hold an array or an object?
        for node in level:
            kind = type(node)
            if kind is dict or kind is list:
                nests = True
                deeper.extend(node.values() if kind is dict else node)
            elif kind is float and node - node != 0:          # 1e999 parses as infinity
                raise OutOfBounds("a number out of range")
            elif kind is int and node.bit_length() > _LONG_INT_BITS and len(str(abs(node))) > MAX_NUMBER_DIGITS:
                raise OutOfBounds(f"a number with more than {MAX_NUMBER_DIGITS} digits")
        depth += nests
        if depth > max_depth:
            raise OutOfBounds(f"JSON nested deeper than {max_depth} levels")
        level = deeper


def _refuse_lone_surrogates(value: Any) -> None:
    """A string holding half of a UTF-16 pair (``"\\ud800"``) cannot be written as UTF-8: a
    sidecar, a notebook or stdout would raise on it. No metadata service sends one; the text
    is "not JSON" here."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise NotJson("a lone UTF-16 surrogate is not text") from None
