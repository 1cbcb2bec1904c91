"""The metadata HTTP client: requests with proxies bypassed, per-phase timeouts, a deadline
per step, Microsoft's retry rules, and a record of every attempt.

Why not urllib3's ``Retry``: we need each attempt as evidence (status, elapsed, headers, a
body excerpt) and a hard deadline that also bounds ``Retry-After`` sleeps and slow bodies;
``Retry`` keeps neither. We still use urllib3's ``Retry-After`` parser.

Every failure is classified into :mod:`imds_helpers.taxonomy`; nothing here raises for
network trouble. Response bodies stay inside :class:`Outcome` (hidden from ``repr``) and
are never put into results unredacted.
"""

from __future__ import annotations

import errno
import functools
import json
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from imds_helpers import strictjson
from imds_helpers.findings import Attempt
from imds_helpers.redact import redact_headers, redact_text
from imds_helpers.taxonomy import ErrorKind

# Microsoft's identity guidance: retry 404, 410, 429 and 5xx; never other 4xx.
RETRY_STATUSES = frozenset({404, 410, 429} | set(range(500, 600)))
# A diagnosis wants a verdict, not patience: at most this many attempts per request, and no
# retry after a read timeout (a service that holds a connection 5 s will do it again).
MAX_ATTEMPTS = 4
# Instance documents are ~10 KB; anything this large is not an IMDS answer.
MAX_BODY_BYTES = 1024 * 1024
EXCERPT_CHARS = 240
EVIDENCE_HEADERS = ("Server", "Content-Type", "Content-Length", "Retry-After", "WWW-Authenticate", "Via")

Sleep = Callable[[float], None]

if TYPE_CHECKING:
    import requests

# requests and urllib3 are imported on first use, not with this module: a run's first
# steps (platform, proxy without proxy variables, network) send no HTTP request. Not in a
# background thread: two threads importing requests at once can see its modules half
# initialised (requests' modules import each other), and a user's cell may import it too.


@dataclass(frozen=True)
class Timeouts:
    """Per-phase timeouts (seconds). ``total`` bounds a whole step including retries.

    The defaults give a verdict in seconds: a DROPped connection is a ``connect_timeout``
    after 2 s, where curl waits about two minutes.
    """

    connect: float = 2.0
    read: float = 5.0
    total: float = 10.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not (0 < value <= 3600):
                raise ValueError(f"{name} timeout must be > 0 and <= 3600 seconds, got {value!r}")

    @classmethod
    def from_total(cls, total: float) -> "Timeouts":
        """Timeouts for a user-given overall ``--timeout``: phases never exceed it."""
        return cls(connect=min(2.0, total), read=min(5.0, total), total=total)


@dataclass(frozen=True)
class Outcome:
    """The last answer of a request (after retries), with every attempt as evidence."""

    attempts: tuple[Attempt, ...]
    status: int | None = None
    error: ErrorKind | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)   # raw; attempts hold the redacted ones
    body: bytes = field(default=b"", repr=False)
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def json(self) -> Any:
        """Parsed body; raises ``ValueError`` if it is not JSON (message holds no body)."""
        try:
            return strictjson.loads(self.body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"body is not JSON ({type(err).__name__} at {getattr(err, 'pos', '?')})") from None
        except strictjson.NotJson as err:
            raise ValueError(f"body is not JSON ({err})") from None

    def text(self, secrets: tuple[str, ...] = ()) -> str:
        """The body as redacted text (safe to show)."""
        return redact_text(self.body.decode("utf-8", "replace"), secrets)


def classify_exception(exc: BaseException) -> ErrorKind:
    """Map a requests / urllib3 / socket exception to the taxonomy."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ErrorKind.CONNECT_TIMEOUT
    if isinstance(exc, requests.exceptions.ReadTimeout) or isinstance(exc, socket.timeout):
        return ErrorKind.READ_TIMEOUT
    for inner in _causes(exc):
        if isinstance(inner, ConnectionResetError) or getattr(inner, "errno", None) in (errno.ECONNRESET, errno.EPIPE):
            return ErrorKind.CONNECTION_RESET
        code = getattr(inner, "errno", None)
        if code == errno.ECONNREFUSED or isinstance(inner, ConnectionRefusedError):
            return ErrorKind.CONNECT_REFUSED
        if code == errno.ENETUNREACH:
            return ErrorKind.NETWORK_UNREACHABLE
        if code == errno.EHOSTUNREACH:
            return ErrorKind.HOST_UNREACHABLE
        if code == errno.ETIMEDOUT:
            return ErrorKind.CONNECT_TIMEOUT
    text = " ".join(str(e) for e in _causes(exc))
    if "IncompleteRead" in text or "Connection broken" in text and "Incomplete" in text:
        return ErrorKind.BAD_PAYLOAD
    if "RemoteDisconnected" in text or "Connection aborted" in text or "reset" in text.lower():
        return ErrorKind.CONNECTION_RESET
    if "timed out" in text:
        return ErrorKind.READ_TIMEOUT
    return ErrorKind.TRANSPORT_ERROR


def _causes(exc: BaseException | None) -> Iterable[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        stack.extend([item.__cause__, item.__context__])
        stack.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
        reason = getattr(item, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)


@functools.cache
def _no_redirect_session_class() -> type[requests.Session]:
    import requests

    class NoRedirectSession(requests.Session):
        """A session that never looks at ``Location``. Even with ``allow_redirects=False``,
        requests parses it to prepare ``response.next``, and a malformed one (``http://[bad``)
        raised ValueError out of ``request()``. A redirect is evidence here (something else
        answered)."""

        def get_redirect_target(self, resp: requests.Response) -> None:
            return None

    return NoRedirectSession


class MetadataClient:
    """GET/POST against a metadata service with deadlines, retries and attempt records.

    ``session`` is injectable (tests, or a proxied session for the opt-in comparison);
    by default a session that ignores environment proxies, as Microsoft requires for IMDS.
    """

    def __init__(
        self,
        timeouts: Timeouts | None = None,
        *,
        session: requests.Session | None = None,
        proxies: Mapping[str, str] | None = None,
        sleep: Sleep = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        if session is None:
            session = _no_redirect_session_class()()
            session.trust_env = False  # never let HTTP(S)_PROXY / NO_PROXY reach IMDS
        self._session = session
        self._proxies = dict(proxies) if proxies else {"http": None, "https": None}  # type: ignore[dict-item]
        self._sleep = sleep
        self._clock = clock
        self._max_body = max_body_bytes
        self._max_attempts = max_attempts

    def __repr__(self) -> str:
        return f"MetadataClient(timeouts={self.timeouts!r})"

    def close(self) -> None:
        self._session.close()

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
                )
            self._sleep(wait)
            backoff = min(backoff * 2, 8.0)

    @staticmethod
    def _retry_wait(outcome: Outcome, backoff: float) -> float:
        value = outcome.header("Retry-After")
        if value:
            from urllib3.util.retry import Retry

            try:
                return max(0.0, float(Retry().parse_retry_after(value)))
            except Exception:  # an unparsable Retry-After is evidence, not a crash
                pass
        return backoff

    def _once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        deadline: float,
        secrets: tuple[str, ...],
    ) -> Outcome:
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        start = self._clock()
        remaining = max(0.01, deadline - start)
        timeout = (min(self.timeouts.connect, remaining), min(self.timeouts.read, remaining))
        shown_url = redact_text(requests.Request(method, url, params=params).prepare().url or url, secrets)
        status: int | None = None
        error: ErrorKind | None = None
        resp_headers: dict[str, str] = {}
        body = b""
        try:
            response = self._session.request(
                method, url, params=params, headers=dict(headers or {}), timeout=timeout,
                proxies=self._proxies, stream=True, allow_redirects=False,
            )
            try:
                status = response.status_code
                resp_headers = dict(response.headers)
                # The read timeout bounds the whole answer, not just each recv.
                body, error = self._read_body(response, min(deadline, self._clock() + self.timeouts.read))
            finally:
                response.close()
        except requests.exceptions.RequestException as exc:
            error = classify_exception(exc)
        except (OSError, Urllib3Error) as exc:   # ProtocolError, DecodeError, ... (not wrapped by requests)
            error = classify_exception(exc)
        elapsed = (self._clock() - start) * 1000
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
        )
        return Outcome(attempts=(attempt,), status=status, error=error, headers=resp_headers, body=body, elapsed_ms=elapsed)

    def _read_body(self, response: requests.Response, deadline: float) -> tuple[bytes, ErrorKind | None]:
        """Read at most ``max_body_bytes`` before the deadline (a slow drip must not hang us)."""
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        chunks: list[bytes] = []
        size = 0
        raw = response.raw
        try:
            while True:
                # read1 returns what one recv gives, so the deadline is checked between
                # drips; read(n) would block until n bytes arrived.
                chunk = raw.read1(16384, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > self._max_body:
                    return b"".join(chunks)[: self._max_body], ErrorKind.OVERSIZED_PAYLOAD
                if self._clock() > deadline:
                    return b"".join(chunks), ErrorKind.DEADLINE_EXCEEDED
        except (requests.exceptions.RequestException, OSError, Urllib3Error) as exc:
            # Urllib3Error includes DecodeError: a Content-Encoding whose body does not decode.
            kind = classify_exception(exc)
            return b"".join(chunks), (ErrorKind.BAD_PAYLOAD if kind is ErrorKind.TRANSPORT_ERROR else kind)
        return b"".join(chunks), None
