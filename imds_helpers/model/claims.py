"""Decode the display claims of a managed-identity token. The token itself is never kept:
callers pass it in, get a small dict of non-secret claims back, and drop the token."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from imds_helpers.model import strictjson

DISPLAY_CLAIMS = ("aud", "iss", "tid", "oid", "appid", "xms_mirid", "idtyp", "iat", "nbf", "exp")


def decode_claims(token: str, *, now: float | None = None) -> dict[str, Any]:
    """Non-secret claims of a JWT plus ``expires_in_s`` counted from ``now`` (when the answer
    came: epoch seconds; None, no countdown); ``{"error": ...}`` if unreadable.

    The signature is not verified (this is display, not authentication), and may be absent:
    evidence keeps tokens as ``header.claims.``.
    """
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        return {"error": "not a JWT (expected header.payload.signature)"}
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        payload = strictjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return {"error": "JWT payload is not base64url JSON"}
    if not isinstance(payload, dict):
        return {"error": "JWT payload is not a JSON object"}
    claims = {name: payload[name] for name in DISPLAY_CLAIMS if name in payload}
    exp = payload.get("exp")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool) and now is not None:
        try:
            claims["expires_in_s"] = int(exp - now)
        except OverflowError:   # an integer beyond float range: no countdown to show
            pass
    return claims
