"""check_arc_token against the Arc emulator (every Arc scenario) and against small fake
services for the answers the emulator does not produce. Every test also checks that neither
the Arc secret nor the token (both carry the emulator's canary) reaches a result."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import uuid

import pytest

from imds_helpers.collect import arc_keyfile as kf
from imds_helpers.analyze.arc import STEPS, check_arc_environment, check_arc_token
from imds_helpers.model.catalog import CATALOG
from imds_helpers.collect import LiveHost
from imds_helpers.model.errors import UsageError
from imds_helpers.model.findings import Status

from .conftest import bundle_leaks, leaks, netns, recorded_tokens
from .other_user import other_user

CLIENT_ID = "11111111-2222-3333-4444-555555555555"

# scenario -> (failing step or None, its code)
EXPECTED = {
    "arc-healthy": (None, "IMDS-ARC-000"),
    "arc-no-challenge-header": ("arc.challenge", "IMDS-ARC-013"),
    "arc-realm-with-equals": ("arc.challenge", "IMDS-ARC-014"),
    "arc-realm-outside-tokens-dir": ("arc.realm", "IMDS-ARC-021"),
    "arc-realm-traversal": ("arc.realm", "IMDS-ARC-021"),
    "arc-realm-symlink-out": ("arc.realm", "IMDS-ARC-021"),
    "arc-realm-dev-zero": ("arc.realm", "IMDS-ARC-021"),
    "arc-realm-not-key": ("arc.realm", "IMDS-ARC-022"),
    "arc-realm-fifo": ("arc.realm", "IMDS-ARC-024"),
    "arc-realm-directory": ("arc.realm", "IMDS-ARC-024"),
    "arc-realm-huge-file": ("arc.realm", "IMDS-ARC-025"),
    "arc-key-too-large": ("arc.realm", "IMDS-ARC-025"),
    "arc-wrong-secret": ("arc.token", "IMDS-ARC-030"),
    "arc-agent-disconnected": ("arc.token", "IMDS-ARC-031"),
    "arc-unknown-resource": ("arc.token", "IMDS-TOKEN-004"),
    "arc-legacy-agent": (None, "IMDS-ARC-000"),       # system-assigned: selectors not involved
}
HOSTILE = [name for name, (step, _) in EXPECTED.items() if step in ("arc.challenge", "arc.realm")
           and name != "arc-no-challenge-header"]


def assert_chain(results, failing_step, code):
    assert [r.id for r in results] == list(STEPS)
    for r in results:
        assert r.code in CATALOG, r.code
        assert r.commands.curl and r.commands.powershell
    if failing_step is None:
        assert [r.status for r in results] == [Status.OK] * 4, [(r.id, r.code, r.detail) for r in results]
        assert results[-1].code == code
        return
    index = STEPS.index(failing_step)
    assert all(r.status is Status.OK for r in results[:index]), [(r.id, r.code, r.detail) for r in results]
    failed = results[index]
    assert (failed.code, failed.status) == (code, CATALOG[code].status), (failed.code, failed.detail)
    for skipped in results[index + 1:]:
        assert skipped.status is Status.SKIP and skipped.code == "IMDS-ARC-099"
        assert skipped.detail == f"not attempted: {failing_step} failed"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_scenario_gives_its_code_and_leaks_nothing(emu, host, client, scenario):
    emu.set_scenario(scenario)
    results = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir)
    assert_chain(results, *EXPECTED[scenario])
    tokens = recorded_tokens(host)
    assert bool(tokens) is (results[-1].code == "IMDS-ARC-000")      # the leak check below is not vacuous
    assert leaks(results, emu.canary, *tokens) == []
    assert bundle_leaks(host, emu.canary) == []


def test_healthy_chain_evidence(emu, host, client):
    pending = set(emu.pending_key_files)
    results = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir)
    challenge, realm, keyfile, token = results
    assert challenge.evidence["realm"].startswith(emu.key_dir) and challenge.attempts[0].status == 401
    assert realm.evidence["broken_rules"] == [] and realm.evidence["file"]["mode"] == "0o640"
    assert keyfile.evidence["bytes_read"] > 0
    claims = token.evidence["claims"]
    assert claims["aud"] == "https://management.azure.com/" and claims["tid"] == emu.tenant_id
    assert "xms_mirid" in claims and claims["exp"] > 0
    assert "access_token" not in token.evidence["response_fields"]
    assert token.attempts[0].status == 200 and "<redacted>" in token.attempts[0].body_excerpt
    # the key file was consumed (single use) and the secret went out exactly once
    authorised = [e for e in emu.request_log if e["headers"].get("Authorization")]
    assert len(authorised) == 1 and set(emu.pending_key_files) == pending


def test_challenge_after_a_503_is_a_warning_and_the_chain_completes(emu, host, client):
    """HIMDS flaps (503) before challenging: the challenge is retried (no key file is written
    for an error), the chain gets its token, and arc.challenge says it took a retry. The 401
    itself is the protocol, never counted as a retry."""
    from imds_helpers.emulator.scenarios import Answer

    emu.set_scenario("arc-healthy", respond=(Answer(503, {"error": "busy"}),))
    results = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir)
    challenge = results[0]
    assert (challenge.code, challenge.status) == ("IMDS-HTTP-017", Status.WARN), challenge.detail
    assert challenge.detail.startswith("answered after 1 x 503 Service Unavailable (transient server error) "
                                       "(2 attempts): ")
    assert [a.status for a in challenge.attempts] == [503, 401]
    assert challenge.evidence["ok_code"] == "IMDS-ARC-001" and challenge.evidence["realm"].startswith(emu.key_dir)
    assert [(r.code, r.status) for r in results[1:]] == [("IMDS-ARC-002", Status.OK), ("IMDS-ARC-003", Status.OK),
                                                         ("IMDS-ARC-000", Status.OK)]
    assert leaks(results, emu.canary) == []


def test_steady_challenge_is_ok_and_the_401_is_no_retry(emu, host, client):
    results = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir)
    assert [(r.code, r.status) for r in results] == [("IMDS-ARC-001", Status.OK), ("IMDS-ARC-002", Status.OK),
                                                     ("IMDS-ARC-003", Status.OK), ("IMDS-ARC-000", Status.OK)]
    assert [len(r.attempts) for r in (results[0], results[3])] == [1, 1]


@pytest.mark.timeout(15)
@pytest.mark.parametrize("scenario", HOSTILE)
def test_hostile_realm_is_never_opened_nor_sent(emu, host, client, scenario, opened_by_test_thread):
    emu.set_scenario(scenario)
    results = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir)
    assert_chain(results, *EXPECTED[scenario])
    header = results[0].evidence["www_authenticate"]
    realm = header.split("=", 1)[1].strip('"')
    forbidden = {os.path.realpath(realm), realm, "/dev/zero"}
    opened = set(opened_by_test_thread)
    assert not opened & forbidden, opened & forbidden
    assert not [p for p in opened if p.startswith(os.path.realpath(emu.key_dir)) or "imds-emulator-realm-" in p]
    # nothing was sent with a secret: the one request is the unauthorised first one
    assert [e["headers"].get("Authorization") for e in emu.request_log] == [None]
    assert leaks(results, emu.canary) == []


def test_wrong_secret_reports_the_fresh_challenge(emu, host, client):
    emu.set_scenario("arc-wrong-secret")
    results = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir)
    token = results[-1]
    assert token.code == "IMDS-ARC-030" and "fresh challenge" in token.detail
    assert token.evidence["fresh_realm"].startswith(emu.key_dir)
    assert len([e for e in emu.request_log if e["headers"].get("Authorization")]) == 1   # no retry


def test_agent_disconnected_detail_quotes_the_agent(emu, host, client):
    emu.set_scenario("arc-agent-disconnected")
    token = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir)[-1]
    assert "403" in token.detail and "disconnected" in token.detail
    assert "azcmagent show" in token.fix


def test_user_assigned_is_refused_before_the_challenge(emu, host, client):
    pending = set(emu.pending_key_files)
    results = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir, client_id=CLIENT_ID)
    assert_chain(results, "arc.challenge", "IMDS-ARC-040")
    assert "not supported" in results[0].detail
    assert set(emu.pending_key_files) == pending       # no key file was written
    assert emu.request_log[0]["query"]["client_id"] == CLIENT_ID


def test_legacy_agent_ignoring_the_selector_is_refused_like_msal(emu, host, client):
    emu.set_scenario("arc-legacy-agent")
    results = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir, client_id=CLIENT_ID)
    assert_chain(results, "arc.token", "IMDS-ARC-034")
    assert leaks(results, emu.canary) == []


def test_msi_res_id_is_sent_with_the_arc_spelling(emu, host, client):
    res = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
           "Microsoft.ManagedIdentity/userAssignedIdentities/ua")
    results = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir, msi_res_id=res)
    assert results[0].code == "IMDS-ARC-040"
    assert emu.request_log[0]["query"]["msi_res_id"] == res


def test_identity_endpoint_url_is_accepted(emu, host, client):
    url = emu.base_url + "/metadata/identity/oauth2/token"
    assert check_arc_token(client, url, keys=host, tokens_dir=emu.key_dir)[-1].code == "IMDS-ARC-000"


def test_bad_arguments_stop_before_anything_is_sent(emu, host, client):
    with pytest.raises(UsageError):
        check_arc_token(client, emu.base_url, keys=host, client_id=CLIENT_ID, object_id=CLIENT_ID.replace("1", "9"))
    with pytest.raises(UsageError):
        check_arc_token(client, "localhost:40342", keys=host)
    with pytest.raises(UsageError):
        check_arc_token(client, emu.base_url, keys=host, resource="not a uri")
    assert emu.request_log == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="root reads a mode-0000 file")
def test_unreadable_key_is_read_by_root_but_flagged_for_the_himds_group(emu, host, client):
    emu.set_scenario("arc-key-unreadable")
    results = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir)
    assert [r.code for r in results] == ["IMDS-ARC-001", "IMDS-ARC-029", "IMDS-ARC-003", "IMDS-ARC-000"]
    assert results[1].status is Status.WARN and "himds group" in results[1].detail
    assert results[1].evidence["file"]["mode"] == "0o0"
    assert results[1].evidence["process"]["root"] is True


def test_group_readable_key_read_by_root_is_plain_ok(emu, host, client):
    results = check_arc_token(client, emu.base_url, keys=host, tokens_dir=emu.key_dir)
    assert results[1].code == "IMDS-ARC-002"


CHILD = r"""
import json, os, sys
from imds_helpers.analyze.arc import check_arc_token
from imds_helpers.collect import LiveHost
from imds_helpers.model.evidence import Timeouts
url, tokens_dir, canary, probe = sys.argv[1:5]
try:
    open(probe).close()
    dropped = False
except PermissionError:
    dropped = True
host = LiveHost()
with host.client(Timeouts()) as client:
    results = check_arc_token(client, url, keys=host, tokens_dir=tokens_dir)
blob = repr(results) + json.dumps([r.to_dict() for r in results])
print(json.dumps({"uid": os.geteuid(), "dropped": dropped, "leak": canary in blob,
                  "steps": [[r.id, r.status.value, r.code, r.detail] for r in results]}))
"""


@pytest.fixture(scope="module")
def nobody():
    """Python as uid 65534 on a copy of the package it can read (or a skip saying why)."""
    yield from other_user()


def run_as_nobody(nobody, url: str, tokens_dir: str, canary: str) -> dict:
    probe = tempfile.NamedTemporaryFile(prefix="arc-probe-", delete=False)
    probe.close()
    os.chmod(probe.name, 0o600)
    try:
        out = nobody.run(CHILD, url, tokens_dir, canary, probe.name)
    finally:
        os.unlink(probe.name)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    if report["uid"] != 65534 or not report["dropped"]:
        pytest.skip("privileges were not really dropped in the child")
    return report


@pytest.mark.timeout(90)
def test_unreadable_key_as_nobody_is_a_permission_finding(emu, nobody):
    emu.set_scenario("arc-key-unreadable")
    report = run_as_nobody(nobody, emu.base_url, emu.key_dir, emu.canary)
    steps = report["steps"]
    assert [s[0] for s in steps] == list(STEPS)
    assert steps[0][1] == "ok"
    assert steps[1][1:3] == ["fail", "IMDS-ARC-026"], steps[1]
    assert "not root and not in group 'himds'" in steps[1][3] or "no 'himds' group" in steps[1][3]
    assert [s[1] for s in steps[2:]] == ["skip", "skip"]
    assert report["leak"] is False
    assert [e["headers"].get("Authorization") for e in emu.request_log] == [None]


# ----- answers the emulator does not give: small fake services ------------------------------

def himds_like(tokens_dir, *, key: bytes | None = None, token_status: int = 200, token_body: bytes | None = None,
               token_type: str = "application/json", realm: str | None = None, challenge_body: bytes = b"{}"):
    """A fake HIMDS: 401 + realm (writing ``key``) without Authorization, then the given answer."""
    state = {"secret": None, "authorised": 0}

    def respond(handler):
        auth = handler.headers.get("Authorization")
        if not auth:
            name = os.path.join(str(tokens_dir), uuid.uuid4().hex + ".key")
            secret = key if key is not None else ("imdsrbcanaryFAKE" + uuid.uuid4().hex).encode()
            with open(name, "wb") as f:
                f.write(secret)
            state["secret"] = secret.decode("utf-8", "replace")
            return 401, {"WWW-Authenticate": f"Basic realm={realm or name}", "Content-Type": "application/json"}, \
                challenge_body
        state["authorised"] += 1
        body = token_body if token_body is not None else b"{}"
        return token_status, {"Content-Type": token_type}, body.replace(b"SECRET", auth.split(" ", 1)[1].encode())

    return respond, state


def fake_jwt(canary="imdsrbcanaryFAKE"):
    import base64
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'RS256'})}.{b64({'aud': 'https://management.azure.com/', 'tid': 't', 'exp': 2000000000})}.sig{canary}sig"


def test_nothing_listening_is_himds_not_running(host, client):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    results = check_arc_token(client, f"http://127.0.0.1:{port}", keys=host)
    assert_chain(results, "arc.challenge", "IMDS-ARC-010")
    assert f"127.0.0.1:{port}" in results[0].detail
    assert "systemctl restart himdsd" in results[0].fix and "Restart-Service himds" in results[0].fix
    assert results[0].attempts[0].error == "connect_refused"


@pytest.mark.parametrize("status, ctype, body, code", [
    (200, "application/json", b'{"hello": "world"}', "IMDS-ARC-011"),
    (200, "text/html", b"<html>router</html>", "IMDS-ARC-011"),
    (404, "text/html", b"<html>not found</html>", "IMDS-ARC-011"),
    (400, "application/json", b'{"error":"invalid_request","error_description":"bad path"}', "IMDS-ARC-012"),
    (400, "application/json", b'{"error":"invalid_request","error_description":"The api-version not specified."}',
     "IMDS-META-003"),
    (500, "application/json", b'{"error":"server_error"}', "IMDS-HTTP-013"),
])
def test_no_challenge_names_what_answered(fake_service, host, client, status, ctype, body, code):
    url = fake_service(lambda h: (status, {"Content-Type": ctype, "Server": "nginx"}, body))
    results = check_arc_token(client, url, keys=host)
    assert_chain(results, "arc.challenge", code)
    if code == "IMDS-ARC-011":
        assert f"HTTP {status}" in results[0].detail and "nginx" in results[0].detail


def test_relative_realm(fake_service, host, client, tmp_path):
    respond, _ = himds_like(tmp_path, realm="tokens/abc.key")
    results = check_arc_token(client, fake_service(respond), keys=host, tokens_dir=str(tmp_path))
    assert_chain(results, "arc.realm", "IMDS-ARC-020")


def test_trailing_newline_warns_and_is_not_sent(fake_service, host, client, tmp_path):
    respond, state = himds_like(tmp_path, key=b"imdsrbcanaryNEWLINE\n")
    results = check_arc_token(client, fake_service(respond), keys=host, tokens_dir=str(tmp_path))
    assert [r.status for r in results] == [Status.OK, Status.OK, Status.WARN, Status.FAIL]
    assert results[2].code == "IMDS-ARC-027" and results[3].code == "IMDS-ARC-028"
    assert "not sent" in results[3].detail
    assert state["authorised"] == 0
    assert leaks(results, "imdsrbcanaryNEWLINE") == []


def test_empty_key_is_not_sent(fake_service, host, client, tmp_path):
    respond, state = himds_like(tmp_path, key=b"")
    results = check_arc_token(client, fake_service(respond), keys=host, tokens_dir=str(tmp_path))
    assert_chain(results, "arc.keyfile", "IMDS-ARC-028")
    assert state["authorised"] == 0


@pytest.mark.parametrize("status, ctype, body, why", [
    (200, "text/plain", b"hello", "not JSON"),
    (200, "application/json", b"[1, 2]", "not an object"),
    (200, "application/json", b'{"token_type": "Bearer", "expires_in": "3599"}', "access_token"),
    (200, "application/json", b'{"access_token": "JWT", "expires_on": "2000000000"}', "expires_in"),
    (200, "application/json", b'{"access_token": "imdsrbcanaryNOTJWT", "expires_in": "3599"}', "not a JWT"),
])
def test_unusable_token_answers(fake_service, host, client, tmp_path, status, ctype, body, why):
    body = body.replace(b"JWT", fake_jwt().encode()) if b'"JWT"' in body else body
    respond, _ = himds_like(tmp_path, token_status=status, token_type=ctype, token_body=body)
    results = check_arc_token(client, fake_service(respond), keys=host, tokens_dir=str(tmp_path))
    assert_chain(results, "arc.token", "IMDS-ARC-033")
    assert why in results[-1].detail
    assert leaks(results, "imdsrbcanary") == []


def test_secret_and_token_echoed_anywhere_are_redacted(fake_service, host, client, tmp_path):
    token = fake_jwt("imdsrbcanaryTOKEN")
    body = json.dumps({"access_token": token, "expires_in": "3599", "debug": f"you sent SECRET, got {token}",
                       "resource": "SECRET"}).encode()
    respond, state = himds_like(tmp_path, token_body=body)
    results = check_arc_token(client, fake_service(respond), keys=host, tokens_dir=str(tmp_path))
    assert results[-1].code == "IMDS-ARC-000"
    unsigned = recorded_tokens(host)
    assert unsigned == [token.rsplit(".", 1)[0] + "."]     # the host hands the check no signature
    assert leaks(results, state["secret"], token, *unsigned, "imdsrbcanary") == []
    assert bundle_leaks(host, state["secret"], "imdsrbcanary") == []


def test_secret_echoed_in_an_error_is_redacted(fake_service, host, client, tmp_path):
    body = b'{"error": "forbidden", "error_description": "secret SECRET is not valid for this thing"}'
    respond, state = himds_like(tmp_path, token_status=403, token_body=body)
    results = check_arc_token(client, fake_service(respond), keys=host, tokens_dir=str(tmp_path))
    assert_chain(results, "arc.token", "IMDS-ARC-032")
    assert "<redacted>" in results[-1].detail
    assert leaks(results, state["secret"], "imdsrbcanary") == []


def test_server_error_after_the_challenge_points_at_the_agent(fake_service, host, client, tmp_path):
    respond, _ = himds_like(tmp_path, token_status=500, token_body=b'{"error": "server_error"}')
    results = check_arc_token(client, fake_service(respond), keys=host, tokens_dir=str(tmp_path))
    assert_chain(results, "arc.token", "IMDS-ARC-031")


def test_missing_key_file(fake_service, host, client, tmp_path):
    respond, _ = himds_like(tmp_path, realm=str(tmp_path / "never-written.key"))
    results = check_arc_token(client, fake_service(respond), keys=host, tokens_dir=str(tmp_path))
    assert_chain(results, "arc.realm", "IMDS-ARC-023")


# ----- at the real addresses, inside the namespace -------------------------------------------

REAL_TOKENS = "/var/opt/azcmagent/tokens"


@pytest.fixture
def real_himds():
    if os.environ.get("IMDS_RUNBOOK_TOKENS_DIR_MOUNTED") != "1":
        pytest.skip("the private /var/opt/azcmagent/tokens mount is missing")
    from imds_helpers.emulator import Emulator
    with Emulator(mode="arc", host="127.0.0.1", port=40342, key_dir=REAL_TOKENS) as emu:
        yield emu


@netns
@pytest.mark.timeout(30)
def test_real_endpoint_and_tokens_dir(real_himds, host, client):
    assert kf.default_tokens_dir(host.os_name) == REAL_TOKENS
    results = check_arc_token(client, keys=host)           # http://localhost:40342, platform tokens dir
    assert_chain(results, None, "IMDS-ARC-000")
    assert results[0].evidence["realm"].startswith(REAL_TOKENS + "/")
    assert leaks(results, real_himds.canary) == []
    assert os.listdir(REAL_TOKENS) == []       # the single-use key is gone


@netns
@pytest.mark.timeout(30)
def test_real_endpoint_hostile_realm(real_himds, host, client):
    real_himds.set_scenario("arc-realm-symlink-out")
    results = check_arc_token(client, keys=host)
    assert_chain(results, "arc.realm", "IMDS-ARC-021")
    assert leaks(results, real_himds.canary) == []


@netns
@pytest.mark.timeout(90)
def test_real_tokens_dir_as_nobody(real_himds, nobody):
    """The real tokens dir is 0750 root: another user cannot even look in."""
    report = run_as_nobody(nobody, "http://localhost:40342", REAL_TOKENS, real_himds.canary)
    assert report["steps"][1][1:3] == ["fail", "IMDS-ARC-026"], report["steps"]
    assert "may not even look into" in report["steps"][1][3]
    assert report["leak"] is False


@netns
def test_real_endpoint_nothing_listening(host, client):
    results = check_arc_token(client, keys=host)
    assert_chain(results, "arc.challenge", "IMDS-ARC-010")
    assert "localhost:40342" in results[0].detail


def test_environment_check_is_exported():
    assert check_arc_environment({}, host=LiveHost(env={}, os_name="linux")).id == "arc.env"
