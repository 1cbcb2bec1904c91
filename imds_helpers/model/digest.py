"""The evidence digest (format 1): an evidence bundle small enough for Azure Run Command.

Run Command's action form (``az vm run-command invoke``) returns only the last 4,096 bytes of a
script's output. A digest is an evidence bundle reduced until it fits, gzipped, in base64,
between two marker lines that let ``analyze`` tell a complete digest from a cut one::

    IMDS-DIGEST 1 BEGIN
    <base64 of gzip(compact JSON of the reduced bundle)>, lines of at most 76 characters
    IMDS-DIGEST 1 END bytes=<gzip length> cksum=<POSIX cksum CRC of the gzip> level=<L>

The reduced bundle is a valid evidence bundle (same schema) from which :func:`analyze` reaches
the same verdict and the same (check id, status, code) list as from the full one at the levels
that keep what the checks read (0 and 1 for every emulator scenario); details may be poorer.
The reductions are :data:`RULES`, one table by level: :func:`encode` tries level 0, 1, 2, ...
and keeps the first that fits. The last level keeps no records and caps every string, so every
bundle fits (tests/core/test_digest.py proves it on a hostile bundle). The shell collector
(``imds-collect.sh --digest``) implements the same table; README: "Through Azure Run Command".

:func:`decode` is hostile-input reading: markers, base64, length and cksum checked before
gunzip, which never expands past :data:`~imds_helpers.model.evidence.MAX_BUNDLE_BYTES`; every
problem is one line (:class:`BadDigest`, exit 2), a cut digest named as cut (:class:`CutDigest`).
"""

from __future__ import annotations

import base64
import binascii
import copy
import gzip
import ipaddress
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from imds_helpers.model import evidence as ev
from imds_helpers.model import strictjson
from imds_helpers.model.claims import decode_claims
from imds_helpers.model.endpoints import IMDS_ADDRESS
from imds_helpers.model.errors import UsageError
from imds_helpers.model.evidence_schema import BUNDLE

VERSION = 1
MAX_DIGEST_BYTES = 4096                 # what Run Command's action form returns of an output
LINE_CHARS = 76
BEGIN = f"IMDS-DIGEST {VERSION} BEGIN"
END = f"IMDS-DIGEST {VERSION} END"
_MARKER = re.compile(r"IMDS-DIGEST (\d{1,6}) (BEGIN|END)\b")
_END_LINE = re.compile(r"IMDS-DIGEST 1 END bytes=(\d{1,9}) cksum=(\d{1,10}) level=(\d{1,2})")
_BASE64_LINE = re.compile(r"[A-Za-z0-9+/=]{1,%d}" % LINE_CHARS)
CUT_FRONT = ("cut: the first part of the digest is missing; Run Command keeps only the last 4,096 bytes "
             "of output")
CUT_END = "cut: the digest's END line is missing (the output stopped before the digest's end)"


class BadDigest(UsageError):
    """A digest that cannot be read; the message is one line naming the problem (exit 2)."""


class CutDigest(BadDigest):
    """A digest missing its beginning or its end."""


# --- what analysis reads from an answer's JSON body ---------------------------------------------
# A spec: True keeps the value as it is; a dict keeps those names (``"*scalars"``: and any
# other name whose value is a number or a boolean - the instance check flags those); a
# one-element list keeps at most 8 items, each reduced by the element spec; "token" keeps only
# the claims :func:`decode_claims` reads, unsigned. A value of another JSON type than the spec
# expects becomes the empty value of its type (the checks test the type, not the contents).
# Read by: analyze/metadata.py (compute, network), analyze/tokens.py and analyze/arc.py (token
# answers), model/answers.py (error texts), metadata.py (newest-versions, apiVersions).
COMPUTE_READ = ("vmId", "name", "location", "resourceId", "azEnvironment", "osType", "vmSize", "sku")
TOKEN_FIELDS = ("token_type", "resource", "expires_in", "expires_on", "client_id", "object_id", "msi_res_id",
                "mi_res_id")
BODY_READ: dict[str, Any] = {
    "compute": {**{name: True for name in COMPUTE_READ}, "*scalars": True},
    "network": {"interface": [{"ipv4": {"ipAddress": [{"privateIpAddress": True}]}}]},
    "apiVersions": True, "newest-versions": True,
    "error": True, "error_description": True,
    "access_token": "token", **{name: True for name in TOKEN_FIELDS},
}
# The response headers the checks read (model/answers.py, analyze/arc.py, analyze/metadata.py).
HEADERS_READ = ("content-type", "server", "www-authenticate", "retry-after")
# Raw-body texts a check searches for (model/answers.ERROR_TEXTS "body" rows): a cut keeps them.
BODY_TEXTS = ("unreachable", "x-forwarded-for")
MAX_LIST_ITEMS = 8


@dataclass(frozen=True)
class Rule:
    """From ``level`` on, ``part`` of every record is reduced by ``how`` (with ``limit``)."""

    level: int
    part: str
    how: str
    limit: int | None
    why: str


RULES: tuple[Rule, ...] = (
    Rule(0, "bundle", "known_fields", None, "fields the schema does not name are never read"),
    Rule(0, "http.attempts", "drop_excerpt", None, "an attempt's body_excerpt repeats the record's body"),
    Rule(0, "http.json_body", "read_fields", None, "JSON answers keep the fields the checks read (BODY_READ)"),
    Rule(0, "http.text_body", "cut_body", 512, "other bodies: their start, and the texts the checks search for"),
    Rule(0, "commands", "cut_output", 2048, "firewall rules for other destinations first, then the tail"),
    Rule(1, "commands", "cut_output", 512, "as level 0, shorter"),
    Rule(1, "files", "cut_text", 256, "file texts are small facts (DMI, cgroup, AMA's identity)"),
    Rule(1, "http.headers", "read_headers", None, "response headers: only those the checks read (HEADERS_READ)"),
    Rule(1, "http.attempts", "drop_details", None, "an attempt's headers and phases are report details"),
    Rule(1, "arc_keys", "drop_evidence", None, "the key-file verdicts keep code, detail and ok (evidence: report detail)"),
    Rule(2, "commands", "drop", None, "commands: not collected (the checks say so)"),
    Rule(2, "files.read", "drop", None, "file texts: not collected"),
    Rule(2, "http.text_body", "cut_body", 128, "as level 0, shorter"),
    Rule(3, "files", "drop", None, "path kinds and globs: not collected"),
    Rule(4, "records", "first", 16, "at most 16 records of each kind"),
    Rule(4, "http.attempts", "last", 4, "at most the last 4 attempts of a request"),
    Rule(4, "http.text_body", "cut_body", 64, "as level 0, shorter"),
    Rule(5, "records", "first", 0, "no records: everything not collected"),
    Rule(5, "bundle", "cap", 24, "every string at most 24 bytes of JSON, every list or map 4 items"),
)
LEVELS = tuple(sorted({rule.level for rule in RULES}))


# --- the reductions ---------------------------------------------------------------------------------

def _address(bundle: Mapping[str, Any]) -> str:
    """The endpoint's address (the firewall lines worth keeping are those that can reach it)."""
    from urllib.parse import urlsplit

    params = bundle["parameters"]
    endpoint = params.get("endpoint")
    if endpoint:
        try:
            host = urlsplit(endpoint).hostname
        except ValueError:
            host = None
        if host:
            return "127.0.0.1" if host == "localhost" else host
    return "127.0.0.1" if params.get("target") == "arc" else IMDS_ADDRESS


_DESTINATION = re.compile(r"(!\s+)?(?:-d|--destination|--dst|daddr)\s+(!\s*)?(\S+)")


def _other_destination(line: str, address: str) -> bool:
    """The line is a firewall rule whose every destination is a network without ``address``
    (iptables ``-d``, nft ``daddr``); a negated or unreadable destination may concern it."""
    found = _DESTINATION.findall(line)
    if not found:
        return False
    for negated_before, negated_after, value in found:
        if negated_before or negated_after:
            return False
        for item in value.strip("{}").split(","):
            try:
                if ipaddress.ip_address(address) in ipaddress.ip_network(item.strip(), strict=False):
                    return False
            except ValueError:
                return False
    return True


def _cut_output(text: str, limit: int, address: str) -> str:
    if len(text) <= limit:
        return text
    text = "\n".join(line for line in text.split("\n") if not _other_destination(line, address))
    return text if len(text) <= limit else text[:limit]


def _is_json(data: bytes) -> bool:
    try:
        strictjson.loads(data.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _body_bytes(record: Mapping[str, Any]) -> bytes:
    body = record["body"]
    return base64.b64decode(body, validate=True) if record["body_encoding"] == "base64" else body.encode("utf-8")


def _set_body(record: dict[str, Any], data: bytes) -> None:
    try:
        record["body"], record["body_encoding"] = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        record["body"], record["body_encoding"] = base64.b64encode(data).decode("ascii"), "base64"


def _cut_body(record: dict[str, Any], limit: int) -> None:
    data = _body_bytes(record)
    if len(data) <= limit or _is_json(data):
        return
    lowered = data.lower()
    kept = b" ".join(t.encode() for t in BODY_TEXTS if t.encode() in lowered and t.encode() not in lowered[:limit])
    cut = data[:limit - len(kept) - 1] + (b" " + kept if kept else b"")
    if _is_json(cut):            # a text that was not JSON must stay so: the checks tell them apart
        cut = cut[:-1] + b"~"
    _set_body(record, cut)
    record["body_truncated"] = True


def _keep(value: Any, spec: Any) -> Any:
    if spec is True:
        return value
    if spec == "token":
        return _token(value)
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return _empty(value)
        kept = {k: _keep(v, spec[k]) for k, v in value.items() if k in spec and k != "*scalars"}
        if "*scalars" in spec:
            kept.update((k, v) for k, v in value.items()
                        if k not in kept and isinstance(v, (int, float, bool)))
        return kept
    if not isinstance(value, list):
        return _empty(value)
    return [_keep(item, spec[0]) for item in value[:MAX_LIST_ITEMS]]


def _empty(value: Any) -> Any:
    return type(value)() if isinstance(value, (dict, list, str)) else value


def _token(value: Any) -> Any:
    """``header.claims.`` with only the claims the checks read; a token that does not decode
    stays one that does not (the checks say it is unusable either way)."""
    if not isinstance(value, str) or not value:
        return value
    claims = decode_claims(value)
    if "error" in claims:
        return "unreadable"
    payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"eyJ0eXAiOiJKV1QifQ.{payload}."


def _read_fields(record: dict[str, Any]) -> None:
    data = _body_bytes(record)
    try:
        body = strictjson.loads(data.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError):
        return
    kept = _keep(body, BODY_READ) if isinstance(body, dict) else _empty(body)
    text = json.dumps(kept, separators=(",", ":"), ensure_ascii=False)
    lowered = data.decode("utf-8-sig").lower()
    lost = [t for t in BODY_TEXTS if t in lowered and t not in text.lower()]
    if lost and isinstance(kept, dict):
        kept["imds_runbook_digest"] = " ".join(lost)     # a raw-text search still finds them
        text = json.dumps(kept, separators=(",", ":"), ensure_ascii=False)
    _set_body(record, text.encode("utf-8"))


def _http(bundle: dict[str, Any], rule: Rule) -> None:
    for record in bundle["http"]:
        attempts = record["attempts"]
        if rule.how == "drop_excerpt":
            for attempt in attempts:
                attempt["body_excerpt"] = ""
        elif rule.how == "drop_details":
            for attempt in attempts:
                attempt["headers"], attempt["phases"] = {}, {}
        elif rule.how == "last":
            record["attempts"] = attempts[-rule.limit:]
        elif rule.how == "read_headers":
            record["headers"] = [h for h in record["headers"] if len(h) == 2 and h[0].lower() in HEADERS_READ]
        elif rule.how == "read_fields":
            _read_fields(record)
        elif rule.how == "cut_body":
            _cut_body(record, rule.limit)


def _commands(bundle: dict[str, Any], rule: Rule) -> None:
    if rule.how == "drop":
        bundle["commands"] = []
        return
    address = _address(bundle)
    for record in bundle["commands"]:
        record["stdout"] = _cut_output(record["stdout"], rule.limit, address)
        record["stderr"] = _cut_output(record["stderr"], rule.limit, address)


def _files(bundle: dict[str, Any], rule: Rule) -> None:
    if rule.how == "drop":
        bundle["files"] = [r for r in bundle["files"] if rule.part == "files.read" and r["op"] != "read"]
        return
    for record in bundle["files"]:
        if isinstance(record["text"], str):
            record["text"] = record["text"][:rule.limit]


def _arc_keys(bundle: dict[str, Any], rule: Rule) -> None:
    for record in bundle["arc_keys"]:
        for name in ("realm_verdict", "key_verdict"):
            if record[name] is not None:
                record[name]["evidence"] = {}


def _records(bundle: dict[str, Any], rule: Rule) -> None:
    for name in ev.RECORD_KINDS:
        bundle[name] = bundle[name][:rule.limit]


def _whole(bundle: dict[str, Any], rule: Rule) -> None:
    shaped = _shape(bundle, BUNDLE, rule.limit)
    if rule.limit is not None:
        # The run's parameters are what analyze() re-validates (a client id cut to 24 bytes is no
        # GUID): their texts keep up to PARAMETER_CAP characters, lists up to 4 items, and an item
        # longer than that is left out rather than cut (as imds-collect.sh does).
        shaped["parameters"] = _parameters(bundle["parameters"], BUNDLE["parameters"])
    bundle.clear()
    bundle.update(shaped)


PARAMETER_CAP = 160


def _parameters(value: Any, spec: Any) -> Any:
    if isinstance(spec, list):
        kept = [item for item in value if len(json.dumps(item, ensure_ascii=False)) <= PARAMETER_CAP + 2]
        return [_parameters(item, spec[0]) for item in kept[:4]]
    if isinstance(spec, dict) and isinstance(value, dict):
        return {k: _parameters(value[k], s) for k, s in spec.items() if k != "|null" and k in value}
    return _scalar(value, PARAMETER_CAP)


def _shape(value: Any, spec: Any, cap: int | None) -> Any:
    """``value`` with only the fields ``spec`` (the schema) names; with ``cap``, every string
    at most ``cap`` bytes of JSON, every list and map at most 4 items, numbers bounded."""
    if isinstance(spec, list):
        items = value if cap is None else value[:4]
        return [_shape(item, spec[0], cap) for item in items]
    if isinstance(spec, dict):
        if value is None:
            return None
        if "*" in spec:
            items = list(value.items()) if cap is None else list(value.items())[:4]
            return {_scalar(k, cap): _shape(v, spec["*"], cap) for k, v in items}
        return {k: _shape(value[k], s, cap) for k, s in spec.items() if k != "|null"}
    if spec == "array|null" and isinstance(value, list):
        return [_scalar(v, cap) for v in (value if cap is None else value[:4])]
    if spec == "object":
        return value if cap is None else {}
    return _scalar(value, cap)


def _scalar(value: Any, cap: int | None) -> Any:
    if cap is None:
        return value
    if isinstance(value, str):
        value = value[:cap]
        while len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > cap + 2:   # + the quotes
            value = value[:-1]
        return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return max(-10**12, min(10**12, value))
    if isinstance(value, float):
        return round(max(-1e12, min(1e12, value)), 1)
    return None


_REDUCERS: dict[str, Callable[[dict[str, Any], Rule], None]] = {
    "bundle": lambda b, r: _whole(b, r),
    "http.attempts": _http, "http.json_body": _http, "http.text_body": _http, "http.headers": _http,
    "commands": _commands,
    "files": _files, "files.read": _files,
    "arc_keys": _arc_keys,
    "records": _records,
}


def reduce(bundle: Mapping[str, Any], level: int) -> dict[str, Any]:
    """The bundle with every rule up to ``level`` applied (a new bundle; ``bundle`` unchanged)."""
    reduced = copy.deepcopy(dict(bundle))
    for rule in RULES:
        if rule.level <= level:
            _REDUCERS[rule.part](reduced, rule)
    return reduced


# --- the text -------------------------------------------------------------------------------------

_CRC_TABLE = []
for _byte in range(256):
    _crc = _byte << 24
    for _ in range(8):
        _crc = ((_crc << 1) ^ 0x04C11DB7) if _crc & 0x80000000 else (_crc << 1)
    _CRC_TABLE.append(_crc & 0xFFFFFFFF)


def cksum(data: bytes) -> int:
    """The CRC POSIX ``cksum`` prints first (polynomial 0x04C11DB7, the length appended)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    length = len(data)
    while length:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ (length & 0xFF)]
        length >>= 8
    return ~crc & 0xFFFFFFFF


def _payload(bundle: Mapping[str, Any]) -> bytes:
    """The bundle as compact JSON, scrubbed again, as UTF-8."""
    compact = json.dumps(bundle, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return ev.scrub(compact).encode("utf-8")


def _text(data: bytes, level: int) -> str:
    payload = gzip.compress(data, compresslevel=9, mtime=0)
    encoded = base64.b64encode(payload).decode("ascii")
    lines = [encoded[i:i + LINE_CHARS] for i in range(0, len(encoded), LINE_CHARS)]
    return "\n".join([BEGIN, *lines, f"{END} bytes={len(payload)} cksum={cksum(payload)} level={level}"]) + "\n"


def encode(bundle: Mapping[str, Any]) -> str:
    """The digest of ``bundle``: the least reduced level whose text is at most 4,096 bytes."""
    ev.check(bundle)
    reduced = copy.deepcopy(dict(bundle))
    for level in LEVELS:      # RULES are in level order: level n is level n-1 with its own rules applied
        for rule in RULES:
            if rule.level == level:
                _REDUCERS[rule.part](reduced, rule)
        data = _payload(reduced)
        # A level whose fast compression is over three times the whole text cannot fit at -9
        # (which gains 10-30 % on -1, not two thirds): skip its slow compression, which took
        # seconds a level for a 16 MiB bundle. Were it ever wrong, a more reduced level is used.
        if level != LEVELS[-1] and len(zlib.compress(data, 1)) > 3 * MAX_DIGEST_BYTES:
            continue
        text = _text(data, level)
        if len(text.encode("ascii")) <= MAX_DIGEST_BYTES:
            return text
    raise AssertionError("the last digest level always fits")   # tested: test_hostile_bundle_fits


def is_digest(text: str) -> bool:
    """``text`` holds a digest marker line (complete or not)."""
    return _MARKER.search(text) is not None


def decode(text: str) -> dict[str, Any]:
    """The bundle in a digest (text around it ignored); :class:`CutDigest` / :class:`BadDigest`."""
    lines = [line.rstrip("\r \t") for line in text.split("\n")]
    versions = {m.group(1) for line in lines for m in [_MARKER.match(line)] if m}
    if versions - {str(VERSION)}:
        raise BadDigest(f"digest format {sorted(versions - {str(VERSION)})[0]} is not {VERSION}, "
                        "the format this analysis reads")
    ends = [i for i, line in enumerate(lines) if line.startswith(END)]
    begins = [i for i, line in enumerate(lines) if line == BEGIN]
    if not ends:
        if begins:
            raise CutDigest(CUT_END)
        raise BadDigest("no digest: no IMDS-DIGEST 1 BEGIN / END lines")
    end = ends[-1]
    starts = [i for i in begins if i < end]
    if not starts:
        raise CutDigest(CUT_FRONT)
    begin = starts[-1]
    match = _END_LINE.fullmatch(lines[end])
    if not match and not any(line for line in lines[end + 1:]) and not text.endswith("\n"):
        raise CutDigest(CUT_END)             # the output stopped inside the END line
    if not match:
        raise BadDigest("the digest's END line is not 'IMDS-DIGEST 1 END bytes=N cksum=C level=L'")
    size, crc, level = (int(g) for g in match.groups())
    body = lines[begin + 1:end]
    for number, line in enumerate(body, 1):
        if not _BASE64_LINE.fullmatch(line):
            raise BadDigest(f"digest line {number} is not base64 of at most {LINE_CHARS} characters")
    try:
        payload = base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError):
        raise BadDigest("the digest's base64 does not decode (a character lost or added)") from None
    if len(payload) != size:
        raise BadDigest(f"the digest holds {len(payload)} bytes, its END line says {size}")
    if cksum(payload) != crc:
        raise BadDigest(f"the digest's cksum is {cksum(payload)}, its END line says {crc}: the text was changed")
    if level not in LEVELS:
        raise BadDigest(f"digest level {level} is not one of {', '.join(map(str, LEVELS))}")
    data = _gunzip(payload)
    try:
        return ev.load(data)
    except ev.BadBundle as err:
        raise BadDigest(f"the digest's bundle: {err}") from None


def _gunzip(payload: bytes) -> bytes:
    """gunzip, never past MAX_BUNDLE_BYTES (a gzip bomb stops at the bound)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(payload, ev.MAX_BUNDLE_BYTES + 1)
    except zlib.error as err:
        raise BadDigest(f"the digest's payload is not gzip ({str(err)[:80]})") from None
    if len(data) > ev.MAX_BUNDLE_BYTES or inflater.unconsumed_tail:
        raise BadDigest(f"the digest's payload expands past {ev.MAX_BUNDLE_BYTES} bytes")
    if not inflater.eof:
        raise BadDigest("the digest's payload is not gzip (it ends early)")
    return data


def rules_table() -> list[dict[str, Any]]:
    """:data:`RULES` as rows (README, shell collector tests)."""
    return [{"level": r.level, "part": r.part, "how": r.how, "limit": r.limit, "why": r.why} for r in RULES]


__all__ = ["BadDigest", "CutDigest", "LEVELS", "MAX_DIGEST_BYTES", "RULES", "Rule", "cksum", "decode", "encode",
           "is_digest", "reduce", "rules_table"]
