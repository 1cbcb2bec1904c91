from __future__ import annotations

import builtins
import json
import os
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import pytest

from imds_helpers.collect import LiveHost, RecordingClient
from imds_helpers.model.evidence import Timeouts

netns = pytest.mark.skipif(os.environ.get("IMDS_RUNBOOK_NETNS") != "1",
                           reason="needs tests/isolated.sh's private network namespace (unshare unavailable)")


@pytest.fixture(scope="module")
def arc_emulator():
    """One Arc emulator per module; its key dir (0755 so a dropped-privilege child can look
    in) doubles as the tokens dir of the checks."""
    from imds_helpers.emulator import Emulator

    key_dir = tempfile.mkdtemp(prefix="arc-tokens-")
    os.chmod(key_dir, 0o755)
    with Emulator(mode="arc", key_dir=key_dir) as emu:
        yield emu
    os.rmdir(key_dir)


@pytest.fixture
def emu(arc_emulator):
    arc_emulator.set_scenario("arc-healthy")
    arc_emulator.request_log.clear()
    yield arc_emulator
    arc_emulator.set_scenario("arc-healthy")


@pytest.fixture
def host() -> LiveHost:
    """The live machine as the checks see it: it reads the Arc key file (``keys=host``) and
    keeps the secret for the one authorised request its own client sends."""
    return LiveHost()


@pytest.fixture
def client(host) -> Iterator[RecordingClient]:
    """``host``'s client: only it can send the secret ``host.arc_key`` kept (the chain's
    ``authorization=`` handle), so ``check_arc_token(client, url, keys=host, ...)``."""
    c = host.client(Timeouts(connect=2, read=3, total=5))
    yield c
    c.close()


def leaks(results, *secrets: str) -> list[str]:
    """Which of ``secrets`` appear in the results' repr or JSON form."""
    blob = repr(results) + json.dumps([r.to_dict() for r in results])
    return [s for s in secrets if s and s in blob]


def recorded_tokens(host: LiveHost) -> list[str]:
    """The access tokens as ``host`` handed them to the check (``header.claims.``, the
    signature - where the emulator's canary sits - cut): a leak test must look for these too,
    or a token in a result would go unnoticed."""
    found = []
    for record in host.records["http"]:
        try:
            token = json.loads(record["body"]).get("access_token")
        except (ValueError, AttributeError):
            continue
        if isinstance(token, str) and token:
            found.append(token)
    return found


def bundle_leaks(host: LiveHost, *secrets: str) -> list[str]:
    """Which of ``secrets`` appear in the evidence ``host`` recorded (an output too)."""
    from imds_helpers.model import evidence

    text = evidence.dumps(host.bundle({}))
    return [s for s in secrets if s and s in text]


@pytest.fixture
def opened_by_test_thread(monkeypatch):
    """Record every path this thread opens (os.open / open); other threads (the emulator's
    server) are not recorded."""
    opened: list[str] = []
    me = threading.get_ident()
    real_os_open, real_open = os.open, builtins.open

    def record(real):
        def wrapper(path, *args, **kwargs):
            if threading.get_ident() == me and not isinstance(path, int):
                opened.append(os.path.realpath(os.fspath(path)))
            return real(path, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(os, "open", record(real_os_open))
    monkeypatch.setattr(builtins, "open", record(real_open))
    return opened


Respond = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


@pytest.fixture
def fake_service() -> Iterator[Callable[[Respond], str]]:
    """A loopback HTTP server whose answer is a plain function of the request handler; the
    handler's requests are recorded as (path, headers) in ``server.seen``."""
    servers: list[ThreadingHTTPServer] = []

    def start(respond: Respond) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                status, headers, body = respond(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
