"""The metadata HTTP client: no proxy, per-phase timeouts, a deadline per step, Microsoft's
retry rules, and a record of every attempt. Each attempt is one exchange of
:mod:`imds_helpers.collect.transport` (the standard library's http.client; why not urllib3 or
requests is said there).

Why not urllib3's ``Retry``: we need each attempt as evidence (status, elapsed, headers, a
body excerpt) and a hard deadline per step that bounds everything in it - connect, status
line, headers, body, retries and ``Retry-After`` sleeps - whatever the peer does (a byte
every half second never trips a per-read timeout); ``Retry`` keeps neither.

Every failure is classified into :mod:`imds_helpers.model.taxonomy`; nothing here raises for
network trouble. Response bodies stay inside :class:`Outcome` (hidden from ``repr``) and
are never put into results unredacted.
"""

from __future__ import annotations

import errno
import socket
import time
from typing import TYPE_CHECKING, Callable, Mapping

from imds_helpers import __version__
from imds_helpers.model.evidence import RETRY_STATUSES, Attempt, Outcome, Timeouts, full_url
from imds_helpers.model.redact import redact_headers, redact_text
from imds_helpers.model.taxonomy import ErrorKind

__all__ = ["MetadataClient", "Outcome", "RETRY_STATUSES", "Timeouts", "classify_exception", "full_url",
           "retry_after_seconds"]

# A diagnosis wants a verdict, not patience: at most this many attempts per request, and no
# retry after a read timeout (a service that holds a connection 5 s will do it again).
MAX_ATTEMPTS = 4
# Instance documents are ~10 KB; anything this large is not an IMDS answer.
MAX_BODY_BYTES = 1024 * 1024
EXCERPT_CHARS = 240
EVIDENCE_HEADERS = ("Server", "Content-Type", "Content-Length", "Retry-After", "WWW-Authenticate", "Via")

USER_AGENT = f"imds-runbook/{__version__}"

Sleep = Callable[[float], None]

if TYPE_CHECKING:
    from imds_helpers.collect.transport import Exchange

# The transport (http.client) is imported on first use, not with this module: a run's first
# steps (platform, proxy without proxy variables, network) send no HTTP request.


def classify_exception(exc: BaseException) -> ErrorKind:
    """Map a transport exception (socket, http.client, zlib) to the taxonomy."""
    import http.client
    import zlib

    from imds_helpers.collect import classify_socket_error
    from imds_helpers.collect.transport import ConnectFailed, DeadlineExceeded

    if isinstance(exc, ConnectFailed) and isinstance(exc.__cause__, OSError):
        return classify_socket_error(exc.__cause__)
    if isinstance(exc, DeadlineExceeded):       # bytes kept coming, too slowly for the step's budget
        return ErrorKind.DEADLINE_EXCEEDED
    if isinstance(exc, socket.timeout):
        return ErrorKind.READ_TIMEOUT
    if isinstance(exc, (http.client.IncompleteRead, zlib.error)):
        return ErrorKind.BAD_PAYLOAD            # a body cut short, or one that does not decode
    if isinstance(exc, OSError):                # RemoteDisconnected is a ConnectionResetError
        return ErrorKind.CONNECTION_RESET if getattr(exc, "errno", None) == errno.EPIPE else classify_socket_error(exc)
    if isinstance(exc, http.client.HTTPException):
        # No usable status line or headers: the connection ended without an HTTP answer (as
        # urllib3 reports it too).
        return ErrorKind.CONNECTION_RESET
    return ErrorKind.TRANSPORT_ERROR


class MetadataClient:
    """GET against a metadata service with deadlines, retries and attempt records.

    Direct by default: never through a proxy, whatever the environment says, as Microsoft
    requires for IMDS. ``proxy`` (a URL, credentials allowed) is only for the opt-in
    comparison request through the configured proxy.
    """

    def __init__(
        self,
        timeouts: Timeouts | None = None,
        *,
        proxy: str | None = None,
        sleep: Sleep = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        # A scheme-less proxy variable means http://, as requests and curl read it.
        self._proxy = proxy if proxy is None or "://" in proxy else f"http://{proxy}"
        self._sleep = sleep
        self._clock = clock
        self._wall = wall
        self._max_body = max_body_bytes
        self._max_attempts = max_attempts

    def __repr__(self) -> str:
        return f"MetadataClient(timeouts={self.timeouts!r})"

    def close(self) -> None:
        """Nothing to release: each attempt closes its own connection (kept for callers)."""

    def request(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        retry: bool = True,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
        secrets: tuple[str, ...] = (),
        budget: float | None = None,
    ) -> Outcome:
        """Send until success, a non-retryable answer, or the step budget runs out."""
        start = self._clock()
        deadline = start + (budget if budget is not None else self.timeouts.total)
        attempts: list[Attempt] = []
        backoff = 0.5
        while True:
            outcome = self._once(method, url, params, headers, deadline, secrets)
            attempts.append(outcome.attempts[0])
            retryable = retry and len(attempts) < self._max_attempts and (
                outcome.status in retry_statuses and outcome.error is None
                or outcome.error in (ErrorKind.CONNECTION_RESET, ErrorKind.BAD_PAYLOAD)
            )
            wait = self._retry_wait(outcome, backoff)
            remaining = deadline - self._clock()
            # Only retry when the wait plus a minimal attempt still fits the budget.
            if not retryable or wait + 0.05 >= remaining:
                return Outcome(
                    attempts=tuple(attempts),
                    status=outcome.status,
                    error=outcome.error,
                    headers=outcome.headers,
                    body=outcome.body,
                    elapsed_ms=(self._clock() - start) * 1000,
                    raw_headers=outcome.raw_headers,
                    received_at=outcome.received_at,
                )
            self._sleep(wait)
            backoff = min(backoff * 2, 8.0)

    @staticmethod
    def _retry_wait(outcome: Outcome, backoff: float) -> float:
        seconds = retry_after_seconds(outcome.header("Retry-After") or "")
        return backoff if seconds is None else seconds

    def _once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        deadline: float,
        secrets: tuple[str, ...],
    ) -> Outcome:
        from imds_helpers.collect import transport

        start = self._clock()
        remaining = max(0.01, deadline - start)
        sent_url = full_url(url, params)
        shown_url = redact_text(sent_url, secrets)
        status: int | None = None
        error: ErrorKind | None = None
        resp_headers: dict[str, str] = {}
        raw_headers: tuple[tuple[str, str], ...] = ()
        phases: dict[str, float] = {}
        body = b""
        try:
            # No redirect is followed and its Location is never parsed: a redirect is
            # evidence (something else answered), and a malformed one must not raise.
            # The step's deadline bounds the whole exchange: connect, status line, headers, body.
            exchange = transport.send(method, sent_url, {"User-Agent": USER_AGENT, **(headers or {})},
                                      connect_timeout=min(self.timeouts.connect, remaining),
                                      read_timeout=min(self.timeouts.read, remaining), proxy=self._proxy,
                                      budget=remaining)
            try:
                status = exchange.status
                resp_headers = exchange.headers
                raw_headers = exchange.raw_headers
                phases = exchange.phases
                # The read timeout bounds the whole body too, not just each recv.
                exchange.limit(self.timeouts.read)
                body, error = self._read_body(exchange, min(deadline, self._clock() + self.timeouts.read))
            finally:
                exchange.close()
        except transport.ERRORS as exc:
            error = classify_exception(exc)
        except ValueError:   # an unsendable request (a bad URL or proxy, a header with a line break)
            error = ErrorKind.TRANSPORT_ERROR
        elapsed = (self._clock() - start) * 1000
        if phases:
            phases = {**phases, "body_ms": round(elapsed, 1)}     # connect, headers, body: ms from the start
        evidence_headers = {k: v for k, v in resp_headers.items() if k.lower() in {h.lower() for h in EVIDENCE_HEADERS}}
        excerpt = redact_text(body[:EXCERPT_CHARS * 4].decode("utf-8", "replace"), secrets)[:EXCERPT_CHARS]
        attempt = Attempt(
            method=method,
            url=shown_url,
            status=status,
            error=error.value if error else None,
            elapsed_ms=elapsed,
            headers=redact_headers(evidence_headers),
            body_excerpt=excerpt,
            phases=phases,
        )
        return Outcome(attempts=(attempt,), status=status, error=error, headers=resp_headers, body=body, elapsed_ms=elapsed,
                       raw_headers=raw_headers, received_at=self._wall())

    def _read_body(self, exchange: Exchange, deadline: float) -> tuple[bytes, ErrorKind | None]:
        """Read at most ``max_body_bytes`` before the deadline (a slow drip must not hang us)."""
        from imds_helpers.collect.transport import ERRORS

        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                # read1 returns what one recv gives, so the deadline is checked between
                # drips; read(n) would block until n bytes arrived.
                chunk = exchange.read1(16384)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > self._max_body:
                    return b"".join(chunks)[: self._max_body], ErrorKind.OVERSIZED_PAYLOAD
                if self._clock() > deadline:
                    return b"".join(chunks), ErrorKind.DEADLINE_EXCEEDED
        except ERRORS as exc:
            kind = classify_exception(exc)
            return b"".join(chunks), (ErrorKind.BAD_PAYLOAD if kind is ErrorKind.TRANSPORT_ERROR else kind)
        return b"".join(chunks), None


def retry_after_seconds(value: str, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date (RFC 9110
    10.2.3); None when it is neither."""
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    from datetime import timezone
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:                  # "-0000": UTC, with no claim about the sender's zone
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now())
