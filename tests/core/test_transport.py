"""One exchange on http.client: what urllib3 did for the metadata client, done by the transport
(decoding, proxy forwarding, separate timeouts, a cut body) - checked on real sockets."""

from __future__ import annotations

import gzip
import socket
import time
import zlib
from email.utils import formatdate

import pytest

from imds_helpers.collect.http import MetadataClient, Timeouts, retry_after_seconds
from imds_helpers.model.taxonomy import ErrorKind
from imds_helpers.collect.transport import DeadlineExceeded, proxy_authorization, send

from .conftest import respond

FAST = Timeouts(connect=0.5, read=0.5, total=1.5)
DOC = b'{"compute": {"vmId": "x"}}'


@pytest.mark.parametrize("encoding, body", [
    ("gzip", gzip.compress(DOC)),
    ("deflate", zlib.compress(DOC)),                                  # zlib-wrapped, as the RFC says
    ("deflate", zlib.compress(DOC)[2:-4]),                            # raw deflate, as some servers send it
    ("identity", DOC),
])
def test_content_encodings_are_undone(raw_server, encoding, body):
    url = raw_server(respond("200 OK", body, {"Content-Encoding": encoding}))
    outcome = MetadataClient(FAST).request(url)
    assert outcome.ok and outcome.body == DOC


def test_a_body_that_does_not_decode_is_bad_payload(raw_server):
    url = raw_server(respond("200 OK", b"0123456789", {"Content-Encoding": "gzip"}))
    assert MetadataClient(FAST).request(url).error is ErrorKind.BAD_PAYLOAD


def test_an_encoding_it_does_not_decode_is_left_as_sent(raw_server):
    url = raw_server(respond("200 OK", b"\x8b\x00raw", {"Content-Encoding": "br"}))
    outcome = MetadataClient(FAST).request(url)
    assert outcome.status == 200 and outcome.body == b"\x8b\x00raw"


def test_repeated_headers_are_joined(raw_server):
    def handler(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=/a.key\r\n"
                     b"www-authenticate: Bearer\r\nContent-Length: 0\r\n\r\n")
    outcome = MetadataClient(FAST).request(raw_server(handler), retry=False)
    assert outcome.header("WWW-Authenticate") == "Basic realm=/a.key, Bearer"


@pytest.fixture
def forward_proxy(raw_server):
    """A loopback listener standing in for a proxy: it records what it is sent, then answers."""
    seen: list[bytes] = []

    def handler(conn: socket.socket) -> None:
        seen.append(conn.recv(65536))
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}")
    return raw_server(handler), seen


def test_a_forward_proxy_gets_the_absolute_uri_and_the_credentials(forward_proxy):
    url, seen = forward_proxy
    user_url = url.replace("http://", "http://relia:p%40ss@")
    outcome = MetadataClient(FAST, proxy=user_url).request("http://169.254.169.254/metadata/instance",
                                                           params={"api-version": "2019-11-01"}, retry=False)
    assert outcome.status == 400
    head = seen[0].decode()
    assert head.startswith("GET http://169.254.169.254/metadata/instance?api-version=2019-11-01 HTTP/1.1\r\n")
    assert "Host: 169.254.169.254\r\n" in head
    assert proxy_authorization(user_url)["Proxy-Authorization"] in head     # relia:p@ss, as requests sends it


def test_a_scheme_less_proxy_variable_means_http(forward_proxy):
    url, seen = forward_proxy
    outcome = MetadataClient(FAST, proxy=url.removeprefix("http://")).request(
        "http://169.254.169.254/metadata/instance", retry=False)
    assert outcome.status == 400 and seen[0].startswith(b"GET http://169.254.169.254/")


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "https://127.0.0.1:9"])
def test_proxies_it_cannot_use_are_transport_errors(proxy):
    target = "https://example.invalid/" if proxy.startswith("https") else "http://169.254.169.254/"
    with pytest.raises(ValueError):
        send("GET", target, {}, connect_timeout=0.5, read_timeout=0.5, proxy=proxy)
    outcome = MetadataClient(FAST, proxy=proxy).request(target, retry=False)
    assert outcome.error is ErrorKind.TRANSPORT_ERROR                       # nothing was sent anywhere


def test_connect_and_read_timeouts_are_separate(raw_server):
    # A listener that accepts but never answers: connected at once, then the read timeout.
    def silent(conn: socket.socket) -> None:
        conn.recv(65536)
        time.sleep(2)
    started = time.monotonic()
    outcome = MetadataClient(Timeouts(connect=0.2, read=0.4, total=1.0)).request(raw_server(silent), retry=False)
    assert outcome.error is ErrorKind.READ_TIMEOUT
    assert 0.35 < time.monotonic() - started < 1.0


@pytest.mark.parametrize("value, seconds", [
    ("3", 3.0), (" 12 ", 12.0), ("1.5", None), ("soon", None), ("", None), ("-1", None), ("٣", None),
])
def test_retry_after_in_seconds(value, seconds):
    assert retry_after_seconds(value) == seconds


def test_retry_after_as_an_http_date():
    now = 1_800_000_000.0
    assert retry_after_seconds(formatdate(now + 30, usegmt=True), now=lambda: now) == 30.0
    assert retry_after_seconds(formatdate(now - 30, usegmt=True), now=lambda: now) == 0.0
    assert retry_after_seconds("Fri, 15 Jan 2027 08:00:00 -0000", now=lambda: 1_800_000_000.0) is not None


# --- the step's budget is a deadline on the whole exchange ----------------------------------------

def _trickle(prefix: bytes, piece: bytes, interval: float, seconds: float = 8.0):
    """``prefix`` at once, then ``piece`` every ``interval`` s: each byte inside any read timeout."""
    def handler(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(prefix)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(interval)
            conn.sendall(piece)
    return handler


SLOW = Timeouts(connect=0.5, read=0.5, total=1.2)


@pytest.mark.parametrize("name, handler", [
    ("status line", _trickle(b"", b"H", 0.1)),
    ("headers", _trickle(b"HTTP/1.1 200 OK\r\nServer: IMDS/1\r\nX-Slow: ", b"a", 0.1)),
    ("many header lines", _trickle(b"HTTP/1.1 200 OK\r\n", b"X: y\r\n", 0.05)),
    ("chunked body", _trickle(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n", b"1\r\n[\r\n", 0.1)),
])
def test_a_trickle_ends_at_the_step_deadline(raw_server, name, handler):
    """One byte every 0.1 s never trips a 0.5 s read timeout; the step's 1.2 s budget ends it."""
    started = time.monotonic()
    outcome = MetadataClient(SLOW, sleep=lambda s: None).request(raw_server(handler))
    took = time.monotonic() - started
    assert outcome.error is ErrorKind.DEADLINE_EXCEEDED, (name, outcome.attempts)
    assert took < SLOW.total + 0.3, (name, took)


def test_one_silent_read_is_still_a_read_timeout(raw_server):
    """The status line, then silence: the read timeout (0.5 s) comes before the deadline."""
    outcome = MetadataClient(SLOW).request(raw_server(_trickle(b"HTTP/1.1 200 OK\r\n", b"", 5.0)), retry=False)
    assert outcome.error is ErrorKind.READ_TIMEOUT and outcome.attempts[0].elapsed_ms < 900


def test_no_answer_at_all_stays_a_read_timeout_when_the_budget_ends_it(raw_server):
    """Not a byte before the deadline: no answer (IMDS-HTTP-004), not a slow one."""
    started = time.monotonic()
    outcome = MetadataClient(Timeouts(connect=0.5, read=1.0, total=0.8)).request(
        raw_server(_trickle(b"", b"", 5.0)), retry=False)
    assert outcome.error is ErrorKind.READ_TIMEOUT and time.monotonic() - started < 1.1


def test_send_alone_keeps_its_budget(raw_server):
    url = raw_server(_trickle(b"HTTP/1.1 200 OK\r\n", b"X: y\r\n", 0.05))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        send("GET", url, {}, connect_timeout=0.5, read_timeout=0.5, budget=0.6)
    assert time.monotonic() - started < 0.9


def test_a_proxy_tunnel_that_trickles_is_bounded_by_the_deadline(raw_server):
    """https through a proxy: the proxy's answer to CONNECT is read before TLS, under the deadline."""
    proxy = raw_server(_trickle(b"HTTP/1.1 200 Connection established\r\nX-Slow: ", b"a", 0.1))
    started = time.monotonic()
    outcome = MetadataClient(SLOW, proxy=proxy).request("https://example.invalid/metadata/instance", retry=False)
    assert outcome.error is not None and outcome.status is None
    assert time.monotonic() - started < SLOW.total + 0.3


def test_a_long_answer_within_the_deadline_is_read_whole(raw_server):
    """The deadline wrapper reads what http.client reads: a 300 KB body sent with Connection: close."""
    body = b'{"a": "' + b"x" * 300_000 + b'"}'
    outcome = MetadataClient(SLOW).request(raw_server(respond("200 OK", body)))
    assert outcome.ok and outcome.body == body
