"""Fuzzing what a metadata service (or whatever answers in its place) can send back.

Pure functions get hypothesis-built inputs: ``answers.classify`` on ``http.Outcome`` objects
(status, body, Server / Content-Type / Retry-After / WWW-Authenticate), the Arc challenge step
on 401 answers, ``metadata.instance_evidence`` on instance documents, ``claims.decode_claims``
on structurally valid JWTs with hostile payloads, ``tokens.parse_ama_identity`` and the
redaction helpers. Then a raw loopback socket answers random bytes / random status lines and
``MetadataClient.request`` must never raise and must classify within its deadline.

Invariants: nothing raises; every answer is classified (a catalogue code, or None only for a
2xx JSON answer); redaction is idempotent and removes every embedded canary JWT.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import struct
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imds_helpers.analyze import arc as arc_mod
from imds_helpers.api import check_options, run_checks
from imds_helpers.model.answers import TRANSPORT_CODES, classify
from imds_helpers.model.catalog import ARC_CHALLENGE_MALFORMED, ARC_CHALLENGE_MISSING, CATALOG
from imds_helpers.model.claims import DISPLAY_CLAIMS, decode_claims
from imds_helpers.model.commands import arc_challenge
from imds_helpers.emulator import Emulator
from imds_helpers.emulator.scenarios import Answer
from imds_helpers.emulator.tokens import b64url_json, make_jwt
from imds_helpers.model.findings import Attempt
from imds_helpers.collect.http import MetadataClient, Outcome, Timeouts
from imds_helpers.analyze.metadata import instance_evidence
from imds_helpers.model.redact import PLACEHOLDER, redact_text, redact_value
from imds_helpers.fleet.sidecar import SidecarError, read_sidecar
from imds_helpers.model.taxonomy import ErrorKind
from imds_helpers.analyze.tokens import Identity, parse_ama_identity

from loopback_server import AcceptLoop, ThreadedAcceptLoop

from .conftest import cli

CANARY = "imdsrbcanaryf0f1f2f3f4f5f6f7"
# IMDS_RUNBOOK_FUZZ_SCALE=10 explores ten times as many examples (a deeper local run).
SCALE = max(1, int(os.environ.get("IMDS_RUNBOOK_FUZZ_SCALE", "1")))
FUZZ = settings(max_examples=250 * SCALE, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
KINDS = {k.value for k in ErrorKind}


def _kind_ok(kind: str | None) -> bool:
    return kind is None or kind in KINDS or (kind.startswith("http_") and kind[5:].isdigit())


# --- strategies -------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)), max_leaves=12)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=50)

ERROR_TEXTS = ["Bad request. X-Forwarded-For header is not allowed", "Required metadata header not specified",
               "Identity not found", "Multiple user assigned identities exist, please specify the clientId / "
               "resourceId of the identity in the token request", "AADSTS500011: The resource principal named "
               "x was not found", "Invalid api-version", "unreachable network", "certificate has expired"]
error_bodies = st.fixed_dictionaries({"error": st.one_of(st.sampled_from(["invalid_request", "invalid_resource",
                                                                           "bad_request_102", ""]), st.text(max_size=20)),
                                      "error_description": st.one_of(st.sampled_from(ERROR_TEXTS), st.text(max_size=40))},
                                     optional={"newest-versions": st.lists(st.text(max_size=12), max_size=3)})
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    error_bodies.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"{", b"null", b"[]", b"\xef\xbb\xbf{}", b"<html>unreachable network</html>",
                     b'{"access_token":"' + make_jwt({"aud": "x"}, CANARY).encode() + b'","expires_in":"1"}']),
)
servers = st.one_of(st.none(), st.sampled_from(["IMDS/150.870.65.1", "squid/5.7", "", "IMDS"]), header_text)
content_types = st.one_of(st.none(), st.sampled_from(["application/json; charset=utf-8", "application/json",
                                                      "text/html", "text/plain", "JSON"]), header_text)
retry_afters = st.one_of(st.none(), st.sampled_from(["1", "0", "-5", "1e309", "nan", "Wed, 21 Oct 2015 07:28:00 GMT",
                                                     "99999999999999999999"]), header_text)
challenges = st.one_of(
    st.none(), header_text,
    st.sampled_from(["Basic realm=/var/opt/azcmagent/tokens/a.key", "basic REALM=/x.key", "Basic realm=",
                     "Basic realm=\"/var/opt/azcmagent/tokens/a.key\"", "Bearer realm=x", "Basic realm=/a=b.key"]),
    header_text.map(lambda t: "Basic realm=" + t),
)


@st.composite
def outcomes(draw) -> Outcome:
    error = draw(st.one_of(st.none(), st.sampled_from(sorted(TRANSPORT_CODES, key=lambda k: k.value))))
    status = draw(st.integers(100, 599)) if error is None else draw(st.one_of(st.none(), st.integers(100, 599)))
    headers: dict[str, str] = {}
    for name, strategy in (("Server", servers), ("Content-Type", content_types), ("Retry-After", retry_afters),
                           ("WWW-Authenticate", challenges)):
        value = draw(strategy)
        if value is not None:
            headers[draw(st.sampled_from([name, name.lower(), name.upper()]))] = value
    attempts = tuple(Attempt("GET", "http://169.254.169.254/metadata/instance", status,
                             error.value if error else None, 1.0) for _ in range(draw(st.integers(1, 4))))
    return Outcome(attempts=attempts, status=status, error=error, headers=headers, body=draw(bodies))


# --- classify ---------------------------------------------------------------------------------

@FUZZ
@given(outcome=outcomes(), service=st.sampled_from(["vm", "arc"]))
def test_classify_names_every_answer(outcome, service, reliability_counts):
    reliability_counts.add("fuzz_cases")
    answer = classify(outcome, service=service)
    assert answer.code is None or answer.code in CATALOG, answer
    assert _kind_ok(answer.kind)
    assert (answer.code is None) == (answer.kind is None)
    if outcome.error is not None:
        assert answer.code == TRANSPORT_CODES[outcome.error]
    if answer.code is None:
        assert outcome.error is None and 200 <= outcome.status < 300
        assert answer.body == outcome.json()        # a 2xx whose body is JSON, and nothing else
        json.dumps(answer.body, allow_nan=False)    # strict JSON: NaN / Infinity are not JSON
    assert isinstance(answer.detail, str)


@FUZZ
@given(outcome=outcomes(), user_assigned=st.booleans())
def test_arc_challenge_step_names_every_answer(outcome, user_assigned, reliability_counts):
    """The first Arc request: whatever comes back is a named challenge result."""
    reliability_counts.add("fuzz_cases")
    base = "http://localhost:40342"
    commands = arc_challenge(base, arc_mod.TOKEN_PATH, {"api-version": "2020-06-01"})
    result, challenge = arc_mod._challenge_step(outcome, {"endpoint": base}, commands, base, user_assigned)
    assert result.id == "arc.challenge" and result.code in CATALOG
    if challenge is not None:
        assert outcome.status == 401 and result.code == "IMDS-ARC-001"
        realm = challenge.realm
        assert realm and "=" not in realm and realm[0] not in "\"'" and realm[-1] not in "\"'"
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in realm)
    elif outcome.status == 401:
        assert result.code in (ARC_CHALLENGE_MISSING, ARC_CHALLENGE_MALFORMED)
    json.dumps(result.to_dict())


# --- instance documents -----------------------------------------------------------------------

compute_docs = st.fixed_dictionaries({}, optional={
    "compute": st.one_of(json_values, st.dictionaries(
        st.sampled_from(["vmId", "name", "location", "resourceId", "azEnvironment", "osType", "vmSize", "sku", "x"]),
        st.one_of(json_scalars, st.sampled_from(["0f1e2d3c-aaaa-bbbb-cccc-ddddeeeeffff", "/subscriptions/s/"
                                                 "resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v"])),
        max_size=9)),
    "network": st.one_of(json_values, st.fixed_dictionaries({"interface": st.lists(st.one_of(json_values, st.fixed_dictionaries(
        {"ipv4": st.one_of(json_values, st.fixed_dictionaries({"ipAddress": st.lists(json_values, max_size=3)}))})), max_size=3)})),
})


@FUZZ
@given(document=st.one_of(json_values, compute_docs), outcome=outcomes(), service=st.sampled_from(["vm", "arc"]),
       smbios=st.one_of(st.none(), st.text(max_size=40), st.uuids().map(str)))
def test_instance_evidence_never_raises(document, outcome, service, smbios, reliability_counts):
    reliability_counts.add("fuzz_cases")
    evidence = instance_evidence(document, outcome, service=service, smbios_uuid=smbios)
    assert isinstance(evidence["problems"], list) and all(isinstance(p, str) for p in evidence["problems"])
    json.dumps(evidence, default=str)


# --- token claims and AMA's identity setting --------------------------------------------------

@FUZZ
@given(payload=st.one_of(json_values, st.dictionaries(st.sampled_from(list(DISPLAY_CLAIMS) + ["x"]), json_scalars)),
       header=st.one_of(st.just({"typ": "JWT"}), json_values),
       mutate=st.sampled_from(["none", "extra-dot", "drop-signature", "truncate", "raw-json-constants"]))
@example(payload={"exp": float("inf")}, header={"typ": "JWT"}, mutate="none")
@example(payload={"exp": float("nan")}, header={"typ": "JWT"}, mutate="none")
@example(payload={"exp": 10**400}, header={"typ": "JWT"}, mutate="none")
def test_decode_claims_on_hostile_jwts(payload, header, mutate, reliability_counts):
    reliability_counts.add("fuzz_cases")
    token = make_jwt(payload, CANARY) if isinstance(payload, dict) else \
        f"{b64url_json(header)}.{b64url_json(payload)}.sig{CANARY}"
    if mutate == "extra-dot":
        token += ".x"
    elif mutate == "drop-signature":
        token = token.rsplit(".", 1)[0] + "."
    elif mutate == "truncate":
        token = token[: len(token) // 2]
    elif mutate == "raw-json-constants":   # JSON that Python's parser accepts but no JWT library should
        token = f"{b64url_json(header)}.eyJleHAiOkluZmluaXR5fQ.sig"   # {"exp":Infinity}
    claims = decode_claims(token, now=1_000_000.0)
    assert isinstance(claims, dict)
    assert CANARY not in json.dumps(claims, default=str)
    if "expires_in_s" in claims:
        assert isinstance(claims["expires_in_s"], int)
    json.dumps(claims, allow_nan=False)              # the CLI's --json output stays strict JSON


ama_values = st.one_of(st.text(max_size=40), st.sampled_from([
    "mi_res_id#/subscriptions/s/resourcegroups/r/providers/microsoft.managedidentity/userassignedidentities/n",
    "client_id#0f1e2d3c-aaaa-bbbb-cccc-ddddeeeeffff", "object_id#", "#x", "client_id", '"client_id#a b"',
    "'unterminated", "CLIENT_ID#  spaced  "]))


@FUZZ
@given(lines=st.lists(st.one_of(st.text(max_size=40), ama_values.map(lambda v: "MANAGED_IDENTITY=" + v),
                                ama_values.map(lambda v: "export MANAGED_IDENTITY=" + v)), max_size=6))
def test_parse_ama_identity_never_raises(lines, reliability_counts):
    reliability_counts.add("fuzz_cases")
    parsed = parse_ama_identity("\n".join(lines))
    assert parsed is None or isinstance(parsed, (str, Identity))
    if isinstance(parsed, Identity):
        assert parsed.selector in ("client_id", "object_id", "msi_res_id") and parsed.value == parsed.value.strip()
        assert parsed.value and parsed.source == "ama-config"


# --- redaction --------------------------------------------------------------------------------

fragments = st.sampled_from(["eyJ", "eyJa", ".", "..", "access_token", "refresh_token", "=", ":", '"', " ", ",", "&",
                             "Bearer ", "Basic ", PLACEHOLDER, "\\", "}", "{", "abc", "x.y", "\n", "é"])
noise = st.lists(st.one_of(fragments, st.text(max_size=6)), max_size=8).map("".join)
claims_dicts = st.dictionaries(st.sampled_from(["aud", "oid", "exp", "tid", "x"]), json_scalars, max_size=4)
canary_jwts = claims_dicts.map(lambda claims: make_jwt(claims, CANARY))


@FUZZ
@given(text=st.one_of(st.text(max_size=80), noise))
def test_redact_text_is_idempotent(text, reliability_counts):
    reliability_counts.add("fuzz_cases")
    once = redact_text(text)
    assert redact_text(once) == once


@FUZZ
@given(prefix=noise, jwt=canary_jwts, suffix=noise)
@example(prefix="eyJa.", jwt=make_jwt({"aud": "x"}, CANARY), suffix="")       # a dotted run before the token
@example(prefix="", jwt=make_jwt({"aud": "x"}, CANARY), suffix=".more.parts")  # JWE-like tail
def test_redact_text_removes_embedded_jwts(prefix, jwt, suffix, reliability_counts):
    reliability_counts.add("fuzz_cases")
    out = redact_text(prefix + jwt + suffix)
    assert CANARY not in out, out
    assert redact_text(out) == out


json_with_jwts = st.recursive(
    st.one_of(json_scalars, canary_jwts, st.tuples(noise, canary_jwts, noise).map("".join)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=8), canary_jwts), inner, max_size=4)),
    max_leaves=10)


@FUZZ
@given(value=json_with_jwts)
def test_redact_value_removes_every_embedded_jwt_and_is_idempotent(value, reliability_counts):
    reliability_counts.add("fuzz_cases")
    once = redact_value(value)
    assert CANARY not in json.dumps(once, default=str), once
    assert redact_value(once) == once or _has_nan(once)


def _has_nan(value: Any) -> bool:   # NaN != NaN: equality cannot show idempotence there
    return "NaN" in json.dumps(value, default=str)


# --- a raw socket that answers anything -------------------------------------------------------

HOLD_S = 3.0


class RawServer(AcceptLoop):
    """Loopback TCP server: each connection reads the request, then sends ``payload`` and
    closes (mode "close"), keeps the connection open ("hold"), resets it ("rst"), or closes
    without a byte ("nothing")."""

    def __init__(self) -> None:
        super().__init__(backlog=16, poll_s=0.1)
        self.payload, self.mode = b"", "close"
        self.start()

    def handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(conn, self.payload, self.mode), daemon=True).start()

    def _serve(self, conn: socket.socket, payload: bytes, mode: str) -> None:
        with conn:
            conn.settimeout(2)
            try:
                conn.recv(65536)
                if mode == "rst":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if mode != "nothing":
                    conn.sendall(payload)
                if mode == "hold":
                    self._stop.wait(HOLD_S)
            except OSError:
                pass

@pytest.fixture(scope="module")
def raw_server() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.close()


header_lines = st.one_of(
    st.sampled_from(["Content-Type: application/json; charset=utf-8", "Server: IMDS/150.870.65.1", "Content-Length: 0",
                     "Content-Length: 5", "Content-Length: -1", "Content-Length: abc", "Content-Length: 99999999999",
                     "Content-Encoding: gzip", "Content-Encoding: deflate", "Content-Encoding: br",
                     "Content-Encoding: zstd", "Transfer-Encoding: chunked", "Connection: close", "Retry-After: 1",
                     "Retry-After: 99999", "WWW-Authenticate: Basic realm=/tmp/x.key", "Location: http://[bad",
                     "X-Folded: a\r\n continued", ": no name", "NoColon"]),
    st.tuples(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"), min_size=1,
                      max_size=10), header_text).map(lambda kv: f"{kv[0]}: {kv[1]}"),
)


@st.composite
def raw_answers(draw) -> bytes:
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=120))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/0.9", "HTTP/2", "HTTP/1.1 ", "ICY", "http/1.1"]))
    status = draw(st.one_of(st.integers(100, 599), st.integers(-5, 1200).map(str),
                            st.sampled_from(["", "2OO", "200 ", " 200"])))
    reason = draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=20))
    lines = draw(st.lists(header_lines, max_size=6))
    body = draw(bodies)
    head = f"{version} {status} {reason}\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n"
    return head.encode("latin-1") + body


TIMEOUTS = Timeouts(connect=0.3, read=0.25, total=0.6)
# The verdict must come within the budget plus scheduling slack on a busy 2-core machine; a
# client that ignored its timeouts would wait for the server's hold (far longer).
SLACK_S = 1.0


@settings(max_examples=90 * SCALE, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(payload=raw_answers(), mode=st.sampled_from(["close"] * 8 + ["hold", "rst", "nothing"]))
@example(payload=b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                 b"Content-Length: 10\r\n\r\n0123456789", mode="close")    # a broken compressed body
@example(payload=b"HTTP/1.1 307 \r\nLocation: http://[bad\r\n\r\n", mode="close")   # a redirect nobody can parse
def test_metadata_client_never_raises_and_classifies_in_time(raw_server, payload, mode, reliability_counts):
    reliability_counts.add("fuzz_cases")
    raw_server.payload, raw_server.mode = payload, mode
    client = MetadataClient(TIMEOUTS, sleep=lambda s: None)   # retries without waiting: the deadline still rules
    started = time.monotonic()
    try:
        outcome = client.request(f"http://127.0.0.1:{raw_server.port}/metadata/instance",
                                 params={"api-version": "2021-02-01"}, headers={"Metadata": "true"})
    finally:
        client.close()
    took = time.monotonic() - started
    assert took < TIMEOUTS.total + SLACK_S < HOLD_S, (took, outcome.attempts)
    assert outcome.status is not None or outcome.error is not None
    assert outcome.error is None or isinstance(outcome.error, ErrorKind)
    assert 1 <= len(outcome.attempts) <= 4
    answer = classify(outcome)
    assert answer.code is None or answer.code in CATALOG
    if answer.code is None:
        assert 200 <= outcome.status < 300


# --- hostile JSON through the whole diagnosis ---------------------------------------------------

DEEP_BODIES = {
    "deep-list": (b"[" * 300_000, "JSON nested deeper than 64 levels"),
    "deep-object": (b'{"a":' * 60_000 + b"1" + b"}" * 60_000, "JSON nested deeper than 64 levels"),
    "huge-int": (b'{"compute":{"vmId":' + b"9" * 5000 + b"}}", "a number with more than 1000 digits"),
}
# Where the hostile body is served: (mode, scenario settings, check id, finding code).
HOSTILE_PLACES = {
    "instance": ("vm", lambda b: {"respond": Answer(200, b, b), "categories": ("instance",)},
                 "metadata.instance", "IMDS-HTTP-007"),
    "token": ("vm", lambda b: {"respond": Answer(200, b, b), "categories": ("token",), "stage": "valid"},
              "token.system.management", "IMDS-HTTP-007"),
    "arc-token": ("arc", lambda b: {"after_challenge": Answer(200, b, b)}, "arc.token", "IMDS-ARC-033"),
}


@pytest.mark.parametrize("place", sorted(HOSTILE_PLACES))
@pytest.mark.parametrize("body_name", sorted(DEEP_BODIES))
def test_hostile_json_bodies_are_named_findings_through_the_api(place, body_name):
    mode, settings_for, check_id, code = HOSTILE_PLACES[place]
    body, why = DEEP_BODIES[body_name]
    with Emulator(mode=mode, scenario=f"{mode}-healthy", scenario_params=settings_for(body)) as emu:
        report = run_checks(check_options(target=mode, endpoint=emu.base_url,
                                          tokens_dir=str(emu.key_dir) if mode == "arc" else None))
    checks = {c.id: c for c in report.checks}
    assert (checks[check_id].code, report.verdict.value) == (code, "fail")
    assert why in checks[check_id].detail
    json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.parametrize("place", ["instance", "token"])
def test_hostile_json_through_the_cli_is_exit_1_with_the_finding(place):
    mode, settings_for, check_id, code = HOSTILE_PLACES[place]
    body, why = DEEP_BODIES["deep-list"]
    with Emulator(mode=mode, scenario=f"{mode}-healthy", scenario_params=settings_for(body)) as emu:
        run = cli(["check", "--json", "--timeout", "2", "--target", mode, "--endpoint", emu.base_url], timeout=60)
    assert (run.returncode, run.stderr) == (1, ""), run.stderr
    checks = {c["id"]: c for c in json.loads(run.stdout)["checks"]}
    assert checks[check_id]["code"] == code and why in checks[check_id]["detail"]


def _sidecar_text(evidence: str) -> str:
    return ('{"schema": "imds-runbook/result@1", "host": "web-01", "notebook": "01_azure_vm_imds", '
            '"verdict": "ok", "tally": {}, "checks": [{"id": "x", "status": "ok", "evidence": ' + evidence + '}]}')


@pytest.mark.parametrize("name, text, why", [
    ("deep-list", _sidecar_text("[" * 300_000), "nested deeper than 64 levels"),
    # 900 levels: Python's parser would take it; what reads it later must not have to.
    ("deep-but-parsable", _sidecar_text('{"a":' * 900 + "1" + "}" * 900), "nested deeper than 64 levels"),
    ("huge-int", _sidecar_text("9" * 5000), "more than 1000 digits"),
])
def test_hostile_sidecars_are_unreadable_rows_not_tracebacks(tmp_path, name, text, why):
    (tmp_path / f"{name}.json").write_text(text)
    with pytest.raises(SidecarError, match=why):
        read_sidecar(tmp_path / f"{name}.json")
    run = cli(["report", str(tmp_path), "--format", "csv"], timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    (row,) = list(csv.DictReader(io.StringIO(run.stdout)))
    assert row["host"] == name and row["run_status"] == "unreadable" and why in row["error"]


# --- the whole check within the sum of its step budgets -------------------------------------------

class EndlessBody(ThreadedAcceptLoop):
    """Answers 200 with IMDS's headers and a chunked body that never ends: ``piece`` every
    ``interval`` s (0: as fast as the client reads) until the client leaves."""

    def __init__(self, piece: bytes, interval: float) -> None:
        super().__init__(backlog=16, poll_s=0.1)
        self.piece, self.interval = piece, interval
        self.start()

    def serve(self, conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nServer: IMDS/150.870.65.1\r\n"
                     b"Content-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (len(self.piece), self.piece)
        end = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < end:
            conn.sendall(chunk)
            if self.interval:
                self._stop.wait(self.interval)


@contextmanager
def _slow_server(kind: str) -> Iterator[str]:
    if kind in ("slow-headers", "slow-body"):
        scenario, params = (("vm-slow-headers", {}) if kind == "slow-headers"
                            else ("vm-slow-drip", {"drip_interval": 0.2}))
        with Emulator(mode="vm", scenario=scenario, scenario_params=params) as emu:
            yield emu.base_url
        return
    server = EndlessBody(b"[" * 512, 0.05) if kind == "endless-slow-body" else EndlessBody(b" " * 65536, 0)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


CHECK_TIMEOUT_S = 1.0
# (server, the code metadata.instance must carry): a trickle meets the deadline; an endless
# body sent fast meets the 1 MiB body limit first.
SLOW_SERVERS = {"slow-headers": "IMDS-HTTP-006", "slow-body": "IMDS-HTTP-006",
                "endless-slow-body": "IMDS-HTTP-006", "endless-fast-body": "IMDS-HTTP-008"}


@pytest.mark.parametrize("kind", sorted(SLOW_SERVERS))
def test_whole_check_ends_within_the_sum_of_its_step_budgets(kind):
    """Every byte comes inside the read timeout; only the per-step deadline ends each step, so
    the run's time is the TCP connect's budget plus one budget per step that sent HTTP."""
    with _slow_server(kind) as url:
        started = time.monotonic()
        run = cli(["check", "--json", "--target", "vm", "--timeout", f"{CHECK_TIMEOUT_S:g}", "--endpoint", url],
                  timeout=120)
        wall = time.monotonic() - started
    assert (run.returncode, run.stderr) == (1, ""), run.stderr
    report = json.loads(run.stdout)
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["metadata.instance"]["code"] == SLOW_SERVERS[kind], checks["metadata.instance"]["detail"]
    budgets = CHECK_TIMEOUT_S * (1 + sum(1 for c in report["checks"] if c.get("attempts")))
    assert report["elapsed_ms"] / 1000 <= budgets + 0.5, (report["elapsed_ms"], budgets)
    assert wall <= budgets + 3.0, (wall, budgets)      # + interpreter start and exit
