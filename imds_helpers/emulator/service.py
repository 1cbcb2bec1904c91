"""Request -> response logic of the emulated IMDS (vm mode) and HIMDS (arc mode).

No sockets here: :mod:`imds_helpers.emulator.server` parses HTTP into a :class:`Request`, calls
:meth:`Service.handle` and writes the :class:`Response` (applying its transport fault).

Order of checks for a VM request (each step may answer and stop):
  1. scenario answers with ``stage="early"``    2. rate limits (429)
  3. X-Forwarded-For (400)                       4. unknown path (404)
  5. verb (405)                                  6. ``Metadata: true`` (400)
  7. duplicate query parameter (400)             8. api-version (400)
  9. scenario answers with ``stage="valid"``     10. the category's handler
then the scenario's body fault (malformed / oversized) and transport fault are attached.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

from imds_helpers.emulator import documents as D
from imds_helpers.emulator import protocol as P
from imds_helpers.emulator import tokens as T
from imds_helpers.emulator.model import Machine, ManagedIdentity
from imds_helpers.emulator.scenarios import Answer, Scenario

SELECTORS = ("client_id", "object_id", "msi_res_id", "mi_res_id")
#: CHOICE: at most this many unanswered Arc challenges are kept; older key files are removed.
MAX_PENDING_CHALLENGES = 64
HUGE_FILE_BYTES = 1 << 30


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Mapping[str, str]          # case-insensitive mapping (email.message.Message)
    body: bytes = b""
    client: str = ""

    def param(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = P.JSON_CONTENT_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    server_header: bool = True
    http_version: str = "HTTP/1.1"
    reason: str | None = None
    transport: str | None = None       # None | reset | hang | slow_drip | slow_headers | truncate
    drip_interval: float = 1.0
    fault: str | None = None           # label for the request log


def _json(status: int, value: Any, **kw: Any) -> Response:
    body = value if isinstance(value, bytes) else P.dumps(value)
    return Response(status, body, **kw)


class _ScenarioState:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.started = time.monotonic()
        self.counters: dict[str, int] = {}


class Service:
    def __init__(self, *, mode: str, machine: Machine, canary: str, key_dir: str | None,
                 scenario: Scenario, rate_limits: bool = True,
                 stop_event: threading.Event | None = None) -> None:
        self.mode = mode
        self.machine = machine
        self.canary = canary
        self.key_dir = key_dir
        self.rate_limits = rate_limits
        self._stop = stop_event or threading.Event()
        self._lock = threading.Lock()
        self._general_hits: deque[float] = deque()
        self._identity_hits: deque[float] = deque()
        self._identity_inflight = 0
        self._tokens: dict[tuple[str, str], tuple[str, int]] = {}
        self._challenges: dict[str, list[str]] = {}     # secret -> paths written for it
        self._temp_dirs: list[str] = []
        self._events: dict[str, dict[str, Any]] = {}
        self._incarnation = 1
        self._state = _ScenarioState(scenario)
        self._reset_events(scenario)

    # ---- scenario -----------------------------------------------------------------------
    @property
    def scenario(self) -> Scenario:
        return self._state.scenario

    def set_scenario(self, scenario: Scenario) -> None:
        with self._lock:
            self._state = _ScenarioState(scenario)
            self._tokens.clear()
            self._general_hits.clear()
            self._identity_hits.clear()
        self._reset_events(scenario)

    def _reset_events(self, scenario: Scenario) -> None:
        with self._lock:
            self._events = {}
            for kind in scenario.get("scheduled_events"):
                event_id = str(uuid.uuid4()).upper()
                self._events[event_id] = D.scheduled_event(event_id, kind, self.machine.name)
            self._incarnation += 1

    def identities(self, scenario: Scenario | None = None) -> dict[str, Any]:
        scenario = scenario or self.scenario
        system = self.machine.system if scenario.get("system_assigned") else None
        count = scenario.get("user_assigned")
        if count is None:
            count = 1 if self.mode == "vm" else 0
        return {"system_assigned": system, "user_assigned": list(self.machine.pool[: int(count)])}

    # ---- entry point ----------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        state = self._state
        scenario = state.scenario
        category = P.categorize(req.path)
        if self.mode == "arc" and category not in P.ARC_CATEGORIES:
            category = None
        resp = self._route(req, state, category)
        return self._apply_faults(resp, scenario)

    def _route(self, req: Request, state: _ScenarioState, category: str | None) -> Response:
        identity_cat = category in P.IDENTITY_CATEGORIES or self.mode == "arc"
        canned = self._canned(state, category, "early")
        if canned is not None:
            return canned
        admitted = self._admit(category)
        if isinstance(admitted, Response):
            return admitted
        try:
            if req.header("X-Forwarded-For") is not None:
                return _json(400, P.FORWARDED_IDENTITY if identity_cat else P.FORWARDED,
                             fault="forwarded")
            if category is None:
                return _json(404, P.NOT_FOUND)
            allowed = ("GET", "POST") if category == "scheduledevents" else ("GET",)
            if req.method not in allowed:
                if category == "loadbalancer":
                    body = P.method_not_allowed_lb(req.path, req.method)
                else:
                    body = P.METHOD_NOT_ALLOWED_IDENTITY if identity_cat else P.METHOD_NOT_ALLOWED
                return _json(405, body, headers=[("Allow", ", ".join(allowed))])
            if (req.header("Metadata") or "").strip().lower() != "true":
                if self.mode == "arc":
                    return _json(400, P.ARC_MISSING_HEADER)
                return _json(400, P.MISSING_HEADER_IDENTITY if identity_cat else P.MISSING_HEADER)
            names = [k for k, _ in req.query]
            if len(names) != len(set(names)):
                return _json(400, P.DUPLICATE_PARAM_IDENTITY if identity_cat else P.DUPLICATE_PARAM)
            version = req.param("api-version")
            bad_version = self._check_version(category, version, state.scenario)
            if bad_version is not None:
                return bad_version
            canned = self._canned(state, category, "valid")
            if canned is not None:
                return canned
            if self.mode == "arc":
                if category == "token":
                    return self._arc_token(req, state.scenario)
                return self._instance(req, state.scenario, version or "")
            handler = {
                "instance": self._instance, "versions": self._versions, "token": self._vm_token,
                "identity_info": self._identity_info, "attested": self._attested,
                "scheduledevents": self._scheduled, "loadbalancer": self._loadbalancer,
            }[category]
            return handler(req, state.scenario, version or "")
        finally:
            if admitted == "identity":
                with self._lock:
                    self._identity_inflight -= 1

    # ---- scenario answers ---------------------------------------------------------------
    def _canned(self, state: _ScenarioState, category: str | None, stage: str) -> Response | None:
        sc = state.scenario
        respond = sc.get("respond")
        if respond is None or sc.get("stage") != stage:
            return None
        categories = sc.get("categories")
        if categories is not None and category not in categories:
            return None
        seconds = sc.get("for_seconds")
        if seconds is not None and time.monotonic() - state.started >= float(seconds):
            return None
        if isinstance(respond, (tuple, list)):
            key = category or "other"
            with self._lock:
                n = state.counters.get(key, 0)
                state.counters[key] = n + 1
            if n >= len(respond):
                return None
            respond = respond[n]
        return self._answer(respond, category, fault=sc.name)

    def _answer(self, answer: Answer, category: str | None, fault: str | None = None) -> Response:
        body = answer.body
        if answer.identity_body is not None and (category in P.IDENTITY_CATEGORIES or self.mode == "arc"):
            body = answer.identity_body
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes):
            body = P.dumps(body)
        return Response(answer.status, body, content_type=answer.content_type,
                        headers=list(answer.headers),
                        server_header=answer.imds_headers and self.mode == "vm",
                        http_version=answer.http_version, reason=answer.reason, fault=fault)

    # ---- rate limits (E9) -----------------------------------------------------------------
    def _admit(self, category: str | None) -> Response | str | None:
        # CHOICE: HIMDS rate limits are undocumented; arc mode has none.
        if not self.rate_limits or self.mode != "vm":
            return None
        identity = category in P.IDENTITY_CATEGORIES
        now = time.monotonic()
        with self._lock:
            hits = self._identity_hits if identity else self._general_hits
            limit = P.IDENTITY_RATE_PER_SECOND if identity else P.GENERAL_RATE_PER_SECOND
            while hits and now - hits[0] >= 1.0:
                hits.popleft()
            over = len(hits) >= limit or (identity and self._identity_inflight >= P.IDENTITY_MAX_CONCURRENT)
            if not over:
                hits.append(now)
                if identity:
                    self._identity_inflight += 1
                    return "identity"
                return None
        return _json(429, P.TOO_MANY_IDENTITY if identity else P.TOO_MANY,
                     headers=[("Retry-After", P.RETRY_AFTER_SECONDS)], fault="rate-limit")

    # ---- api-version (E4) ---------------------------------------------------------------
    def _known_versions(self, scenario: Scenario) -> tuple[str, ...]:
        versions = P.ARC_API_VERSIONS if self.mode == "arc" else P.API_VERSIONS
        cap = scenario.get("max_api_version")
        return tuple(v for v in versions if cap is None or v <= cap)

    def _check_version(self, category: str, version: str | None, scenario: Scenario) -> Response | None:
        known = self._known_versions(scenario)
        cap = scenario.get("max_api_version")
        if self.mode == "arc":
            return None if version in known else _json(400, P.ARC_API_VERSION_ERROR)
        intro = P.CATEGORY_INTRODUCED[category]
        if intro is None:
            return None
        ok = version in known and version >= intro
        if category == "scheduledevents" and version in P.SCHEDULED_EVENTS_VERSIONS:
            ok = cap is None or version <= cap
        return None if ok else _json(400, P.api_version_error(known))

    # ---- /metadata/instance ---------------------------------------------------------------
    def _instance(self, req: Request, scenario: Scenario, version: str) -> Response:
        if self.mode == "arc":
            doc = D.arc_instance(self.machine)
        else:
            doc = D.for_version(D.vm_instance(self.machine), version)
            if req.path.rstrip("/") == P.PATH_INSTANCE and (req.param("extended") or "").lower() == "true":
                doc = D.extended(doc)
        fmt = req.param("format")
        if fmt is not None and fmt not in ("json", "text"):
            return _json(400, P.BAD_FORMAT)
        segments = [s for s in req.path[len(P.PATH_INSTANCE):].split("/") if s]
        node = D.walk(doc, segments)
        if D.is_missing(node):
            return _json(404, P.NOT_FOUND_INSTANCE_RAW)
        if fmt == "text":
            return Response(200, D.as_text(node).encode("utf-8"), content_type=P.TEXT_CONTENT_TYPE)
        if D.is_leaf(node):
            return _json(400, P.LEAF_NEEDS_TEXT)
        return _json(200, node)

    def _versions(self, req: Request, scenario: Scenario, version: str) -> Response:
        return _json(200, {"apiVersions": sorted(self._known_versions(scenario))})

    def _identity_info(self, req: Request, scenario: Scenario, version: str) -> Response:
        # CHOICE (open question 10): without a system-assigned identity -> 400 Identity not found.
        if self.identities(scenario)["system_assigned"] is None:
            return _json(400, P.IDENTITY_NOT_FOUND)
        return _json(200, {"tenantId": self.machine.tenant_id})

    def _attested(self, req: Request, scenario: Scenario, version: str) -> Response:
        nonce = req.param("nonce")
        if nonce is not None and not (nonce.isascii() and nonce.isalnum() and len(nonce) <= 32):
            return _json(400, P.BAD_NONCE)
        return _json(200, D.attested(self.machine, version, nonce))

    def _loadbalancer(self, req: Request, scenario: Scenario, version: str) -> Response:
        if not scenario.get("loadbalancer"):
            return _json(404, P.NO_LOADBALANCER)
        return _json(200, D.loadbalancer())

    def _scheduled(self, req: Request, scenario: Scenario, version: str) -> Response:
        if req.method == "POST":
            try:
                payload = json.loads(req.body.decode("utf-8"))
                starts = payload["StartRequests"]
                ids = [item["EventId"] for item in starts]
                if not isinstance(starts, list) or not all(isinstance(i, str) for i in ids):
                    raise TypeError
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                return _json(400, P.BAD_SCHEDULED_EVENTS_BODY)
            with self._lock:
                if any(i not in self._events for i in ids):
                    return _json(400, P.UNKNOWN_EVENT_ID)
                for i in ids:
                    if self._events[i]["EventStatus"] != "Started":
                        self._events[i] = dict(self._events[i], EventStatus="Started", NotBefore="")
                        self._incarnation += 1
            return Response(200, b"", content_type=None)
        with self._lock:
            body = {"DocumentIncarnation": self._incarnation, "Events": list(self._events.values())}
        return _json(200, body)

    # ---- tokens -------------------------------------------------------------------------
    def _selectors(self, req: Request) -> list[tuple[str, str]]:
        return [(name, req.param(name) or "") for name in SELECTORS if req.param(name)]

    def _vm_token(self, req: Request, scenario: Scenario, version: str) -> Response:
        resource = req.param("resource")
        if not resource:
            return _json(400, P.RESOURCE_MISSING)
        selectors = self._selectors(req)
        if len(selectors) > 1:
            return _json(400, P.SEVERAL_SELECTORS)
        ids = self.identities(scenario)
        uamis: list[ManagedIdentity] = ids["user_assigned"]
        selector = selectors[0] if selectors else None
        if selector is not None:
            # CHOICE: selectors match user-assigned identities only, case-insensitively; the
            # system-assigned identity's own ids are not selectors ("Identity not found").
            name, value = selector
            attr = {"client_id": "client_id", "object_id": "object_id"}.get(name, "msi_res_id")
            identity = next((u for u in uamis if getattr(u, attr).lower() == value.lower()), None)
            if identity is None:
                return _json(400, P.IDENTITY_NOT_FOUND)
        elif ids["system_assigned"] is not None:
            identity = ids["system_assigned"]
        elif len(uamis) == 1:
            # Known service quirk [doc: C2]: a lone user-assigned identity answers for requests
            # without a selector.
            identity = uamis[0]
        elif uamis:
            return _json(400, P.MULTIPLE_IDENTITIES)
        else:
            return _json(400, P.IDENTITY_NOT_FOUND)
        if scenario.get("unknown_resources") or not P.is_known_resource(resource):
            return self._unknown_resource(resource)
        self._think(scenario)
        return self._issue(identity, resource, selector, bypass=(req.param("bypass_cache") or "").lower() == "true")

    def _unknown_resource(self, resource: str) -> Response:
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        return _json(400, P.aadsts500011(resource, self.machine.tenant_id, T.new_uuid(), T.new_uuid(), stamp))

    def _think(self, scenario: Scenario) -> None:
        delay = float(scenario.get("token_delay") or 0)
        if delay > 0:
            self._stop.wait(delay)

    def _issue(self, identity: ManagedIdentity, resource: str, selector: tuple[str, str] | None,
               *, bypass: bool = False) -> Response:
        # CHOICE: like IMDS, tokens are cached per (identity, resource) until 5 minutes before
        # expiry, so expires_in shrinks between calls (the T1 recording shows 86104 next to
        # ext_expires_in 86399); bypass_cache=true issues a fresh one.
        now = int(time.time())
        key = (identity.object_id, resource)
        with self._lock:
            cached = None if bypass else self._tokens.get(key)
            if cached is None or now >= cached[1] + T.TOKEN_LIFETIME - 300:
                token = T.make_jwt(T.claims_for(self.machine, identity, resource, now), self.canary)
                cached = (token, now)
                self._tokens[key] = cached
        token, issued = cached
        body = T.token_response(token=token, identity=identity, resource=resource, issued=issued,
                                now=now, selector=selector)
        return _json(200, body)

    # ---- Arc challenge flow (§2.3) ------------------------------------------------------
    def _arc_token(self, req: Request, scenario: Scenario) -> Response:
        resource = req.param("resource")
        if not resource:
            return _json(400, P.RESOURCE_MISSING)
        selectors = self._selectors(req)
        legacy = bool(scenario.get("legacy_selectors"))
        if selectors and not legacy:
            return _json(400, P.ARC_USER_ASSIGNED_REFUSED)
        auth = req.header("Authorization")
        if not auth or not self._redeem(auth, scenario):
            return self._challenge(scenario)
        after = scenario.get("after_challenge")
        if after is not None:
            return self._answer(after, "token", fault=scenario.name)
        system = self.identities(scenario)["system_assigned"]
        if system is None:
            return _json(400, P.IDENTITY_NOT_FOUND)
        if scenario.get("unknown_resources") or not P.is_known_resource(resource):
            return self._unknown_resource(resource)
        return self._issue(system, resource, None)

    def _redeem(self, auth: str, scenario: Scenario) -> bool:
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() != "basic" or not secret:
            return False
        with self._lock:
            paths = self._challenges.pop(secret, None)
        if paths is None:
            return False
        self._remove(paths)     # single use: the key file goes away once presented
        return not scenario.get("reject_secrets")

    def _new_secret(self, size: int | None) -> str:
        secret = self.canary + secrets.token_hex(32)
        if size:
            secret = (secret + secrets.token_hex(size))[:size]
        return secret

    def _challenge(self, scenario: Scenario) -> Response:
        assert self.key_dir is not None
        secret = self._new_secret(scenario.get("key_size"))
        name = uuid.uuid4().hex
        realm, written = self._write_realm(scenario.get("realm"), name, secret, scenario)
        evicted: list[list[str]] = []
        with self._lock:
            self._challenges[secret] = written
            while len(self._challenges) > MAX_PENDING_CHALLENGES:
                oldest = next(iter(self._challenges))
                evicted.append(self._challenges.pop(oldest))
        for paths in evicted:
            self._remove(paths)
        headers: list[tuple[str, str]] = []
        # arc-no-challenge-header: the key file is still written (the agent did its part; the
        # header is what went missing), it is removed at close().
        if scenario.get("challenge_header"):
            headers.append((P.ARC_CHALLENGE_HEADER, f"Basic realm={realm}"))
        return _json(401, P.ARC_CHALLENGE_BODY, headers=headers, server_header=False,
                     fault=None if scenario.get("realm") == "default" else f"realm-{scenario.get('realm')}")

    def _write_realm(self, kind: str, name: str, secret: str, scenario: Scenario) -> tuple[str, list[str]]:
        """Create what the realm points at; return (realm value, paths to remove later).

        The emulator writes only inside its key directory and in temp dirs it created itself.
        """
        key_dir = self.key_dir
        assert key_dir is not None
        path = os.path.join(key_dir, f"{name}.key")
        if kind == "default":
            self._write_key(path, secret, scenario)
            return path, [path]
        if kind == "outside":
            outside = self._temp_dir()
            other = os.path.join(outside, f"{name}.key")
            self._write_key(other, secret, scenario)
            return other, [other]
        if kind == "not_key":
            plain = os.path.join(key_dir, name)
            self._write_key(plain, secret, scenario)
            return plain, [plain]
        if kind == "traversal":
            # The realm climbs out; the file itself is written (safely) as <key_dir>/<name>.key,
            # so a client that rebuilds the path from the base name (MSAL) still finds it while a
            # client that follows the realm literally does not.
            self._write_key(path, secret, scenario)
            return f"{key_dir}/../../etc/{name}.key", [path]
        if kind == "symlink_out":
            outside = self._temp_dir()
            target = os.path.join(outside, f"{name}.secret")
            self._write_key(target, secret, scenario)
            os.symlink(target, path)
            return path, [path, target]
        if kind == "fifo":
            os.mkfifo(path, 0o640)
            return path, [path]
        if kind == "dev_zero":
            return "/dev/zero", []
        if kind == "directory":
            os.mkdir(path, 0o750)
            return path, [path]
        if kind == "huge_file":
            self._write_key(path, secret, scenario)
            os.truncate(path, HUGE_FILE_BYTES)     # sparse: no blocks are allocated
            return path, [path]
        if kind == "with_equals":
            odd = os.path.join(key_dir, f"{name}=1.key")
            self._write_key(odd, secret, scenario)
            return f'"{odd}"', [odd]
        raise ValueError(f"unknown realm kind {kind!r}")

    def _write_key(self, path: str, secret: str, scenario: Scenario) -> None:
        """Key file: the secret, no trailing newline, mode 0640 (unreadable variant: 0000)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o640)
        try:
            os.write(fd, secret.encode("ascii"))
            os.fchmod(fd, 0o640)
            if scenario.get("key_unreadable"):
                os.fchmod(fd, 0)
                if hasattr(os, "geteuid") and os.geteuid() == 0:
                    try:
                        os.fchown(fd, 65534, 65534)
                    except OSError:
                        pass
        finally:
            os.close(fd)

    def _temp_dir(self) -> str:
        # The name says nothing about the scenario: the blind lab shows realms that point here.
        path = tempfile.mkdtemp(prefix="imds-emulator-realm-")
        with self._lock:
            self._temp_dirs.append(path)
        return path

    @staticmethod
    def _remove(paths: list[str]) -> None:
        for path in paths:
            try:
                st = os.lstat(path)
            except OSError:
                continue
            try:
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except OSError:
                pass

    def pending_key_paths(self) -> list[str]:
        with self._lock:
            return [p for paths in self._challenges.values() for p in paths]

    def cleanup(self) -> None:
        """Remove every key file, FIFO, directory and temp dir this service created."""
        with self._lock:
            pending = list(self._challenges.values())
            self._challenges.clear()
            temp_dirs, self._temp_dirs = self._temp_dirs, []
        for paths in pending:
            self._remove(paths)
        for path in temp_dirs:
            shutil.rmtree(path, ignore_errors=True)

    # ---- body faults ----------------------------------------------------------------------
    def _apply_faults(self, resp: Response, scenario: Scenario) -> Response:
        # CHOICE: body and transport faults apply to every answer of the scenario, error answers
        # included (a broken proxy or NIC does not look at status codes).
        body_fault = scenario.get("body")
        is_json = (resp.content_type or "").startswith("application/json") and resp.body
        if body_fault == "malformed_json" and is_json:
            resp.body = resp.body.replace(b":", b"=", 1) if b":" in resp.body else resp.body[:-1]
            resp.fault = scenario.name
        elif body_fault == "oversized":
            size = int(scenario.get("oversized_bytes"))
            if is_json and resp.body.startswith(b"{") and resp.body.endswith(b"}"):
                pad = max(size - len(resp.body) - 14, 0)
                resp.body = resp.body[:-1] + (b',' if len(resp.body) > 2 else b"") + \
                    b'"padding":"' + b"A" * pad + b'"}'
            elif len(resp.body) < size:
                resp.body = resp.body + b" " * (size - len(resp.body))
            resp.fault = scenario.name
        transport = scenario.get("transport")
        if transport:
            resp.transport = transport
            resp.drip_interval = float(scenario.get("drip_interval"))
            resp.fault = scenario.name
        return resp
