"""Classify what came back from a metadata request: the error kind and the finding code.

One place decides what a transport error, a status code or an odd body means, so every step
(instance metadata, tokens, the Arc challenge) names the same failure the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imds_helpers.model import strictjson
from imds_helpers.model.catalog import (HTTP_CONNECT_REFUSED, HTTP_CONNECT_TIMEOUT, HTTP_FORWARDED, HTTP_NOT_FOUND,
                                  HTTP_NOT_COLLECTED, HTTP_NOT_IMDS, HTTP_NO_ANSWER, HTTP_NO_METADATA_HEADER, HTTP_RESET, HTTP_RETRIED,
                                  HTTP_SERVER_ERROR, HTTP_THROTTLED, HTTP_TOO_LARGE, HTTP_TOO_SLOW, HTTP_UNEXPECTED,
                                  HTTP_UNREACHABLE, HTTP_UNREADABLE, HTTP_UPDATING, META_VERSION_REJECTED, finding)
from imds_helpers.model.findings import Attempt, CheckResult, Status
from imds_helpers.model.evidence import RETRY_STATUSES, Outcome
from imds_helpers.model.redact import redact_text
from imds_helpers.model.taxonomy import ErrorKind, http_kind

TRANSPORT_CODES = {
    ErrorKind.CONNECT_TIMEOUT: HTTP_CONNECT_TIMEOUT,
    ErrorKind.CONNECT_REFUSED: HTTP_CONNECT_REFUSED,
    ErrorKind.NETWORK_UNREACHABLE: HTTP_UNREACHABLE,
    ErrorKind.HOST_UNREACHABLE: HTTP_UNREACHABLE,
    ErrorKind.READ_TIMEOUT: HTTP_NO_ANSWER,
    ErrorKind.CONNECTION_RESET: HTTP_RESET,
    ErrorKind.DEADLINE_EXCEEDED: HTTP_TOO_SLOW,
    ErrorKind.BAD_PAYLOAD: HTTP_UNREADABLE,
    ErrorKind.OVERSIZED_PAYLOAD: HTTP_TOO_LARGE,
    ErrorKind.TRANSPORT_ERROR: HTTP_NO_ANSWER,
    ErrorKind.NOT_COLLECTED: HTTP_NOT_COLLECTED,
}
STATUS_CODES = {429: HTTP_THROTTLED, 410: HTTP_UPDATING, 404: HTTP_NOT_FOUND}

# What a service's error text means: the one table of the texts every step matches (lower-case).
# Where: "error" the error field is exactly it; "description" error_description contains it;
# "text" error or error_description contains it; "body" the raw body does. Steps ask
# :func:`says`, and keep their own order and status conditions.
ERROR_TEXTS: tuple[tuple[ErrorKind, str, tuple[str, ...]], ...] = (
    (ErrorKind.NOT_IMDS, "body", ("unreachable",)),               # 403 from a Docker-Desktop-style interceptor
    (ErrorKind.FORWARDED_REJECTED, "text", ("forwarded",)),       # 400: IMDS refuses X-Forwarded-For
    (ErrorKind.FORWARDED_REJECTED, "body", ("x-forwarded-for",)),
    (ErrorKind.MISSING_METADATA_HEADER, "text", ("metadata header",)),
    (ErrorKind.API_VERSION_INVALID, "text", ("api-version",)),
    (ErrorKind.IDENTITY_NOT_FOUND, "description", ("identity not found",)),
    (ErrorKind.MULTIPLE_IDENTITIES, "description", ("multiple user assigned identities",)),
    (ErrorKind.INVALID_RESOURCE, "error", ("invalid_resource",)),
    (ErrorKind.INVALID_RESOURCE, "description", ("aadsts500011", "aadsts50001")),
    (ErrorKind.ARC_AGENT_UNAVAILABLE, "text", ("disconnect", "expired", "azcmagent", "certificate")),
)


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


def says(kind: ErrorKind, body: object, raw: str = "") -> bool:
    """The service's error text means ``kind`` (:data:`ERROR_TEXTS`): ``body`` is the parsed JSON
    answer, ``raw`` the body as text (only the "body" rows read it)."""
    error, description = error_fields(body)
    fields = {"error": error, "description": description.lower(), "text": f"{error} {description}".lower(),
              "body": raw.lower()}
    for row_kind, where, fragments in ERROR_TEXTS:
        if row_kind is kind:
            value = fields[where]
            if any(value == f if where == "error" else f in value for f in fragments):
                return True
    return False


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
    unreadable = "a body that is not JSON"
    try:
        body = outcome.json()
    except strictjson.OutOfBounds as err:    # JSON, but no metadata service's answer looks like it
        body, unreadable = None, f"a body that is not IMDS's answer: {err}"
    except ValueError:
        body = None
    error, description = error_fields(body)
    if status == 403 and says(ErrorKind.NOT_IMDS, body, outcome.text()):
        return Answer(ErrorKind.NOT_IMDS.value, HTTP_NOT_IMDS,
                      "HTTP 403 'unreachable network' from an interceptor (Docker Desktop style), not IMDS")
    if status == 400 and says(ErrorKind.FORWARDED_REJECTED, body, outcome.text()):
        return Answer(ErrorKind.FORWARDED_REJECTED.value, HTTP_FORWARDED, f"HTTP 400: {description or error}")
    if not looks_like_imds(outcome, service) and status != 401:
        server = outcome.header("Server") or "none"
        ctype = outcome.header("Content-Type") or "none"
        return Answer(ErrorKind.NOT_IMDS.value, HTTP_NOT_IMDS,
                      f"HTTP {status} with Server: {server}, Content-Type: {ctype}")
    if body is None:
        return Answer(ErrorKind.BAD_PAYLOAD.value, HTTP_UNREADABLE, f"HTTP {status} with {unreadable}")
    if 200 <= status < 300:
        return Answer(None, None, f"HTTP {status}", body)
    if status == 400 and says(ErrorKind.MISSING_METADATA_HEADER, body):
        return Answer(ErrorKind.MISSING_METADATA_HEADER.value, HTTP_NO_METADATA_HEADER, f"HTTP 400: {description or error}", body)
    if status == 400 and says(ErrorKind.API_VERSION_INVALID, body):
        return Answer(ErrorKind.API_VERSION_INVALID.value, META_VERSION_REJECTED, f"HTTP 400: {error}", body)
    if status in STATUS_CODES:
        retry_after = outcome.header("Retry-After")
        extra = f" (Retry-After: {retry_after})" if retry_after else ""
        return Answer(http_kind(status), STATUS_CODES[status],
                      f"HTTP {status}{extra} on all {len(outcome.attempts)} attempt(s)", body)
    if status >= 500:
        return Answer(http_kind(status), HTTP_SERVER_ERROR, f"HTTP {status} on all {len(outcome.attempts)} attempt(s)", body)
    return Answer(http_kind(status), HTTP_UNEXPECTED, f"HTTP {status}: {error} {description}".strip(), body)


# --- Success only after retries --------------------------------------------------------------
# What a retried answer usually means (Microsoft's retry guidance; imds-protocol.md 1.12).
# ``{svc}`` is IMDS or HIMDS.
RETRIED_MEANINGS = {
    404: "not there yet: {svc} updating, or a new identity propagating",
    410: "{svc} is updating",
    429: "throttled",
    ErrorKind.CONNECTION_RESET.value: "connection torn down",
    ErrorKind.BAD_PAYLOAD.value: "answer cut short",
}
SERVER_ERROR_MEANING = "transient server error"


def failed_attempts(*outcomes: Outcome) -> tuple[Attempt, ...]:
    """The attempts each request retried after: every attempt but a request's last that
    failed with a retryable status or a transport error (never the Arc challenge's 401: that
    is the protocol, and the client does not retry it)."""
    return tuple(a for o in outcomes for a in o.attempts[:-1]
                 if a.error is not None or a.status is None or a.status in RETRY_STATUSES)


def _label(attempt: Attempt) -> tuple[str, str]:
    from http import HTTPStatus   # the standard library's phrases ("410 Gone")

    if attempt.error is not None or attempt.status is None:
        kind = attempt.error or "no answer"
        return kind.replace("_", " "), RETRIED_MEANINGS.get(kind, "")
    try:
        label = f"{attempt.status} {HTTPStatus(attempt.status).phrase}"
    except ValueError:
        label = str(attempt.status)
    meaning = RETRIED_MEANINGS.get(attempt.status) or (SERVER_ERROR_MEANING if attempt.status >= 500 else "")
    return label, meaning


def retry_summary(attempts: tuple[Attempt, ...], *, service: str = "vm") -> str:
    """``2 x 410 Gone (IMDS is updating), 1 x 500 Internal Server Error (transient server
    error)``, in order of first appearance."""
    svc = "HIMDS" if service == "arc" else "IMDS"
    counts: dict[tuple[str, str], int] = {}
    for attempt in attempts:
        key = _label(attempt)
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} x {label}" + (f" ({meaning.format(svc=svc)})" if meaning else "")
                     for (label, meaning), n in counts.items())


def after_retries(result: CheckResult, *outcomes: Outcome, service: str = "vm") -> CheckResult:
    """``result`` as the IMDS-HTTP-017 warning when it is OK but its request(s) needed
    retries; otherwise ``result`` unchanged. The OK result's detail, evidence and attempts are
    kept; ``evidence.ok_code`` says which code a steady service would have given."""
    failed = failed_attempts(*outcomes)
    if result.status is not Status.OK or not failed:
        return result
    total = sum(len(o.attempts) for o in outcomes)
    detail = f"answered after {retry_summary(failed, service=service)} ({total} attempts): {result.detail}"
    return finding(result.id, HTTP_RETRIED, detail, elapsed_ms=result.elapsed_ms,
                   evidence=dict(result.evidence, ok_code=result.code, failed_attempts=len(failed)),
                   commands=result.commands, attempts=result.attempts)
