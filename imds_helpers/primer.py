"""Teaching helpers for the primer runbook: raw HTTP exchanges with the emulator, shown the
way an engineer would see them with curl -i, with every secret redacted.

Results render themselves in Jupyter (``_repr_markdown_``); nothing here prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import requests

from imds_helpers.claims import decode_claims
from imds_helpers.redact import redact_headers, redact_text, redact_value

SHOWN_HEADERS = ("Content-Type", "Server", "WWW-Authenticate", "Retry-After")
BODY_LINES = 25


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, redacted."""

    request_line: str
    request_headers: Mapping[str, str]
    status: int | None
    response_headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None                # parsed JSON (redacted) or text (redacted)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request_line, "request_headers": dict(self.request_headers), "status": self.status,
                "response_headers": dict(self.response_headers), "body": self.body, "error": self.error}

    def _repr_markdown_(self) -> str:
        lines = [self.request_line] + [f"{k}: {v}" for k, v in self.request_headers.items()] + [""]
        if self.error:
            lines.append(f"-> {self.error}")
        else:
            lines.append(f"HTTP {self.status}")
            lines += [f"{k}: {v}" for k, v in self.response_headers.items()]
            text = json.dumps(self.body, indent=2) if not isinstance(self.body, str) else self.body
            body_lines = text.splitlines()
            lines += [""] + body_lines[:BODY_LINES] + (["  … (truncated)"] if len(body_lines) > BODY_LINES else [])
        return "```http\n" + "\n".join(lines) + "\n```"


def get(base_url: str, path: str, params: Mapping[str, str] | None = None, *,
        headers: Mapping[str, str] | None = None, metadata: bool = True, timeout: float = 5.0,
        secrets: tuple[str, ...] = ()) -> Exchange:
    """GET like curl does, proxies bypassed; the answer comes back redacted (``secrets``: values
    sent with the request that an answer might quote, e.g. the Arc key)."""
    sent = ({"Metadata": "true"} if metadata else {}) | dict(headers or {})
    session = requests.Session()
    session.trust_env = False
    prepared = requests.Request("GET", base_url.rstrip("/") + path, params=params, headers=sent).prepare()
    line = f"GET {prepared.path_url}"
    try:
        response = session.send(prepared, timeout=(2, timeout))
    except requests.RequestException as exc:
        return Exchange(line, redact_headers(sent), None, error=type(exc).__name__)
    finally:
        session.close()
    shown = {k: redact_text(response.headers[k], secrets) for k in SHOWN_HEADERS if k in response.headers}
    try:
        body: Any = redact_value(response.json(), secrets)
    except ValueError:
        body = redact_text(response.text[:2000], secrets)
    return Exchange(line, redact_headers(sent), response.status_code, shown, body)


def token_claims(base_url: str, resource: str = "https://management.azure.com/", **selector: str) -> dict[str, Any]:
    """Fetch a token and return only its decoded claims (the token is dropped here)."""
    session = requests.Session()
    session.trust_env = False
    try:
        response = session.get(base_url.rstrip("/") + "/metadata/identity/oauth2/token",
                               params={"api-version": "2018-02-01", "resource": resource, **selector},
                               headers={"Metadata": "true"}, timeout=(2, 5))
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        return {"error": type(exc).__name__}
    finally:
        session.close()
    if not isinstance(body, dict) or "access_token" not in body:
        return {"error": redact_value(body)}
    claims = decode_claims(str(body.pop("access_token")))
    return claims


CLAIM_MEANINGS = {
    "aud": "audience: the resource the token is for (must match what the API expects)",
    "iss": "issuer: the Entra ID tenant endpoint that signed it",
    "tid": "tenant id of the identity",
    "oid": "object id of the managed identity's service principal",
    "appid": "client (application) id of the managed identity",
    "xms_mirid": "ARM resource id of the managed identity (the VM for system-assigned)",
    "idtyp": "identity type: 'app' for managed identities",
    "iat": "issued at (epoch seconds)",
    "nbf": "not valid before (epoch seconds)",
    "exp": "expires at (epoch seconds); managed-identity tokens live about 24 hours",
    "expires_in_s": "seconds left (derived)",
}


def claims_table(claims: Mapping[str, Any]):
    """Claims with what each one means, as a DataFrame."""
    import pandas as pd

    return pd.DataFrame([{"claim": k, "value": v, "meaning": CLAIM_MEANINGS.get(k, "")} for k, v in claims.items()])


@dataclass(frozen=True)
class Conversation:
    """Several exchanges in order, rendered one after the other."""

    exchanges: tuple[Exchange, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"exchanges": [e.to_dict() for e in self.exchanges]}

    def _repr_markdown_(self) -> str:
        return "\n\n".join(f"**{i}.**\n\n{e._repr_markdown_()}" for i, e in enumerate(self.exchanges, 1))


def arc_challenge(base_url: str, tokens_dir: str, resource: str = "https://management.azure.com/") -> Conversation:
    """The Arc challenge as two exchanges: the 401 with its realm, then the Basic retry.

    The key file is read only if it lies directly in ``tokens_dir`` (as real clients insist);
    its contents go into the Authorization header and nowhere else.
    """
    import os

    params = {"api-version": "2020-06-01", "resource": resource}
    first = get(base_url, "/metadata/identity/oauth2/token", params)
    realm = (first.response_headers.get("WWW-Authenticate") or "").partition("=")[2]
    if first.status != 401 or not realm:
        return Conversation((first,))
    path = os.path.realpath(realm)
    if os.path.dirname(path) != os.path.realpath(tokens_dir) or not path.endswith(".key"):
        return Conversation((first, Exchange(f"(not reading {realm}: outside {tokens_dir} or not .key)", {}, None,
                                             error="realm refused")))
    with open(path, encoding="utf-8") as handle:
        secret = handle.read(4097)
    second = get(base_url, "/metadata/identity/oauth2/token", params, headers={"Authorization": f"Basic {secret}"},
                 secrets=(secret,))
    return Conversation((first, second))
