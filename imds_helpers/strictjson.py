"""JSON as RFC 8259 defines it. Python's parser also accepts NaN, Infinity and numbers that
overflow to infinity; results holding them make ``--json`` output strict parsers (jq)
reject, and claims like ``exp: Infinity`` break arithmetic. Metadata answers with them are
"not JSON" here."""

from __future__ import annotations

import json
import math
from typing import Any


class NotJson(ValueError):
    """The text is not strict JSON; the message names why (never the text itself)."""


def _constant(name: str) -> Any:
    raise NotJson(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):      # 1e999 parses as infinity
        raise NotJson(f"number {text[:20]} is out of range")
    return value


def loads(data: str | bytes) -> Any:
    """``json.loads`` without NaN / Infinity; raises ``ValueError`` (``NotJson`` or
    ``json.JSONDecodeError``)."""
    return json.loads(data, parse_constant=_constant, parse_float=_finite_float)
