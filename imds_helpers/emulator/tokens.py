"""Fake managed-identity tokens and token responses (§1.7, §2.5).

Tokens are well-formed JWTs with realistic v1 claims but a *fake* signature segment
(``{"typ":"JWT","alg":"RS256","kid":"emulator"}`` header). The signature segment is base64url
text with the per-run canary inside it, so a test can grep any output for the canary and know
a token (or an Arc secret) leaked.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from typing import Any

from imds_helpers.emulator.model import Machine, ManagedIdentity

CANARY_PREFIX = "imdsrbcanary"
#: A canary must survive inside a JWT signature and a header value: base64url alphabet only.
CANARY_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
CANARY_ENV = "IMDS_EMULATOR_CANARY"    # a canary chosen by the user, for every emulator it starts

#: Lifetime of issued tokens; real MI tokens live ~24 h [obs: T1, T6].
TOKEN_LIFETIME = 86399
#: CHOICE: not_before/iat are this many seconds before issue, like AAD's clock-skew allowance.
CLOCK_SKEW = 300

JWT_HEADER = {"typ": "JWT", "alg": "RS256", "kid": "emulator"}


def new_canary() -> str:
    return CANARY_PREFIX + secrets.token_hex(8)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Any) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def decode_segment(segment: str) -> Any:
    """Decode one base64url JWT segment (for tests and diagnostics)."""
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def fake_signature(canary: str) -> str:
    noise = _b64url(secrets.token_bytes(96))
    return f"{noise[:24]}{canary}{noise[24:]}"


def make_jwt(claims: dict[str, Any], canary: str) -> str:
    return f"{b64url_json(JWT_HEADER)}.{b64url_json(claims)}.{fake_signature(canary)}"


def claims_for(machine: Machine, identity: ManagedIdentity, resource: str, now: int) -> dict[str, Any]:
    issuer = f"https://sts.windows.net/{machine.tenant_id}/"
    return {
        "aud": resource,
        "iss": issuer,
        "iat": now - CLOCK_SKEW,
        "nbf": now - CLOCK_SKEW,
        "exp": now + TOKEN_LIFETIME,
        "aio": _b64url(secrets.token_bytes(24)),
        "appid": identity.client_id,
        "appidacr": "2",
        "idp": issuer,
        "idtyp": "app",
        "oid": identity.object_id,
        "rh": "0.emulator." + _b64url(secrets.token_bytes(6)),
        "sub": identity.object_id,
        "tid": machine.tenant_id,
        "uti": _b64url(secrets.token_bytes(16)),
        "ver": "1.0",
        "xms_az_rid": machine.resource_id,
        "xms_mirid": identity.msi_res_id,
        "xms_tcdt": 1600000000,
    }


def token_response(*, token: str, identity: ManagedIdentity, resource: str, issued: int,
                   now: int, selector: tuple[str, str] | None) -> dict[str, str]:
    """Token body; every value a JSON string as in the real recording [obs: T1].

    ``selector`` is the (name, value) the caller used to pick a user-assigned identity; it is
    echoed back under the same name, as IMDS and newer HIMDS agents do [doc: S1, C2].
    """
    expires_on = issued + TOKEN_LIFETIME
    body = {
        "access_token": token,
        "client_id": identity.client_id,
        "expires_in": str(max(expires_on - now, 0)),
        "expires_on": str(expires_on),
        "ext_expires_in": str(TOKEN_LIFETIME),
        "not_before": str(issued - CLOCK_SKEW),
        "resource": resource,
        "token_type": "Bearer",
    }
    if selector is not None and selector[0] != "client_id":
        # CHOICE: client_id is always the identity's own (canonical) id; other selectors are
        # echoed as the caller spelled them.
        name, value = selector
        body[name] = value
    return body


def new_uuid() -> str:
    return str(uuid.uuid4())
