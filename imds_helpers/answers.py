"""Classify what came back from a metadata request: the error kind and the finding code.

One place decides what a transport error, a status code or an odd body means, so every step
(instance metadata, tokens, the Arc challenge) names the same failure the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imds_helpers.http import Outcome
from imds_helpers.redact import redact_text
from imds_helpers.taxonomy import ErrorKind, http_kind

TRANSPORT_CODES = {
    ErrorKind.CONNECT_TIMEOUT: "IMDS-HTTP-001",
    ErrorKind.CONNECT_REFUSED: "IMDS-HTTP-002",
    ErrorKind.NETWORK_UNREACHABLE: "IMDS-HTTP-003",
    ErrorKind.HOST_UNREACHABLE: "IMDS-HTTP-003",
    ErrorKind.READ_TIMEOUT: "IMDS-HTTP-004",
    ErrorKind.CONNECTION_RESET: "IMDS-HTTP-005",
    ErrorKind.DEADLINE_EXCEEDED: "IMDS-HTTP-006",
    ErrorKind.BAD_PAYLOAD: "IMDS-HTTP-007",
    ErrorKind.OVERSIZED_PAYLOAD: "IMDS-HTTP-008",
    ErrorKind.TRANSPORT_ERROR: "IMDS-HTTP-004",
}
STATUS_CODES = {429: "IMDS-HTTP-011", 410: "IMDS-HTTP-012", 404: "IMDS-HTTP-014"}


@dataclass(frozen=True)
class Answer:
    """What an outcome means. ``code`` is None when the answer is usable as is."""

    kind: str | None
    code: str | None
    detail: str
    body: object = field(default=None, repr=False)   # parsed JSON body, if any (may hold a token: never store it)

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", redact_text(self.detail))   # details quote the service


def error_fields(body: object) -> tuple[str, str]:
    if isinstance(body, dict):
        return str(body.get("error", "")), str(body.get("error_description", ""))
    return "", ""


def looks_like_imds(outcome: Outcome, service: str) -> bool:
    """The answer comes from IMDS/HIMDS: IMDS always says ``Server: IMDS/...`` and JSON."""
    content_type = (outcome.header("Content-Type") or "").lower()
    if "json" not in content_type:
        return False
    if service == "vm":
        return (outcome.header("Server") or "").startswith("IMDS/")
    return True  # HIMDS's Server header is not documented


def classify(outcome: Outcome, *, service: str = "vm") -> Answer:
    """Classify transport errors, statuses and bodies common to every metadata request."""
    if outcome.error is not None:
        kind = outcome.error
        where = f"HTTP {outcome.status}, then " if outcome.status else ""
        return Answer(kind.value, TRANSPORT_CODES[kind], f"{where}{kind.value} after {len(outcome.attempts)} attempt(s)")
    status = outcome.status or 0
    try:
        body = outcome.json()
    except ValueError:
        body = None
    error, description = error_fields(body)
    text = f"{error} {description}".lower()
    if status == 403 and "unreachable" in outcome.text().lower():
        return Answer(ErrorKind.NOT_IMDS.value, "IMDS-HTTP-009",
                      "HTTP 403 'unreachable network' from an interceptor (Docker Desktop style), not IMDS")
    if status == 400 and ("forwarded" in text or "x-forwarded-for" in outcome.text().lower()):
        return Answer(ErrorKind.FORWARDED_REJECTED.value, "IMDS-HTTP-010", f"HTTP 400: {description or error}")
    if not looks_like_imds(outcome, service) and status != 401:
        server = outcome.header("Server") or "none"
        ctype = outcome.header("Content-Type") or "none"
        return Answer(ErrorKind.NOT_IMDS.value, "IMDS-HTTP-009",
                      f"HTTP {status} with Server: {server}, Content-Type: {ctype}")
    if body is None:
        return Answer(ErrorKind.BAD_PAYLOAD.value, "IMDS-HTTP-007", f"HTTP {status} with a body that is not JSON")
    if 200 <= status < 300:
        return Answer(None, None, f"HTTP {status}", body)
    if status == 400 and "metadata header" in text:
        return Answer(ErrorKind.MISSING_METADATA_HEADER.value, "IMDS-HTTP-015", f"HTTP 400: {description or error}", body)
    if status == 400 and "api-version" in text:
        return Answer(ErrorKind.API_VERSION_INVALID.value, "IMDS-META-003", f"HTTP 400: {error}", body)
    if status in STATUS_CODES:
        retry_after = outcome.header("Retry-After")
        extra = f" (Retry-After: {retry_after})" if retry_after else ""
        return Answer(http_kind(status), STATUS_CODES[status],
                      f"HTTP {status}{extra} on all {len(outcome.attempts)} attempt(s)", body)
    if status >= 500:
        return Answer(http_kind(status), "IMDS-HTTP-013", f"HTTP {status} on all {len(outcome.attempts)} attempt(s)", body)
    return Answer(http_kind(status), "IMDS-HTTP-016", f"HTTP {status}: {error} {description}".strip(), body)
