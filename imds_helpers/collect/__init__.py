"""Collection: the checks' questions asked of the live machine, every answer kept as evidence.

:class:`LiveHost` is the one place the checks touch the machine - host commands, file reads,
the TCP connect, the HTTP exchanges, the Arc key file, this process's identity. Each answer is
written as a record (:mod:`imds_helpers.model.evidence`) and handed to the check *as read back from
its record*, so the live run sees exactly what the analysis of its bundle will see.

    bundle = collect(opts)          # runs on the host: standard library only
    report = analyze(bundle)        # runs anywhere: imds_helpers.analyze

What to ask is the checks' own sequence (:mod:`imds_helpers.analyze.pipeline`), asked once: no second
list of requests to keep in step with the rules. Retries happen here (each attempt is
evidence); how they are judged is the analysis'.
"""

from __future__ import annotations

import errno
import glob as _glob
import os
import platform as _platform
import socket
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from imds_helpers import __version__
from imds_helpers.model import evidence as ev
from imds_helpers.model.endpoints import ENV_PRESENCE, ENV_SHOWN, INSTANCE_PATH, WININET_KEY
from imds_helpers.model.evidence import (COMMAND_TIMEOUT, ArcKeyProbe, CommandOutput, Outcome, Runner, TcpProbe, Timeouts,
                                   Verdict)
from imds_helpers.model.taxonomy import ErrorKind

if TYPE_CHECKING:
    from imds_helpers.analyze.pipeline import CheckOptions

COLLECTOR = "imds-runbook"

# errno values (POSIX and WinSock) -> taxonomy kind
_ERRNO_KIND = {
    errno.ECONNREFUSED: ErrorKind.CONNECT_REFUSED, 10061: ErrorKind.CONNECT_REFUSED,
    errno.ETIMEDOUT: ErrorKind.CONNECT_TIMEOUT, 10060: ErrorKind.CONNECT_TIMEOUT,
    errno.ENETUNREACH: ErrorKind.NETWORK_UNREACHABLE, 10051: ErrorKind.NETWORK_UNREACHABLE,
    errno.EHOSTUNREACH: ErrorKind.HOST_UNREACHABLE, 10065: ErrorKind.HOST_UNREACHABLE,
    errno.ECONNRESET: ErrorKind.CONNECTION_RESET, 10054: ErrorKind.CONNECTION_RESET,
    errno.ECONNABORTED: ErrorKind.CONNECTION_RESET, 10053: ErrorKind.CONNECTION_RESET,
}


def classify_socket_error(exc: BaseException) -> ErrorKind:
    """Taxonomy kind of a failed ``connect()``."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return ErrorKind.CONNECT_TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return ErrorKind.CONNECT_REFUSED
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError)):
        return ErrorKind.CONNECTION_RESET
    code = getattr(exc, "winerror", None) or getattr(exc, "errno", None)
    return _ERRNO_KIND.get(code, ErrorKind.TRANSPORT_ERROR) if isinstance(code, int) else ErrorKind.TRANSPORT_ERROR


def current_os() -> str:
    """"linux" | "windows" | "darwin" | "freebsd" | other ``sys.platform`` values."""
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform.startswith("freebsd"):
        return "freebsd"
    return sys.platform


class LiveHost:
    """This machine, recorded. ``env``, ``root`` (a file tree standing in for ``/``), ``run``
    (a command runner) and ``os_name`` are injectable for tests; by default they are the real
    ones. Never raises for what the machine answers."""

    def __init__(self, *, env: Mapping[str, str] | None = None, root: str = "/", run: Runner | None = None,
                 os_name: str | None = None) -> None:
        raw = dict(os.environ if env is None else env)
        self._raw_env = raw
        self._root = root
        self._run = run
        self.os_name = os_name or current_os()
        self.env = ev.environment_record(raw, ENV_SHOWN, ENV_PRESENCE)
        from imds_helpers.model.validate import proxy_url_problem

        # Judged on the raw value (a "/" typed inside a password changes what clients parse); the
        # value itself is kept with its credentials hidden.
        self.proxy_url_problems = {name: problem for name, value in sorted(raw.items())
                                   if name.lower().endswith("_proxy") and name.lower() != "no_proxy" and value
                                   and (problem := proxy_url_problem(value))}
        self.records: dict[str, list[dict[str, Any]]] = {kind: [] for kind in ev.RECORD_KINDS}
        self._secrets: dict[str, str] = {}       # Arc keys by realm, for the authorised request only
        self._euid = os.geteuid() if hasattr(os, "geteuid") else None
        self._users: dict[str, int | None] = {}
        self._wininet: Mapping[str, Any] | None = None
        self._started = time.time()
        self._started_mono = time.monotonic()

    def __repr__(self) -> str:
        return f"LiveHost(os={self.os_name!r})"

    def _add(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        if len(self.records[kind]) < ev.MAX_RECORDS:
            self.records[kind].append(record)
        return record

    # --- commands and files ------------------------------------------------------------------

    def run(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> CommandOutput:
        if self._run is None:
            from imds_helpers.collect.hostcmd import run_command

            self._run = run_command
        return ev.command_from(self._add("commands", ev.command_record(self._run(tuple(argv), timeout), timeout)))

    def _path(self, path: str) -> str:
        if self._root == "/" or not path.startswith("/"):
            return path
        return os.path.join(self._root, path.lstrip("/"))

    def read_file(self, path: str, limit: int = 65536) -> tuple[str | None, str | None]:
        """(text, None) or (None, reason): "missing", "permission_denied", "os_error: ..."."""
        text, problem = None, None
        try:
            with open(self._path(path), "rb") as handle:
                text = handle.read(min(limit, ev.MAX_FILE_CHARS)).decode("utf-8", errors="replace")
        except FileNotFoundError:
            problem = "missing"
        except PermissionError:
            problem = "permission_denied"
        except OSError as exc:
            problem = f"os_error: {exc.strerror or exc}"
        return ev.file_read_from(self._add("files", ev.file_record("read", path, limit=limit, text=text, error=problem)))

    def path_kind(self, path: str) -> str:
        """"file", "dir", "other", "missing" or "error" (symlinks followed)."""
        import stat

        try:
            mode = os.stat(self._path(path)).st_mode
            kind = "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"
        except FileNotFoundError:
            kind = "missing"
        except OSError:
            kind = "error"
        return self._add("files", ev.file_record("kind", path, kind=kind))["kind"]

    def glob(self, pattern: str) -> tuple[str, ...]:
        found = sorted(_glob.glob(self._path(pattern)))[:16]
        shown = [p if self._root == "/" else "/" + os.path.relpath(p, self._root) for p in found]
        return tuple(self._add("files", ev.file_record("glob", pattern, paths=shown))["paths"])

    # --- identity --------------------------------------------------------------------------------

    @property
    def euid(self) -> int | None:
        return self._euid

    def uid_of(self, name: str) -> int | None:
        if name not in self._users:
            try:
                import pwd

                self._users[name] = pwd.getpwnam(name).pw_uid
            except (ImportError, KeyError, OSError, ValueError):
                self._users[name] = None
        return self._users[name]

    def wininet(self) -> Mapping[str, Any] | None:
        """This user's WinINet proxy values (Windows only)."""
        self._wininet = read_wininet_registry()
        return self._wininet

    # --- the network -----------------------------------------------------------------------------

    def tcp(self, host: str, port: int, timeout: float) -> TcpProbe:
        """Open (and close) a TCP connection within ``timeout`` seconds in total; nothing is sent.
        Every address the name resolves to is tried in order until one connects."""
        start = time.monotonic()
        deadline = start + timeout
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError) as exc:
            probe = TcpProbe(host, port, timeout, resolve_error=str(exc) or type(exc).__name__, elapsed_ms=_ms(start))
            return ev.tcp_from(self._add("tcp", probe.to_record()))
        attempts: list[dict[str, Any]] = []
        for family, socktype, proto, _, sockaddr in dict.fromkeys((i[0], i[1], i[2], "", i[4]) for i in infos):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                attempts.append({"address": sockaddr[0], "error_kind": ErrorKind.CONNECT_TIMEOUT.value, "errno": None,
                                 "error": "deadline reached before this address was tried", "elapsed_ms": 0.0,
                                 "source_address": None})
                break
            attempt_start = time.monotonic()
            sock = socket.socket(family, socktype, proto)
            try:
                sock.settimeout(remaining)
                sock.connect(sockaddr)
                attempts.append({"address": sockaddr[0], "error_kind": None, "errno": None, "error": None,
                                 "source_address": sock.getsockname()[0], "elapsed_ms": round(_ms(attempt_start), 1)})
                break
            except OSError as exc:
                attempts.append({"address": sockaddr[0], "error_kind": classify_socket_error(exc).value,
                                 "errno": getattr(exc, "errno", None), "error": str(exc) or type(exc).__name__,
                                 "source_address": None, "elapsed_ms": round(_ms(attempt_start), 1)})
            finally:
                sock.close()
        probe = TcpProbe(host, port, timeout, attempts=tuple(attempts), elapsed_ms=_ms(start))
        return ev.tcp_from(self._add("tcp", probe.to_record()))

    def client(self, timeouts: Timeouts) -> RecordingClient:
        """HTTP straight to the service (never through a proxy)."""
        return RecordingClient(self, timeouts)

    def proxy_client(self, timeouts: Timeouts, endpoint: str) -> RecordingClient:
        """HTTP through the proxy the environment names for ``endpoint`` (the opt-in comparison);
        the proxy URL, credentials included, is taken from the real environment here."""
        from imds_helpers.analyze.proxy import proxy_for

        return RecordingClient(self, timeouts, proxy=proxy_for(endpoint, self._raw_env))

    # --- the Arc key file ------------------------------------------------------------------------

    def arc_key(self, realm: str, tokens_dir: str) -> ArcKeyProbe:
        """Judge the realm without opening it, then read the key bounded and re-checked
        (:mod:`imds_helpers.collect.arc_keyfile`). The secret stays here, for one authorised request."""
        from imds_helpers.collect import arc_keyfile as kf

        start = time.perf_counter()
        realm_verdict = kf.check_realm(realm, tokens_dir)
        judged = Verdict(realm_verdict.code, realm_verdict.detail, realm_verdict.evidence, realm_verdict.ok,
                         (time.perf_counter() - start) * 1000)
        probe = ArcKeyProbe(realm, tokens_dir, judged)
        if realm_verdict.ok:
            start = time.perf_counter()
            secret, key = kf.read_key(realm, realm_verdict.lstat)
            read = Verdict(key.code, key.detail, key.evidence, secret is not None, (time.perf_counter() - start) * 1000)
            problem = kf.header_problem(secret) if secret is not None else None
            probe = ArcKeyProbe(realm, tokens_dir, judged, read, problem)
            if secret is not None and problem is None:
                self._secrets[realm] = secret
            del secret
        return ev.arc_key_from(self._add("arc_keys", probe.to_record()))

    def _secret(self, handle: str) -> str:
        return self._secrets.pop(handle)      # single use, as HIMDS's key is

    # --- the bundle ------------------------------------------------------------------------------

    def bundle(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Everything recorded so far as one evidence bundle."""
        users = {name: uid for name, uid in sorted(self._users.items())}
        data: dict[str, Any] = {
            "kind": ev.KIND,
            "schema_version": ev.SCHEMA_VERSION,
            "collector": {"name": COLLECTOR, "version": __version__},
            "started_at": datetime.fromtimestamp(self._started, timezone.utc).isoformat(timespec="milliseconds"),
            "duration_ms": _ms(self._started_mono),
            "host": self._identity(socket.gethostname()[:255]),
            "os_name": self.os_name,
            "parameters": dict(parameters),
            "environment": dict(self.env),
            "proxy_url_problems": dict(self.proxy_url_problems),
            "identity": {"euid": self._euid, "users": users},
            "wininet": self._wininet,
            **{kind: list(records) for kind, records in self.records.items()},
        }
        return data

    def _identity(self, hostname: str) -> dict[str, Any]:
        """Who this host is: name, OS, SMBIOS UUID where read, vmId / resourceId once fetched."""
        from imds_helpers.model import strictjson

        smbios = next((r["text"].strip() for r in self.records["files"]
                       if r["op"] == "read" and r["path"].endswith("/product_uuid") and r["text"]), None)
        vm_id = resource_id = None
        for record in self.records["http"]:
            if record["status"] == 200 and INSTANCE_PATH + "?" in record["request"]["url"] and not record["request"]["via_proxy"]:
                try:
                    compute = strictjson.loads(record["body"]).get("compute")
                    vm_id, resource_id = str(compute["vmId"]), str(compute["resourceId"])
                    break
                except Exception:       # whatever the document holds: no identity from it
                    continue
        return {"hostname": hostname, "os": self.os_name, "os_release": _platform.platform(terse=True)[:200],
                "smbios_uuid": smbios, "vmId": vm_id, "resourceId": resource_id}


def read_wininet_registry() -> Mapping[str, Any] | None:
    """The current user's WinINet values (Windows only; None elsewhere or when unreadable)."""
    try:
        import winreg  # type: ignore[import-not-found]
    except ImportError:
        return None
    values: dict[str, Any] = {}
    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, WININET_KEY) as key:
            for name in ("ProxyEnable", "ProxyServer", "ProxyOverride", "AutoConfigURL", "AutoDetect"):
                try:
                    values[name] = winreg.QueryValueEx(key, name)[0]
                except OSError:
                    continue
    except OSError:
        return None
    return values


class RecordingClient:
    """The metadata HTTP client (deadlines, retries, attempt records), recorded."""

    def __init__(self, host: LiveHost, timeouts: Timeouts, proxy: str | None = None) -> None:
        from imds_helpers.collect.http import MetadataClient

        self._host = host
        self._via_proxy = proxy is not None
        self._client = MetadataClient(timeouts, proxy=proxy)
        self._proxy_secret = (proxy,) if proxy else ()
        self.timeouts = timeouts

    def __repr__(self) -> str:
        return f"RecordingClient(timeouts={self.timeouts!r}, via_proxy={self._via_proxy})"

    def __enter__(self) -> RecordingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def request(self, url: str, *, params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
                method: str = "GET", retry: bool = True, retry_statuses: frozenset[int] = ev.RETRY_STATUSES,
                secrets: tuple[str, ...] = (), budget: float | None = None, authorization: str | None = None) -> Outcome:
        key = ev.request_for(url, params=params, headers=headers, method=method, authorization=authorization,
                             via_proxy=self._via_proxy)
        sent = dict(headers or {})
        secrets = secrets + self._proxy_secret
        if authorization is not None:
            secret = self._host._secret(authorization)
            sent["Authorization"] = f"Basic {secret}"
            secrets += (secret,)
            del secret
        outcome = self._client.request(url, params=params, headers=sent, method=method, retry=retry,
                                       retry_statuses=retry_statuses, secrets=secrets, budget=budget)
        return ev.outcome_from(self._host._add("http", ev.http_record(key, outcome, secrets)))


def parameters(opts: CheckOptions, tokens_dir: str) -> dict[str, Any]:
    """What the collection ran with, as the bundle keeps it (analysis rebuilds the options from it)."""
    return {"target": opts.target, "endpoint": opts.endpoint, "resources": list(opts.resources),
            "identities": [[i.selector or "", i.value or ""] for i in opts.identities],
            "timeouts": {"connect": opts.timeouts.connect, "read": opts.timeouts.read, "total": opts.timeouts.total},
            "tokens_dir": tokens_dir, "ama_config_path": opts.ama_config_path,
            "proxy_comparison": opts.proxy_comparison}


def collect(opts: CheckOptions | None = None, *, host: LiveHost | None = None) -> dict[str, Any]:
    """Run every check's questions against this machine; the evidence bundle they leave."""
    from imds_helpers.analyze.pipeline import CheckOptions, Pipeline

    opts = opts or CheckOptions()
    host = host or LiveHost(env=opts.env, run=opts.runner)
    pipeline = Pipeline(opts, host)
    pipeline.run_all()
    return host.bundle(parameters(opts, pipeline.tokens_dir))


def _ms(start: float) -> float:
    return (time.monotonic() - start) * 1000.0


__all__ = ["LiveHost", "RecordingClient", "classify_socket_error", "collect", "current_os", "parameters"]
