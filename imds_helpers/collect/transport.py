"""One HTTP exchange on the standard library's ``http.client``: connect, send, and an answer
read piece by piece with its Content-Encoding undone. No pool, no retries, no redirects: the
metadata client (:mod:`imds_helpers.collect.http`) decides all of that and records every attempt.

Why not urllib3: it wraps this same ``http.client`` (its status-line and header parser
included), and what it would add here is a connection pool, retries and TLS policy that a
diagnosis with one request per connection to a link-local or loopback address does not use.
Importing it costs about 25 ms in a fresh Jupyter kernel (its URL regular expressions alone
take 8 ms), a fifth of what a runbook may spend on top of papermill's own work. The three
things it would do for us are the few lines below: a connect timeout apart from the read
timeout, a request through a forward proxy (an absolute URI; CONNECT for https), and
gzip/deflate decoding.
"""

from __future__ import annotations

import base64
import http.client
import io
import math
import socket
import time
import zlib
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

from imds_helpers.model.evidence import join_headers

class ConnectFailed(Exception):
    """The TCP connection (or the proxy's tunnel) could not be made; ``__cause__`` says why."""


class DeadlineExceeded(socket.timeout):
    """The exchange's deadline passed while the peer was still sending (or silent): a
    ``socket.timeout`` for http.client, told apart from one silent read by the client."""


class _Deadline:
    """An absolute deadline (``time.monotonic``; ``inf``: none) and the per-read timeout under it."""

    def __init__(self, seconds: float, read_timeout: float) -> None:
        self.at = time.monotonic() + seconds
        self.read_timeout = read_timeout
        self.received = False           # has any byte of the answer arrived?

    def call(self, sock: Any, what: str, operation: Any, *args: Any) -> Any:
        """``operation(*args)`` on ``sock`` with its timeout cut to the time left. When the
        deadline ends it after part of the answer came, that is :class:`DeadlineExceeded` (an
        answer too slow); a peer that sent nothing at all is a plain ``socket.timeout``
        (no answer), as is a timeout that was the read timeout (a silent pause)."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise self._expired(f"deadline passed before {what}")
        sock.settimeout(min(self.read_timeout, left))
        try:
            return operation(*args)
        except socket.timeout:
            if left <= self.read_timeout:
                raise self._expired(f"deadline passed while {what}") from None
            raise

    def _expired(self, message: str) -> socket.timeout:
        return DeadlineExceeded(message) if self.received else socket.timeout(message)


class _DeadlineReader(io.RawIOBase):
    """What http.client reads a socket through (status line, headers, body): before each
    receive the socket's timeout becomes the smaller of the read timeout and the time left, so
    a peer that sends one byte just inside each read timeout still meets the deadline."""

    def __init__(self, owner: "_DeadlineSocket") -> None:
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        sock, deadline = self._owner._sock, self._owner._deadline
        count = deadline.call(sock, "reading the answer", sock.recv_into, buffer)
        deadline.received = deadline.received or count > 0
        return count

    def close(self) -> None:
        if not self.closed:
            self._owner._reader_closed()
        super().close()


class _DeadlineSocket:
    """A socket whose ``makefile("rb")`` reads under the deadline and whose ``sendall`` sends
    under it (a send's timeout is the total for the whole call); everything else is the
    socket's own. As with ``socket.makefile``, ``close()`` leaves the socket open while a
    reader made from it is: http.client closes the connection of a ``Connection: close``
    answer before its body is read."""

    def __init__(self, sock: Any, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline
        self._readers = 0
        self._closing = False

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if mode != "rb":       # http.client only ever reads responses this way
            raise ValueError(f"unsupported makefile mode {mode!r}")
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def sendall(self, data: Any, *args: Any) -> None:
        self._deadline.call(self._sock, "sending the request", self._sock.sendall, data, *args)

    def close(self) -> None:
        self._closing = True
        if self._readers == 0:
            self._sock.close()

    def _reader_closed(self) -> None:
        self._readers -= 1
        if self._closing and self._readers == 0:
            self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


# What send() and Exchange.read1() raise for trouble on the wire or from the peer (a cut or
# undecodable body included); anything else is a bug, not a finding.
ERRORS = (ConnectFailed, OSError, http.client.HTTPException, zlib.error)


class Exchange:
    """An answer whose status and headers have arrived; the body is read with :meth:`read1`."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse,
                 deadline: _Deadline, phases: Mapping[str, float] | None = None) -> None:
        self.phases = dict(phases or {})     # ms from the start: connect (done), headers (received)
        self._connection = connection
        self._response = response
        self._deadline = deadline
        self.status = response.status
        self.raw_headers: tuple[tuple[str, str], ...] = tuple(response.getheaders())   # in order, duplicates kept
        self.headers = join_headers(self.raw_headers)
        self._decoder = _decoder(response.getheader("Content-Encoding", ""))

    def limit(self, seconds: float) -> None:
        """Bring the deadline forward to ``seconds`` from now (never later than it was)."""
        self._deadline.at = min(self._deadline.at, time.monotonic() + seconds)

    def read1(self, size: int) -> bytes:
        """What one receive gives, decoded (``b""`` at the end); raises ``zlib.error`` for a
        body that does not decode and ``http.client.IncompleteRead`` for a cut one."""
        data = self._response.read1(size)
        missing = self._response.length    # what Content-Length still promises (None: chunked or unsaid)
        if not data and missing:
            # http.client's read1 ends quietly where read() would raise.
            raise http.client.IncompleteRead(b"", missing)
        if self._decoder is None:
            return data
        return self._decoder.decompress(data) if data else self._decoder.flush()

    def close(self) -> None:
        # One connection per request: a kept-alive socket that a fault left half-read would
        # turn the next check's answer into a stale-connection error.
        self._response.close()
        self._connection.close()


def send(method: str, url: str, headers: Mapping[str, str], *, connect_timeout: float, read_timeout: float,
         proxy: str | None = None, budget: float | None = None) -> Exchange:
    """Connect (bounded by ``connect_timeout``), send the request and read the status line and
    headers (each receive bounded by ``read_timeout``), all within ``budget`` seconds from now,
    which then also bounds reading the body (:meth:`Exchange.read1`): a peer that sends a
    byte now and then cannot stretch the exchange past it.

    Raises :class:`ConnectFailed` when no connection was made; :class:`DeadlineExceeded` (a
    ``socket.timeout``) when the budget ran out after that, other ``OSError`` or
    ``http.client.HTTPException`` for what happened after; ``ValueError`` for a request that
    cannot be sent (a URL or proxy that cannot be used, a header value with a line break).
    """
    started = time.monotonic()
    deadline = _Deadline(math.inf if budget is None else budget, read_timeout)
    connect_timeout = max(0.001, min(connect_timeout, math.inf if budget is None else budget))
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"cannot send to {parts.scheme or 'a URL without a scheme'}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent = dict(headers)
    if proxy is None:
        connection = _connection(parts.scheme, parts.hostname, port, connect_timeout)
    else:
        via = urlsplit(proxy)
        if via.scheme not in ("http", "https") or not via.hostname:
            raise ValueError(f"unsupported proxy scheme {via.scheme!r}")
        via_port = via.port or (443 if via.scheme == "https" else 80)
        if parts.scheme == "https":
            if via.scheme == "https":
                raise ValueError("https through an https proxy (TLS inside TLS) is not supported")
            connection = _connection("https", via.hostname, via_port, connect_timeout)
            connection.set_tunnel(parts.hostname, port, headers=proxy_authorization(proxy))
            _bound_tunnel(connection, deadline)
        else:
            connection = _connection(via.scheme, via.hostname, via_port, connect_timeout)
            target = url                                  # a forward proxy takes the absolute URI
            sent.update(proxy_authorization(proxy))
    try:
        connection.connect()
    except OSError as exc:
        connection.close()
        raise ConnectFailed(str(exc)) from exc
    connected = (time.monotonic() - started) * 1000
    try:
        if connection.sock is not None:    # the TLS handshake, if any, is done: read under the deadline
            connection.sock = _DeadlineSocket(connection.sock, deadline)
        connection.request(method, target, headers=sent)
        response = connection.getresponse()
        phases = {"connect_ms": round(connected, 1), "headers_ms": round((time.monotonic() - started) * 1000, 1)}
        return Exchange(connection, response, deadline, phases)
    except BaseException:
        connection.close()
        raise


def _bound_tunnel(connection: http.client.HTTPConnection, deadline: _Deadline) -> None:
    """The proxy's answer to CONNECT is read on the plain socket before TLS starts: read it
    under the deadline too (the handshake after it is one call, bounded by the socket timeout)."""
    tunnel = connection._tunnel       # noqa: SLF001 - http.client's own CONNECT exchange

    def bounded() -> None:
        plain = connection.sock
        connection.sock = _DeadlineSocket(plain, deadline)
        try:
            tunnel()
        finally:
            connection.sock = plain
            plain.settimeout(max(0.001, min(connection.timeout, deadline.at - time.monotonic())))

    connection._tunnel = bounded      # type: ignore[method-assign]


def proxy_authorization(proxy: str) -> dict[str, str]:
    """``Proxy-Authorization`` from credentials in the proxy URL, as requests sends it."""
    parts = urlsplit(proxy)
    if parts.username is None:
        return {}
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode("latin-1", "replace")
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def _connection(scheme: str, host: str, port: int, timeout: float) -> http.client.HTTPConnection:
    if scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=timeout)
    return http.client.HTTPConnection(host, port, timeout=timeout)


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped, or (against the RFC, but common) raw."""

    def __init__(self) -> None:
        self._inner: zlib._Decompress | None = None

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:                 # the first bytes say which of the two it is
            self._inner = zlib.decompressobj()
            try:
                return self._inner.decompress(data)
            except zlib.error:
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inner.decompress(data)

    def flush(self) -> bytes:
        return self._inner.flush() if self._inner is not None else b""


def _decoder(encoding: str):
    """A decompressor for gzip or deflate; None for identity and for encodings this client
    does not decode (br, zstd: the body stays as sent, as urllib3 leaves it without them)."""
    name = encoding.strip().lower()
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return _Deflate()
    return None


__all__ = ["ERRORS", "ConnectFailed", "DeadlineExceeded", "Exchange", "proxy_authorization", "send"]
