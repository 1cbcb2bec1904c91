"""The evidence bundle: one versioned JSON document per host run, the only input analysis reads.

Collection (:mod:`imds_helpers.collect`) asks the live machine the checks' questions and writes
each answer here as a *record*; analysis (:mod:`imds_helpers.analyze`) asks the same questions of
the records. Both turn a record back into the value the checks see through the one set of
``*_from`` functions below, so a live run and the analysis of its bundle see the same values:
live results equal ``analyze(collect())`` by construction, not by a second implementation.

What a record keeps, and what it never keeps (the field list is the JSON Schema,
``imds_helpers/model/evidence.schema.json``, generated from :mod:`.evidence_schema`):


* HTTP exchanges: method, URL, request headers, status, response headers in order with
  duplicates, the body (bounded), per-attempt timings, the transport error kind. A token is
  cut to ``header.claims.`` - the signature removed, unusable as a bearer token - wherever it
  appears; an Arc secret never enters (its header is ``Basic <redacted>``).
* Host commands (argv, return code, stdout, stderr, error, timing), file facts (reads, kinds,
  globs), the TCP connect attempts, the Arc key-file probe's verdicts (never the key), and
  the environment subset that matters (proxy, endpoint and identity variables; secret ones by
  presence, proxy credentials hidden).

Bounds (a bundle is hostile input when it is read): ``MAX_BUNDLE_BYTES`` for the document,
``MAX_BODY_BYTES`` per body, ``MAX_OUTPUT_CHARS`` per command stream, ``MAX_RECORDS`` per kind.
A healthy VM bundle is 10-30 KB.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlencode, urlsplit

from imds_helpers.model import strictjson
from imds_helpers.model.errors import UsageError
from imds_helpers.model.redact import PLACEHOLDER, SECRET_HEADERS, hide_url_credentials, redact_text
from imds_helpers.model.taxonomy import ErrorKind

SCHEMA_VERSION = 1
KIND = "imds-runbook/evidence"
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
MAX_BODY_BYTES = 1024 * 1024           # the HTTP client never reads more (http.MAX_BODY_BYTES)
MAX_OUTPUT_CHARS = 256 * 1024          # per command stream (iptables-save of a large host fits)
MAX_FILE_CHARS = 64 * 1024             # per file read (the checks read at most this)
MAX_RECORDS = 512                      # per kind of record
COMMAND_TIMEOUT = 2.0
RECORD_KINDS = ("commands", "files", "tcp", "http", "arc_keys")

# What the host checks run on Linux whatever the target: the Arc service state (platform) and
# the firewall rules (network). Kept here so the prefetch and the steps agree.
LINUX_HIMDS_UNIT = "himdsd"
HIMDS_STATE_LINUX = ("systemctl", "show", LINUX_HIMDS_UNIT, "--property=LoadState,ActiveState,SubState")
IPTABLES_SAVE = ("iptables-save",)
NFT_RULESET = ("nft", "list", "ruleset")
LINUX_EVIDENCE = (HIMDS_STATE_LINUX, IPTABLES_SAVE, NFT_RULESET)


class BadBundle(UsageError):
    """A bundle that cannot be analyzed; the message is one line naming the problem (exit 2)."""


# --- timeouts and retries ------------------------------------------------------------------------

# Microsoft's identity guidance: retry 404, 410, 429 and 5xx; never other 4xx.
RETRY_STATUSES = frozenset({404, 410, 429} | set(range(500, 600)))


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



# --- commands ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CommandOutput:
    """What a host command printed and how it ended (never raised)."""

    argv: tuple[str, ...]
    returncode: int | None           # None when the command did not run to completion
    stdout: str = ""
    stderr: str = ""
    error: str | None = None         # "not_found" | "permission_denied" | "timeout" | "os_error: ..." | "not_collected"
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0

    @property
    def text(self) -> str:
        """stdout and stderr together: tools print their verdicts on either."""
        return self.stdout + ("\n" + self.stderr if self.stderr else "")

    def to_dict(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "returncode": self.returncode, "error": self.error,
                "elapsed_ms": round(self.elapsed_ms, 1), "stdout": self.stdout[:2000], "stderr": self.stderr[:500]}


Runner = Callable[[Sequence[str], float], CommandOutput]


def command_record(out: CommandOutput, timeout: float) -> dict[str, Any]:
    return {"argv": list(out.argv), "timeout_s": timeout, "returncode": out.returncode,
            "stdout": _bounded(scrub(out.stdout), MAX_OUTPUT_CHARS), "stderr": _bounded(scrub(out.stderr), MAX_OUTPUT_CHARS),
            "error": out.error, "elapsed_ms": _ms(out.elapsed_ms)}


def command_from(record: Mapping[str, Any]) -> CommandOutput:
    return CommandOutput(tuple(record["argv"]), record["returncode"], record["stdout"], record["stderr"],
                         record["error"], record["elapsed_ms"])


def not_collected_command(argv: Sequence[str]) -> CommandOutput:
    return CommandOutput(tuple(argv), None, error="not_collected")


# --- files ---------------------------------------------------------------------------------------

FILE_KINDS = ("file", "dir", "other", "missing", "error")


def file_record(op: str, path: str, *, limit: int | None = None, text: str | None = None, error: str | None = None,
                kind: str | None = None, paths: Sequence[str] | None = None) -> dict[str, Any]:
    """``op`` "read" (text or error), "kind" (one of FILE_KINDS) or "glob" (the paths found)."""
    return {"op": op, "path": path, "limit": limit,
            "text": None if text is None else _bounded(scrub(text), MAX_FILE_CHARS), "error": error,
            "kind": kind, "paths": None if paths is None else list(paths)}


def file_read_from(record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    return record["text"], record["error"]


# --- TCP -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TcpProbe:
    """One timed TCP connect to ``host:port``: every address tried, in order."""

    host: str
    port: int
    timeout_s: float
    resolve_error: str | None = None
    attempts: tuple[Mapping[str, Any], ...] = ()   # address, error_kind, errno, error, source_address, elapsed_ms
    elapsed_ms: float = 0.0

    def to_record(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "timeout_s": self.timeout_s, "resolve_error": self.resolve_error,
                "attempts": [dict(a) for a in self.attempts], "elapsed_ms": _ms(self.elapsed_ms)}


def tcp_from(record: Mapping[str, Any]) -> TcpProbe:
    return TcpProbe(record["host"], record["port"], record["timeout_s"], record["resolve_error"],
                    tuple(dict(a) for a in record["attempts"]), record["elapsed_ms"])


# --- HTTP ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt as recorded by the client (already redacted)."""

    method: str
    url: str
    status: int | None
    error: str | None          # taxonomy kind, or None on an HTTP answer
    elapsed_ms: float
    headers: Mapping[str, str] = field(default_factory=dict)
    body_excerpt: str = ""
    phases: Mapping[str, float] = field(default_factory=dict)   # connect_ms, headers_ms, body_ms (from the start)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "error": self.error,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "headers": dict(self.headers),
            "body_excerpt": self.body_excerpt,
            "phases": dict(self.phases),
        }


def join_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Repeated headers joined with ", " (RFC 9110 5.3), as urllib3 and requests show them."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = next((k for k in headers if k.lower() == name.lower()), name)
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


@dataclass(frozen=True)
class Outcome:
    """The last answer of a request (after retries), with every attempt as evidence."""

    attempts: tuple[Attempt, ...]
    status: int | None = None
    error: ErrorKind | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)   # raw; attempts hold the redacted ones
    body: bytes = field(default=b"", repr=False)
    elapsed_ms: float = 0.0
    raw_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)   # in order, duplicates kept
    received_at: float | None = None          # wall clock (epoch s) of the answer: "now" for token expiry

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def json(self) -> Any:
        """Parsed body; raises ``ValueError`` if it is not JSON (message holds no body):
        ``strictjson.OutOfBounds`` when it is JSON too large, deep or long-numbered to be an
        answer (its message names the bound)."""
        try:
            return strictjson.loads(self.body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"body is not JSON ({type(err).__name__} at {getattr(err, 'pos', '?')})") from None
        except strictjson.OutOfBounds:
            raise
        except strictjson.NotJson as err:
            raise ValueError(f"body is not JSON ({err})") from None

    def text(self, secrets: tuple[str, ...] = ()) -> str:
        """The body as redacted text (safe to show)."""
        return redact_text(self.body.decode("utf-8", "replace"), secrets)


@dataclass(frozen=True)
class Request:
    """What a check asks for; the key an exchange is recorded and found under."""

    url: str                                   # with the query, as sent
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()  # as the check passed them (secret values as placeholders)
    via_proxy: bool = False

    def key(self) -> list[Any]:
        return [self.method, self.url, [list(h) for h in self.headers], self.via_proxy]


def full_url(url: str, params: Mapping[str, str] | None = None) -> str:
    """The URL as sent: ``params`` form-encoded into the query, as requests and curl do."""
    if not params:
        return url
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


def request_for(url: str, *, params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
                method: str = "GET", authorization: str | None = None, via_proxy: bool = False) -> Request:
    """The key of a check's request; an Arc key handle adds ``Authorization: Basic <redacted>``."""
    sent = dict(headers or {})
    if authorization is not None:
        sent["Authorization"] = PLACEHOLDER
    return Request(scrub(full_url(url, params)), method, request_headers(sent), via_proxy)


def request_headers(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """Headers as recorded: sorted by name, secret-bearing values as the placeholder."""
    return tuple(sorted((str(k), PLACEHOLDER if str(k).lower() in SECRET_HEADERS else scrub(str(v)))
                        for k, v in (headers or {}).items()))


def http_record(request: Request, outcome: Outcome, secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """The exchange as evidence: secrets replaced, tokens without their signature, body bounded."""
    body = outcome.body[:MAX_BODY_BYTES]
    encoding, text = "utf-8", None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        encoding = "base64"
    if text is not None:
        stored = scrub(text, secrets)
    else:
        stored = base64.b64encode(_scrub_bytes(body, secrets)).decode("ascii")
    return {
        "request": {"method": request.method, "url": scrub(request.url, secrets),
                    "headers": [list(h) for h in request.headers], "via_proxy": request.via_proxy},
        "status": outcome.status,
        "error": outcome.error.value if outcome.error else None,
        "headers": [[scrub(k, secrets), scrub(v, secrets)] for k, v in outcome.raw_headers or tuple(outcome.headers.items())],
        "body": stored,
        "body_encoding": encoding,
        "body_bytes": len(outcome.body),
        "body_truncated": len(outcome.body) > MAX_BODY_BYTES,
        "elapsed_ms": _ms(outcome.elapsed_ms),
        "received_at": outcome.received_at,
        "attempts": [_attempt_record(a, secrets) for a in outcome.attempts],
    }


def _attempt_record(attempt: Attempt, secrets: tuple[str, ...]) -> dict[str, Any]:
    data = attempt.to_dict()
    data["elapsed_ms"] = _ms(attempt.elapsed_ms)
    data["url"] = scrub(data["url"], secrets)
    data["body_excerpt"] = scrub(data["body_excerpt"], secrets)
    data["headers"] = {scrub(k, secrets): scrub(str(v), secrets) for k, v in data["headers"].items()}
    return data


def outcome_from(record: Mapping[str, Any]) -> Outcome:
    body = record["body"]
    if record["body_encoding"] not in ("utf-8", "base64"):
        raise ValueError(f"body_encoding {str(record['body_encoding'])[:20]!r} is neither utf-8 nor base64")
    data = base64.b64decode(body, validate=True) if record["body_encoding"] == "base64" else body.encode("utf-8")
    pairs = tuple((str(k), str(v)) for k, v in record["headers"])
    error = record["error"]
    return Outcome(
        attempts=tuple(Attempt(a["method"], a["url"], a["status"], a["error"], a["elapsed_ms"], dict(a["headers"]),
                               a["body_excerpt"], dict(a["phases"])) for a in record["attempts"]),
        status=record["status"],
        error=ErrorKind(error) if error else None,
        headers=join_headers(pairs),
        body=data,
        elapsed_ms=record["elapsed_ms"],
        raw_headers=pairs,
        received_at=record["received_at"],
    )


def not_collected_outcome(request: Request) -> Outcome:
    """What a check sees for a request the bundle does not hold: nothing answered."""
    attempt = Attempt(request.method, request.url, None, ErrorKind.NOT_COLLECTED.value, 0.0)
    return Outcome(attempts=(attempt,), error=ErrorKind.NOT_COLLECTED)


# --- the Arc key-file probe ------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """A rule's verdict as recorded: code, detail, evidence (never the key)."""

    code: str
    detail: str
    evidence: Mapping[str, Any]
    ok: bool
    elapsed_ms: float = 0.0

    def to_record(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, "evidence": dict(self.evidence), "ok": self.ok,
                "elapsed_ms": _ms(self.elapsed_ms)}


@dataclass(frozen=True)
class ArcKeyProbe:
    """The realm judged without opening it, the key read bounded and re-checked, and whether its
    contents can be sent as a header. ``handle`` names the key for the authorised request; the
    secret itself stays inside the live host."""

    realm: str
    tokens_dir: str
    realm_verdict: Verdict
    key_verdict: Verdict | None = None
    header_problem: str | None = None

    @property
    def handle(self) -> str | None:
        """Present when the key was read and can be sent."""
        return self.realm if self.key_verdict is not None and self.key_verdict.ok and not self.header_problem else None

    def to_record(self) -> dict[str, Any]:
        return {"realm": self.realm, "tokens_dir": self.tokens_dir, "realm_verdict": self.realm_verdict.to_record(),
                "key_verdict": self.key_verdict.to_record() if self.key_verdict else None,
                "header_problem": self.header_problem}


def _verdict_from(record: Mapping[str, Any]) -> Verdict:
    return Verdict(record["code"], record["detail"], dict(record["evidence"]), record["ok"], record["elapsed_ms"])


def arc_key_from(record: Mapping[str, Any]) -> ArcKeyProbe:
    key = record["key_verdict"]
    return ArcKeyProbe(record["realm"], record["tokens_dir"], _verdict_from(record["realm_verdict"]),
                       _verdict_from(key) if key else None, record["header_problem"])


# --- secrets -------------------------------------------------------------------------------------

# header.claims.signature: the signature (and any further JWE segment) is dropped; what is left
# still decodes for display but no service accepts it.
_JWT = re.compile(r"(eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.)[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)*")
_BASIC = re.compile(r"(?i)(\bBasic\s+)(?!realm=)[^\s\"'\\,]+")


def unsigned(token: str) -> str:
    """``header.claims.signature`` -> ``header.claims.`` (display only, unusable as a bearer token)."""
    return _JWT.sub(r"\1", token)


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text as it may enter a bundle: known secrets replaced, JWT signatures removed, Basic
    credentials replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, PLACEHOLDER)
    if "eyJ" in text:
        text = _JWT.sub(r"\1", text)
    if "asic" in text or "ASIC" in text:
        text = _BASIC.sub(lambda m: m.group(1) + PLACEHOLDER, text)
    return text


def _scrub_bytes(data: bytes, secrets: tuple[str, ...]) -> bytes:
    return scrub(data.decode("latin-1"), secrets).encode("latin-1")


# --- the environment -------------------------------------------------------------------------------

def environment_record(env: Mapping[str, str], names: Iterable[str], presence_only: Iterable[str]) -> dict[str, str]:
    """The variables that matter: every ``*_proxy`` (any case), the named ones; secret ones as
    ``<set>``, credentials in URLs hidden (``NO_PROXY`` is a list of hosts, kept)."""
    wanted = set(names)
    hidden = set(presence_only)
    found: dict[str, str] = {}
    for name in sorted(env):
        value = env[name]
        if not isinstance(value, str) or not value:
            continue
        if name in hidden:
            found[name] = "<set>"
        elif name.lower().endswith("_proxy") or name in wanted:
            found[name] = scrub(value if name.lower() == "no_proxy" else hide_url_credentials(value))
    return found


# --- the bundle -----------------------------------------------------------------------------------

def load(data: str | bytes) -> dict[str, Any]:
    """Parse and check a bundle (hostile input); :class:`BadBundle` names what is wrong."""
    try:
        bundle = strictjson.loads(data, max_bytes=MAX_BUNDLE_BYTES)
    except strictjson.NotJson as err:
        raise BadBundle(f"not an evidence bundle: {err}") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise BadBundle(f"not an evidence bundle: not JSON ({type(err).__name__})") from None
    check(bundle)
    return bundle


def check(bundle: Any) -> None:
    """The structure analysis relies on (the JSON Schema says the same, in full)."""
    if not isinstance(bundle, dict) or bundle.get("kind") != KIND:
        raise BadBundle(f"not an evidence bundle: no \"kind\": \"{KIND}\"")
    if bundle.get("schema_version") != SCHEMA_VERSION:
        raise BadBundle(f"evidence schema_version {str(bundle.get('schema_version'))[:20]!r} is not "
                        f"{SCHEMA_VERSION}, the version this analysis reads")
    for name, kind in (("parameters", dict), ("environment", dict), ("host", dict), ("identity", dict)):
        if not isinstance(bundle.get(name), kind):
            raise BadBundle(f"evidence field {name!r} is missing or not an object")
    for name in RECORD_KINDS:
        records = bundle.get(name)
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise BadBundle(f"evidence field {name!r} is missing or not a list of objects")
        if len(records) > MAX_RECORDS:
            raise BadBundle(f"evidence field {name!r} holds {len(records)} records (at most {MAX_RECORDS})")
    from imds_helpers.model.evidence_schema import validate

    problem = validate(bundle)
    if problem:
        raise BadBundle(f"evidence does not match its schema: {problem}")
    # Every record read back as the checks will read it: a value of the right type but not of
    # the right kind (an unknown error kind, a body that is not base64) stops here, not in a rule.
    for name, read in _READERS.items():
        for index, record in enumerate(bundle[name]):
            try:
                read(record)
            except (ValueError, TypeError, KeyError, binascii.Error) as err:
                raise BadBundle(f"evidence {name}[{index}] cannot be read: {str(err)[:120]}") from None


_READERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "commands": lambda r: command_from(r),
    "files": lambda r: _file_kind(r),
    "tcp": lambda r: tcp_from(r),
    "http": lambda r: outcome_from(r),
    "arc_keys": lambda r: arc_key_from(r),
}


def _file_kind(record: Mapping[str, Any]) -> None:
    if record["op"] not in ("read", "kind", "glob"):
        raise ValueError(f"op {str(record['op'])[:20]!r} is not read, kind or glob")
    if record["op"] == "kind" and record["kind"] not in FILE_KINDS:
        raise ValueError(f"kind {str(record['kind'])[:20]!r} is not one of {', '.join(FILE_KINDS)}")
    if record["op"] == "glob" and not all(isinstance(p, str) for p in record["paths"] or ()):
        raise ValueError("glob paths are not all text")


def dumps(bundle: Mapping[str, Any]) -> str:
    """The bundle as written: sorted keys, so the same evidence is the same bytes."""
    return json.dumps(bundle, indent=1, sort_keys=True, ensure_ascii=False)


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[... truncated by imds-runbook]"


def _ms(value: float) -> float:
    return round(float(value), 1)


__all__ = ["ArcKeyProbe", "Attempt", "BadBundle", "CommandOutput", "KIND", "MAX_BUNDLE_BYTES", "Outcome", "Request",
           "Runner", "SCHEMA_VERSION", "TcpProbe", "Verdict", "arc_key_from", "check", "command_from",
           "command_record", "dumps", "environment_record", "file_read_from", "file_record", "http_record",
           "load", "not_collected_command", "not_collected_outcome", "outcome_from", "request_headers", "scrub",
           "tcp_from", "unsigned"]
