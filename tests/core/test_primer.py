"""The primer's exchanges (notebooks/00_imds_primer.ipynb) against answers that misbehave:
each is one request of the checks' metadata client, so it ends within its timeout and shows
what came, as text."""

from __future__ import annotations

import re
import socket
import time

import pytest

from imds_helpers.runbooks import primer
from imds_helpers.emulator import Emulator

from loopback_server import ThreadedAcceptLoop, read_request_head

RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class _Answer(ThreadedAcceptLoop):
    def __init__(self, body: bytes, content_type: str = "application/json") -> None:
        super().__init__()
        self.body, self.content_type = body, content_type

    def serve(self, conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nServer: IMDS/1\r\nContent-Type: " + self.content_type.encode()
                     + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(self.body) + self.body)


@pytest.mark.parametrize("scenario, params", [("vm-slow-drip", {"drip_interval": 0.2}), ("vm-slow-headers", {}),
                                              ("vm-accept-then-hang", {})])
def test_a_slow_answer_ends_within_the_timeout(scenario, params):
    with Emulator(mode="vm", scenario=scenario, scenario_params=params) as emu:
        started = time.monotonic()
        exchange = primer.get(emu.base_url, "/metadata/instance", {"api-version": "2019-11-01"}, timeout=1.0)
        assert time.monotonic() - started < 2.5
    assert exchange.error in ("deadline_exceeded", "read_timeout")
    assert exchange.error in exchange._repr_markdown_()


def test_hostile_text_stays_inside_its_block():
    body = b"```\n<script>alert(1)</script>\x1b[2J\n```` more"
    server = _Answer(body, "text/plain").start()
    try:
        shown = primer.get(f"http://127.0.0.1:{server.port}", "/metadata/instance/compute/name")._repr_markdown_()
    finally:
        server.close()
    fence = shown.split("http\n", 1)[0]
    assert len(fence) == 5 and shown.endswith("\n" + fence)       # longer than the body's ````
    assert shown.count(fence) == 2 and not RAW_CONTROL.search(shown) and "\\x1b[2J" in shown


def test_deep_json_is_shown_as_text_not_parsed():
    server = _Answer(b"[" * 300_000).start()
    try:
        exchange = primer.get(f"http://127.0.0.1:{server.port}", "/metadata/instance")
        claims = primer.token_claims(f"http://127.0.0.1:{server.port}")
    finally:
        server.close()
    assert exchange.status == 200 and isinstance(exchange.body, str) and len(exchange.body) <= 2000
    assert claims == {"error": "JSON nested deeper than 64 levels"}
