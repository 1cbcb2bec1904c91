"""Every row of the scenario table, exercised once with an assertion about what a client sees.

``CHECKS`` maps each scenario name to a check; a new row without a check fails
``test_every_scenario_has_a_check``.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import time
from typing import Callable

import pytest

from emu_client import ARM, TOKEN, Client
from imds_helpers.emulator import SCENARIOS, protocol as P
from imds_helpers.emulator.scenarios import DEFAULT_SCENARIO, get_scenario
from imds_helpers.model.errors import UsageError

REQUIRED = """vm-healthy vm-no-identity vm-user-assigned-only vm-multiple-user-assigned vm-unknown-resource
vm-throttled vm-updating vm-transient-5xx vm-token-404-then-ok vm-forwarded-rejected vm-malformed-json
vm-truncated-body vm-oversized-body vm-not-imds-html vm-docker-desktop-403 vm-connection-reset
vm-accept-then-hang vm-slow-drip vm-slow-headers vm-old-api-versions vm-identity-propagating arc-healthy
arc-no-challenge-header arc-realm-outside-tokens-dir arc-realm-not-key arc-realm-traversal
arc-realm-symlink-out arc-realm-fifo arc-realm-dev-zero arc-realm-directory arc-realm-huge-file
arc-realm-with-equals arc-key-too-large arc-key-unreadable arc-wrong-secret arc-agent-disconnected""".split()

# Short timings so the whole table runs in a few seconds.
PARAMS = {"vm-updating": {"for_seconds": 0.4}, "vm-identity-propagating": {"for_seconds": 0.4}}


# --- the table itself -------------------------------------------------------------------

def test_required_names_present_and_table_is_big_enough():
    assert set(REQUIRED) <= set(SCENARIOS)
    assert len(SCENARIOS) >= 25


def test_rows_are_well_formed():
    for name, row in SCENARIOS.items():
        assert row.name == name and row.mode in ("vm", "arc") and name.startswith(row.mode + "-")
        assert row.description and "\n" not in row.description and len(row.description) < 200
    assert DEFAULT_SCENARIO == {"vm": "vm-healthy", "arc": "arc-healthy"}


def test_get_scenario_errors():
    with pytest.raises(UsageError, match="did you mean vm-throttled"):
        get_scenario("vm-throttle")
    with pytest.raises(UsageError, match="for arc mode"):
        get_scenario("arc-healthy", "vm")
    with pytest.raises(UsageError, match="unknown scenario parameter"):
        get_scenario("vm-updating").with_params(seconds=1)


def test_every_scenario_has_a_check():
    assert sorted(CHECKS) == sorted(SCENARIOS)


# --- VM checks ----------------------------------------------------------------------------

def vm_healthy(emu, c):
    assert c.instance().status == 200
    assert c.token().json()["client_id"] == emu.identities["system_assigned"]["client_id"]
    uami = emu.identities["user_assigned"]
    assert len(uami) == 1 and c.token(client_id=uami[0]["client_id"]).status == 200


def vm_no_identity(emu, c):
    assert emu.identities == {"system_assigned": None, "user_assigned": []}
    r = c.token()
    assert r.status == 400 and r.json() == P.IDENTITY_NOT_FOUND


def vm_user_assigned_only(emu, c):
    assert emu.identities["system_assigned"] is None and len(emu.identities["user_assigned"]) == 1
    assert c.token().json()["client_id"] == emu.identities["user_assigned"][0]["client_id"]


def vm_multiple_user_assigned(emu, c):
    r = c.token()
    assert r.status == 400 and r.json() == P.MULTIPLE_IDENTITIES
    assert c.token(msi_res_id=emu.identities["user_assigned"][2]["msi_res_id"]).status == 200


def vm_unknown_resource(emu, c):
    for resource in (ARM, "https://vault.azure.net", "https://monitor.azure.com/"):
        r = c.token(resource)
        assert r.status == 400 and r.json()["error"] == "invalid_resource"
        assert "AADSTS500011" in r.json()["error_description"]
    assert c.instance().status == 200


def vm_throttled(emu, c):
    r = c.instance()
    assert r.status == 429 and r.headers["Retry-After"] and r.json() == P.TOO_MANY
    r = c.token()
    assert r.status == 429 and r.json()["error"] == "too_many_requests"


def vm_updating(emu, c):
    r = c.instance()
    assert r.status == 410 and r.headers["Server"].startswith("IMDS/")
    assert c.token().status == 410
    time.sleep(0.45)
    assert c.instance().status == 200 and c.token().status == 200


def vm_transient_5xx(emu, c):
    assert c.get(TOKEN, {"api-version": "2018-02-01", "resource": ARM}, metadata=False).status == 400  # probe: not counted
    assert [c.token().status for _ in range(3)] == [500, 503, 200]
    assert [c.instance().status for _ in range(3)] == [500, 503, 200]      # counted per endpoint
    assert c.get("/metadata/versions").status == 500


def vm_token_404_then_ok(emu, c):
    assert c.instance().status == 200
    r = c.token()
    assert r.status == 404 and r.json()["error"] == "not_found"
    assert c.token().status == 200


def vm_identity_propagating(emu, c):
    assert c.instance().status == 200
    r = c.token()
    assert r.status == 400 and r.json() == P.IDENTITY_NOT_FOUND
    time.sleep(0.45)
    assert c.token().status == 200


def vm_forwarded_rejected(emu, c):
    assert c.instance().json() == P.FORWARDED and c.instance().status == 400
    assert c.token().json() == P.FORWARDED_IDENTITY


def vm_malformed_json(emu, c):
    for r in (c.instance(), c.token()):
        assert r.status == 200 and int(r.headers["Content-Length"]) == len(r.body)
        with pytest.raises(ValueError):
            json.loads(r.body)


def vm_truncated_body(emu, c):
    with pytest.raises(http.client.IncompleteRead):
        c.instance()
    with pytest.raises(http.client.IncompleteRead):
        c.token()


def vm_oversized_body(emu, c):
    r = c.instance()
    assert r.status == 200 and len(r.body) >= 5 * 1024 * 1024
    assert "compute" in r.json()                      # still valid JSON, just huge
    assert len(c.token().body) >= 5 * 1024 * 1024


def vm_not_imds_html(emu, c):
    r = c.instance()
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert not r.headers.get("Server", "").startswith("IMDS/") and b"<html>" in r.body


def vm_docker_desktop_403(emu, c):
    r = c.token()
    assert r.status == 403 and r.version == 10 and "unreachable network" in r.reason
    assert "unreachable" in r.json()["error"] and "Server" not in r.headers


def vm_connection_reset(emu, c):
    with pytest.raises(ConnectionResetError):
        c.instance(timeout=3)
    assert emu.request_log[-1]["status"] is None and emu.request_log[-1]["fault"] == "vm-connection-reset"


def vm_accept_then_hang(emu, c):
    with socket.create_connection((emu.host, emu.port), timeout=2) as s:       # accepted
        s.sendall(b"GET /metadata/versions HTTP/1.1\r\nHost: x\r\nMetadata: true\r\n\r\n")
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1)


def vm_firewalled(emu, c):
    with pytest.raises(socket.timeout):                                         # SYN dropped
        socket.create_connection((emu.host, emu.port), timeout=0.5).close()
    emu.set_scenario("vm-healthy")                                              # and it recovers
    assert c.instance().status == 200


def vm_slow_drip(emu, c):
    with socket.create_connection((emu.host, emu.port), timeout=2) as s:
        s.sendall(b"GET /metadata/versions HTTP/1.1\r\nHost: x\r\nMetadata: true\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        head, body = data.split(b"\r\n\r\n", 1)
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        s.settimeout(0.3)
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                body += chunk
        except socket.timeout:
            pass
        assert 0 < len(body) <= 2 and length > 100


def vm_slow_headers(emu, c):
    with socket.create_connection((emu.host, emu.port), timeout=2) as s:
        s.sendall(b"GET /metadata/versions HTTP/1.1\r\nHost: x\r\nMetadata: true\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            data += s.recv(4096)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        s.settimeout(0.8)
        started = time.monotonic()
        while time.monotonic() - started < 1.6:     # each byte comes inside any read timeout
            data += s.recv(4096)
        assert b"\r\n\r\n" not in data              # the headers are still coming
        assert 1 <= len(data) - len(b"HTTP/1.1 200 OK\r\n") <= 5


def vm_old_api_versions(emu, c):
    r = c.instance(api_version="2019-11-01")
    assert r.status == 400 and r.json()["newest-versions"] == ["2019-06-04", "2019-06-01", "2019-04-30"]
    assert c.instance(api_version="2019-06-04").status == 200
    assert max(c.get("/metadata/versions").json()["apiVersions"]) == "2019-06-04"
    assert c.token().status == 200
    assert c.get("/metadata/loadbalancer", {"api-version": "2019-06-04"}).status == 400


def vm_persistent_5xx(emu, c):
    assert [c.token().status for _ in range(3)] == [500, 500, 500]
    assert "Failed to retrieve token" in c.token().json()["error_description"]
    assert c.instance().status == 200


def vm_no_loadbalancer(emu, c):
    r = c.get("/metadata/loadbalancer", {"api-version": "2020-10-01"})
    assert r.status == 404 and r.json() == P.NO_LOADBALANCER


def vm_scheduled_maintenance(emu, c):
    url, v = "/metadata/scheduledevents", {"api-version": "2020-07-01"}
    doc = c.get(url, v).json()
    (event,) = doc["Events"]
    assert event["EventType"] == "Freeze" and event["EventStatus"] == "Scheduled" and event["NotBefore"]
    ack = json.dumps({"StartRequests": [{"EventId": event["EventId"]}]}).encode()
    assert c.request("POST", url, v, body=ack, headers={"Content-Type": "application/json"}).status == 200
    after = c.get(url, v).json()
    assert after["Events"][0]["EventStatus"] == "Started" and after["DocumentIncarnation"] > doc["DocumentIncarnation"]
    unknown = json.dumps({"StartRequests": [{"EventId": "nope"}]}).encode()
    assert c.request("POST", url, v, body=unknown).status == 400


# --- Arc checks ---------------------------------------------------------------------------

def _arc_challenge(c, **params):
    r = c.token(api_version="2020-06-01", **params)
    assert r.status == 401
    return r, r.headers.get("WWW-Authenticate")


def _realm(header):
    return header.split("=", 1)[1]


def _redeem(c, secret, **params):
    return c.token(api_version="2020-06-01", headers={"Authorization": f"Basic {secret}"}, **params)


def _secret_of(emu, path):
    data = open(path, encoding="ascii").read()
    assert emu.canary in data
    return data


def arc_healthy(emu, c):
    _, header = _arc_challenge(c)
    realm = _realm(header)
    assert os.path.dirname(realm) == emu.key_dir
    r = _redeem(c, _secret_of(emu, realm))
    assert r.status == 200 and emu.canary in r.json()["access_token"]


def arc_no_challenge_header(emu, c):
    r, header = _arc_challenge(c)
    assert header is None and r.json()["error"]


def arc_realm_outside_tokens_dir(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    assert os.path.dirname(realm) != emu.key_dir and realm.endswith(".key") and os.path.isfile(realm)
    assert _redeem(c, _secret_of(emu, realm)).status == 200


def arc_realm_not_key(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    assert os.path.dirname(realm) == emu.key_dir and not realm.endswith(".key") and os.path.isfile(realm)
    _secret_of(emu, realm)


def arc_realm_traversal(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    assert realm.startswith(emu.key_dir + "/../../etc/") and realm.endswith(".key")
    assert not os.path.exists(realm)              # nothing is ever written outside
    base = os.path.join(emu.key_dir, os.path.basename(realm))
    assert _redeem(c, _secret_of(emu, base)).status == 200


def arc_realm_symlink_out(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    assert os.path.dirname(realm) == emu.key_dir and os.path.islink(realm)
    target = os.path.realpath(realm)
    assert not target.startswith(os.path.realpath(emu.key_dir) + os.sep)
    _secret_of(emu, target)


def arc_realm_fifo(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    assert stat.S_ISFIFO(os.lstat(realm).st_mode)          # never opened here: it would block


def arc_realm_dev_zero(emu, c):
    assert _realm(_arc_challenge(c)[1]) == "/dev/zero"


def arc_realm_directory(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    assert realm.endswith(".key") and os.path.isdir(realm) and not os.path.islink(realm)


def arc_realm_huge_file(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    st = os.stat(realm)
    assert st.st_size == 1 << 30 and st.st_blocks * 512 < (1 << 20)      # sparse
    with open(realm, "rb") as fh:
        assert emu.canary.encode() in fh.read(256)


def arc_realm_with_equals(emu, c):
    _, header = _arc_challenge(c)
    assert len(header.split("=")) > 2 and '"' in header
    path = _realm(header).strip('"')
    assert os.path.isfile(path) and "=" in os.path.basename(path)
    assert _redeem(c, _secret_of(emu, path)).status == 200


def arc_key_too_large(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    assert os.path.getsize(realm) == 5000
    assert _redeem(c, _secret_of(emu, realm)).status == 200     # the service itself would accept it


def arc_key_unreadable(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    st = os.stat(realm)
    assert stat.S_IMODE(st.st_mode) == 0
    if os.geteuid() == 0:
        assert st.st_uid == 65534


def arc_wrong_secret(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    r = _redeem(c, _secret_of(emu, realm))
    assert r.status == 401 and _realm(r.headers["WWW-Authenticate"]) != realm
    assert not os.path.exists(realm)


def arc_agent_disconnected(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    r = _redeem(c, _secret_of(emu, realm))
    assert r.status == P.ARC_DISCONNECTED_STATUS and r.json() == P.ARC_DISCONNECTED
    assert "expired" in r.json()["error_description"]


def arc_unknown_resource(emu, c):
    realm = _realm(_arc_challenge(c)[1])
    r = _redeem(c, _secret_of(emu, realm))
    assert r.status == 400 and r.json()["error"] == "invalid_resource"


def arc_legacy_agent(emu, c):
    wanted = "11111111-2222-3333-4444-555555555555"
    realm = _realm(_arc_challenge(c, client_id=wanted)[1])           # not refused: ignored
    body = _redeem(c, _secret_of(emu, realm), client_id=wanted).json()
    assert body["client_id"] != wanted and "object_id" not in body and "msi_res_id" not in body


CHECKS: dict[str, Callable] = {name: globals()[name.replace("-", "_")] for name in SCENARIOS
                               if name.replace("-", "_") in globals()}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_row(make_emulator, name):
    row = SCENARIOS[name]
    emu = make_emulator(mode=row.mode, scenario=name, scenario_params=PARAMS.get(name))
    assert emu.scenario == name and emu.mode == row.mode
    CHECKS[name](emu, Client(emu.base_url))
