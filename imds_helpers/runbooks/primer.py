"""Teaching helpers for the primer runbook: raw HTTP exchanges with the emulator, shown the
way an engineer would see them with curl -i, with every secret redacted.

Each exchange is one request of the checks' own metadata client (no proxy, no retry, the
step's deadline over the whole answer, bodies bounded, JSON parsed with depth and size
bounds), so a scenario that drips, floods or nests its answer teaches what it does instead
of hanging the notebook. Results render themselves in Jupyter (``_repr_markdown_``);
nothing here prints.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from imds_helpers.model.claims import decode_claims
from imds_helpers.model.endpoints import ARC_API_VERSION, MANAGEMENT, TOKEN_API_VERSION, TOKEN_PATH
from imds_helpers.collect.http import MetadataClient, Outcome, Timeouts, full_url
from imds_helpers.model.redact import redact_headers, redact_text, redact_value
from imds_helpers.model.textsafe import terminal_safe

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
        if self.status is None:
            lines.append(f"-> {self.error}")
        else:
            lines.append(f"HTTP {self.status}")
            lines += [f"{k}: {v}" for k, v in self.response_headers.items()]
            text = json.dumps(self.body, indent=2) if not isinstance(self.body, str) else self.body
            body_lines = text.splitlines()
            lines += [""] + body_lines[:BODY_LINES] + (["  … (truncated)"] if len(body_lines) > BODY_LINES else [])
            if self.error:
                lines.append(f"-> {self.error} (the body is what arrived before it)")
        # Outside text shows as text: control characters as escapes, and a fence longer than
        # any run of backticks in it, so an answer cannot close the block and become markdown.
        lines = [terminal_safe(line) for line in lines]
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", "\n".join(lines))), default=0))
        return f"{fence}http\n" + "\n".join(lines) + f"\n{fence}"


def _send(base_url: str, path: str, params: Mapping[str, str] | None, headers: Mapping[str, str],
          timeout: float, secrets: tuple[str, ...] = ()) -> Outcome:
    client = MetadataClient(Timeouts(connect=min(2.0, timeout), read=timeout, total=timeout), max_attempts=1)
    return client.request(base_url.rstrip("/") + path, params=params, headers=headers, retry=False, secrets=secrets)


def get(base_url: str, path: str, params: Mapping[str, str] | None = None, *,
        headers: Mapping[str, str] | None = None, metadata: bool = True, timeout: float = 5.0,
        secrets: tuple[str, ...] = ()) -> Exchange:
    """GET like curl does, proxies bypassed; the answer comes back redacted (``secrets``: values
    sent with the request that an answer might quote, e.g. the Arc key)."""
    sent = ({"Metadata": "true"} if metadata else {}) | dict(headers or {})
    parts = urlsplit(full_url(base_url.rstrip("/") + path, params))
    line = f"GET {parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
    outcome = _send(base_url, path, params, sent, timeout, secrets)
    if outcome.status is None:
        return Exchange(line, redact_headers(sent), None, error=outcome.error.value if outcome.error else "no answer")
    shown = {k: redact_text(v, secrets) for k in SHOWN_HEADERS if (v := outcome.header(k)) is not None}
    try:
        body: Any = redact_value(outcome.json(), secrets)
    except ValueError:
        body = outcome.text(secrets)[:2000]
    return Exchange(line, redact_headers(sent), outcome.status, shown, body,
                    error=outcome.error.value if outcome.error else None)


def token_claims(base_url: str, resource: str = MANAGEMENT, *, timeout: float = 5.0, **selector: str) -> dict[str, Any]:
    """Fetch a token and return only its decoded claims (the token is dropped here)."""
    outcome = _send(base_url, TOKEN_PATH,
                    {"api-version": TOKEN_API_VERSION, "resource": resource, **selector}, {"Metadata": "true"}, timeout)
    if outcome.error is not None:
        return {"error": outcome.error.value}
    try:
        body = outcome.json()
    except ValueError as err:
        return {"error": str(err)}
    if not isinstance(body, dict) or "access_token" not in body:
        return {"error": redact_value(body)}
    claims = decode_claims(str(body.pop("access_token")), now=outcome.received_at)
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


def arc_challenge(base_url: str, tokens_dir: str, resource: str = MANAGEMENT, *, timeout: float = 5.0) -> Conversation:
    """The Arc challenge as two exchanges: the 401 with its realm, then the Basic retry.

    The key file is read only if it lies directly in ``tokens_dir`` (as real clients insist);
    its contents go into the Authorization header and nowhere else.
    """
    import os

    from imds_helpers.collect.arc_keyfile import read_key

    params = {"api-version": ARC_API_VERSION, "resource": resource}
    first = get(base_url, TOKEN_PATH, params, timeout=timeout)
    realm = (first.response_headers.get("WWW-Authenticate") or "").partition("=")[2]
    if first.status != 401 or not realm:
        return Conversation((first,))
    path = os.path.realpath(realm)
    if os.path.dirname(path) != os.path.realpath(tokens_dir) or not path.endswith(".key"):
        return Conversation((first, Exchange(f"(not reading {realm}: outside {tokens_dir} or not .key)", {}, None,
                                             error="realm refused")))
    secret, verdict = read_key(path)       # a regular file, not through a symlink, bounded
    if secret is None:
        return Conversation((first, Exchange(f"(not reading {realm}: {verdict.detail})", {}, None,
                                             error="key refused")))
    second = get(base_url, TOKEN_PATH, params, headers={"Authorization": f"Basic {secret}"},
                 secrets=(secret,), timeout=timeout)
    return Conversation((first, second))
