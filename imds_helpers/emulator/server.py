"""The HTTP side of the emulator: ``Emulator`` (public API) and its request handler.

Built on the standard library (``ThreadingHTTPServer`` + ``BaseHTTPRequestHandler``, HTTP/1.1)
and writing every response by hand, so that faults can be exact: RST via ``SO_LINGER 0``,
accept-then-hang, slow drip, slow headers, a Content-Length larger than the bytes sent.

Binding rule: loopback addresses (127.0.0.0/8, ::1, ``localhost``) are always allowed. Any other
address needs ``allow_remote=True`` - or a machine whose only network interface is ``lo``
(``socket.if_nameindex()``), i.e. a private network namespace such as ``tests/isolated.sh``
makes; that is how the emulator may own 169.254.169.254:80 there and nowhere else.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from imds_helpers.emulator import protocol as P
from imds_helpers.emulator.model import new_machine
from imds_helpers.emulator.scenarios import get_scenario
from imds_helpers.emulator.service import Request, Response, Service
from imds_helpers.emulator.tokens import CANARY_ENV, CANARY_RE, new_canary
from imds_helpers.model.errors import UsageError
from imds_helpers.model.redact import PLACEHOLDER

log = logging.getLogger("imds_helpers.emulator")

#: ``request_log`` keeps this many newest entries (``request_log_dropped`` counts the rest).
REQUEST_LOG_LIMIT = 10_000
#: Request headers copied into ``request_log`` (Authorization only as a placeholder).
LOGGED_HEADERS = ("Host", "Metadata", "X-Forwarded-For", "Authorization", "User-Agent", "Accept",
                  "Content-Type", "Content-Length", "x-ms-client-request-id", "x-client-SKU",
                  "x-client-Ver")
MAX_REQUEST_BODY = 1 << 20
#: Idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT = 30.0

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 410: "Gone", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def only_loopback_interface() -> bool:
    """True when ``lo`` is the machine's only network interface (a private namespace)."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return False
    return names == ["lo"]


def check_bind_allowed(host: str, allow_remote: bool) -> None:
    if host.lower() != "localhost":
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            # No name resolution: the emulator never sends a DNS query.
            raise UsageError(f"{host!r} is not an IP address; give an address or 'localhost'",
                             argument="--host") from None
    if is_loopback(host) or allow_remote or only_loopback_interface():
        return
    raise UsageError(
        f"refusing to listen on non-loopback address {host!r}: pass --allow-remote "
        "(allow_remote=True), or run inside a private network namespace whose only interface is lo",
        argument="--host")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a burst of clients connecting at once (SDKs on
    # many threads) overflows it and the kernel drops SYNs, which clients retry only after 1 s.
    request_queue_size = 128
    emulator: "Emulator"

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    # "blackhole": stop accepting and keep the (length-0) listen queue full, so the kernel
    # drops new SYNs and clients see a connect timeout - real kernel behaviour, no iptables.
    blackholed = False

    def _handle_request_noblock(self) -> None:
        if self.blackholed:
            time.sleep(0.05)  # the listening socket stays readable; do not spin
            return
        super()._handle_request_noblock()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    server: _Server

    def version_string(self) -> str:
        return P.IMDS_SERVER_HEADER

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s - " + format, self.address_string(), *args)

    def setup(self) -> None:
        super().setup()
        self.server.emulator._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator._track(self.connection, add=False)

    def handle(self) -> None:
        emu = self.server.emulator
        scenario = emu._service.scenario
        if scenario.get("transport") == "hang":
            # Accepted by the kernel and by us; never read, never answered.
            emu._record(None, None, fault=scenario.name, client=self.client_address[0])
            emu._stop.wait()
            self.close_connection = True
            return
        super().handle()

    def __getattr__(self, name: str) -> Any:
        # Every verb reaches the service, which answers 405 for the ones IMDS refuses.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        emu = self.server.emulator
        split = urlsplit(self.path)
        body = b""
        length = self.headers.get("Content-Length")
        if length:
            try:
                size = int(length)
            except ValueError:
                size = -1
            if size < 0 or size > MAX_REQUEST_BODY:
                self.close_connection = True
                resp = Response(400, P.dumps({"error": "Request body is larger than MaxBodyLength"}))
                self._send(resp)
                return
            body = self.rfile.read(size)
        elif self.headers.get("Transfer-Encoding"):
            self.close_connection = True
        req = Request(method=self.command, path=split.path,
                      query=parse_qsl(split.query, keep_blank_values=True),
                      headers=self.headers, body=body, client=self.client_address[0])
        try:
            resp = emu._service.handle(req)
        except Exception:  # pragma: no cover - a bug must not kill the connection silently
            log.exception("emulator failed to answer %s %s", self.command, split.path)
            resp = Response(500, P.dumps(P.SERVER_ERROR))
        emu._record(req, resp)
        self._send(resp)

    # ---- writing --------------------------------------------------------------------------
    def _send(self, resp: Response) -> None:
        if resp.transport == "reset":
            self._reset()
            return
        if resp.transport == "hang":
            self.server.emulator._stop.wait()
            self.close_connection = True
            return
        body = resp.body
        declared = len(body)
        sent = body
        close = resp.http_version != "HTTP/1.1" or resp.transport in ("truncate", "slow_drip", "slow_headers")
        if resp.transport == "truncate":
            sent = body[: len(body) // 2]
            declared = len(body) if len(body) > len(sent) else len(body) + 64
        reason = resp.reason or _REASONS.get(resp.status, "Unknown")
        lines = [f"{resp.http_version} {resp.status} {reason}"]
        if resp.content_type:
            lines.append(f"Content-Type: {resp.content_type}")
        if resp.server_header and self.server.emulator.mode == "vm":
            lines.append(f"Server: {P.IMDS_SERVER_HEADER}")
        lines.append(f"Date: {self.date_time_string()}")
        lines.append(f"Content-Length: {declared}")
        extra_names = set()
        for name, value in resp.headers:
            extra_names.add(name.lower())
            lines.append(f"{name}: {value}")
        if close and "connection" not in extra_names:
            lines.append("Connection: close")
        if close or "connection" in extra_names:
            self.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        try:
            if self.command == "HEAD":
                self.wfile.write(head)
            elif resp.transport == "slow_drip":
                self.wfile.write(head)
                self._drip(sent, resp.drip_interval)
            elif resp.transport == "slow_headers":
                status_line = head.index(b"\r\n") + 2
                self.wfile.write(head[:status_line])
                self._drip(head[status_line:] + sent, resp.drip_interval)
            else:
                self.wfile.write(head + sent)
        except OSError:
            self.close_connection = True

    def _drip(self, body: bytes, interval: float) -> None:
        stop = self.server.emulator._stop
        for i in range(len(body)):
            if stop.is_set():
                break
            self.wfile.write(body[i:i + 1])
            if stop.wait(interval):
                break

    def _reset(self) -> None:
        """Abortive close: SO_LINGER on with timeout 0 makes close() send RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class Emulator:
    """An emulated Azure IMDS (``mode="vm"``) or Arc HIMDS (``mode="arc"``) on a real socket.

    Starts serving in the constructor; use as a context manager or call :meth:`close`.
    ``key_dir`` (arc mode) is where challenge key files go; ``None`` makes a fresh temp dir
    that :meth:`close` removes. ``canary`` defaults to ``$IMDS_EMULATOR_CANARY``, else
    ``imdsrbcanary`` + 16 random hex chars, and appears literally in every token and Arc
    secret. ``scenario_params`` override the scenario's settings (see
    :mod:`imds_helpers.emulator.scenarios`). ``label`` stands for the scenario's name wherever the
    emulator would show it (``request_log``, its fault labels, ``repr``, log lines): the blind lab
    runs a scenario nobody may read. ``rate_limits`` turns the real service's 5 req/s
    (identity 20 req/s, 5 concurrent) limits on or off (vm mode).
    """

    def __init__(self, mode: str = "vm", scenario: str | None = None, host: str = "127.0.0.1",
                 port: int = 0, key_dir: str | None = None, canary: str | None = None,
                 allow_remote: bool = False, os_type: str = "Linux", *,
                 scenario_params: dict[str, Any] | None = None, rate_limits: bool = True,
                 label: str | None = None) -> None:
        if mode not in ("vm", "arc"):
            raise UsageError(f"unknown mode {mode!r}; choose vm or arc", argument="--mode")
        if os_type.lower() not in ("linux", "windows"):
            raise UsageError(f"unknown os type {os_type!r}; choose Linux or Windows", argument="--os-type")
        canary_from = "--canary"
        if canary is None and os.environ.get(CANARY_ENV):
            canary, canary_from = os.environ[CANARY_ENV], CANARY_ENV
        if canary is None:
            canary = new_canary()
        elif not CANARY_RE.match(canary):
            raise UsageError("canary must be 8-128 characters of [A-Za-z0-9_-]", argument=canary_from)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise UsageError(f"port must be an integer 0-65535, not {port!r}", argument="--port")
        scenario_row = get_scenario(scenario, mode).with_params(**(scenario_params or {}))
        check_bind_allowed(host, allow_remote)

        self.mode = mode
        self.host = host
        self._label = label
        self.canary = canary
        self.os_type = "Windows" if os_type.lower() == "windows" else "Linux"
        self.request_log: list[dict[str, Any]] = []
        self.request_log_dropped = 0
        self._log_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._own_key_dir = False
        self.key_dir = self._prepare_key_dir(key_dir) if mode == "arc" else key_dir
        self.machine = new_machine(mode, self.os_type)
        self._service = Service(mode=mode, machine=self.machine, canary=canary, key_dir=self.key_dir,
                                scenario=scenario_row, rate_limits=rate_limits, stop_event=self._stop)
        server_cls = _Server6 if ":" in host.strip("[]") else _Server
        try:
            self._server = server_cls((host.strip("[]"), port), _Handler)
        except OSError as err:
            self._cleanup_files()
            culprit = ("--host" if isinstance(err, socket.gaierror)
                       or err.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) else "--port")
            raise UsageError(f"cannot listen on {host}:{port}: {err.strerror or err}",
                             argument=culprit) from None
        self._server.emulator = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name=f"imds-emulator-{self.port}", daemon=True)
        self._thread.start()
        self._filler: socket.socket | None = None
        self._apply_listen_mode()

    def _apply_listen_mode(self) -> None:
        """Enter or leave the "blackhole" transport, which lives on the listening socket."""
        want = self._service.scenario.get("transport") == "blackhole"
        if want and not self._server.blackholed:
            self._server.blackholed = True
            self._server.socket.listen(0)
            # One completed connection fills a length-0 queue; every later SYN is dropped.
            self._filler = socket.create_connection((self.host.strip("[]"), self.port), timeout=2)
        elif not want and self._server.blackholed:
            self._server.socket.listen(self._server.request_queue_size)
            self._server.blackholed = False
            if self._filler is not None:
                self._filler.close()
                self._filler = None

    # ---- public API -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host = self.host.strip("[]")
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def scenario(self) -> str:
        return self._service.scenario.name

    @property
    def scenario_settings(self) -> dict[str, Any]:
        row = self._service.scenario
        from imds_helpers.emulator.scenarios import DEFAULTS
        return {key: row.get(key) for key in DEFAULTS}

    def set_scenario(self, name: str, **params: Any) -> None:
        """Switch scenario while running; counters and timers of the new one start now."""
        self._service.set_scenario(get_scenario(name, self.mode).with_params(**params))
        self._apply_listen_mode()
        log.info("emulator %s: scenario %s", self.base_url, self._label or name)

    @property
    def identities(self) -> dict[str, Any]:
        ids = self._service.identities()
        system = ids["system_assigned"]
        return {"system_assigned": system.to_dict() if system else None,
                "user_assigned": [u.to_dict() for u in ids["user_assigned"]]}

    @property
    def tenant_id(self) -> str:
        return self.machine.tenant_id

    @property
    def resource_id(self) -> str:
        return self.machine.resource_id

    @property
    def pending_key_files(self) -> list[str]:
        """Paths written for Arc challenges that were not redeemed yet."""
        return self._service.pending_key_paths()

    def close(self) -> None:
        """Stop serving; returns promptly even with hung or dripping connections."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._server.blackholed = False
        self._server.shutdown()
        if self._filler is not None:
            self._filler.close()
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(timeout=2)
        self._cleanup_files()

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Emulator mode={self.mode} scenario={self._label or self.scenario} url={self.base_url}>"

    # ---- internals --------------------------------------------------------------------------
    def _prepare_key_dir(self, key_dir: str | None) -> str:
        if key_dir is None:
            path = tempfile.mkdtemp(prefix="imds-emulator-keys-")
            os.chmod(path, 0o750)
            self._own_key_dir = True
            return path
        # CHOICE: a given key directory must already exist; the emulator never creates it (it
        # would otherwise make /var/opt/azcmagent/tokens on a real host).
        if not os.path.exists(key_dir):
            raise UsageError(f"key directory {key_dir!r} does not exist", argument="--key-dir")
        if not os.path.isdir(key_dir):
            raise UsageError(f"key directory {key_dir!r} is not a directory", argument="--key-dir")
        if not os.access(key_dir, os.W_OK | os.X_OK):
            raise UsageError(f"key directory {key_dir!r} is not writable", argument="--key-dir")
        return os.path.abspath(key_dir)

    def _cleanup_files(self) -> None:
        if hasattr(self, "_service"):
            self._service.cleanup()
        if self._own_key_dir and self.key_dir:
            shutil.rmtree(self.key_dir, ignore_errors=True)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conn_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _record(self, req: Request | None, resp: Response | None, *, fault: str | None = None,
                client: str = "") -> None:
        entry: dict[str, Any] = {"time": time.time(), "scenario": self._label or self.scenario,
                                 "client": req.client if req else client,
                                 "method": req.method if req else None,
                                 "path": req.path if req else None,
                                 "query": {}, "headers": {}, "status": None, "fault": fault}
        if req is not None:
            query: dict[str, str] = {}
            for key, value in req.query:
                query.setdefault(key, value)
            entry["query"] = query
            headers = {}
            for name in LOGGED_HEADERS:
                value = req.headers.get(name)
                if value is not None:
                    headers[name] = PLACEHOLDER if name == "Authorization" else value
            entry["headers"] = headers
        if resp is not None:
            entry["status"] = None if resp.transport in ("reset", "hang") else resp.status
            entry["fault"] = resp.fault
        if self._label is not None and entry["fault"] is not None:
            entry["fault"] = self._label      # fault labels name the scenario or its realm kind
        with self._log_lock:
            self.request_log.append(entry)
            if len(self.request_log) > REQUEST_LOG_LIMIT:
                # A long-running emulator must not grow without bound: keep the newest entries.
                dropped = len(self.request_log) - REQUEST_LOG_LIMIT
                del self.request_log[:dropped]
                self.request_log_dropped += dropped
        log.debug("%s %s -> %s", entry["method"], entry["path"], entry["status"])
