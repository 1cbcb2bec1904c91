"""Arc (HIMDS) mode: the challenge flow of imds-protocol.md §2 and its key-file rules."""

from __future__ import annotations

import os
import stat

import pytest

from emu_client import ARM, TOKEN
from imds_helpers.emulator import protocol as P
from imds_helpers.emulator.tokens import decode_segment


def _challenge(c, **params):
    r = c.token(api_version="2020-06-01", **params)
    assert r.status == 401, r.text
    header = r.headers["WWW-Authenticate"]
    assert header.startswith("Basic realm=")
    return r, header.split("=", 1)[1]


def test_challenge_401_header_and_body(arc, arcc):
    r, realm = _challenge(arcc)
    assert os.path.dirname(realm) == arc.key_dir and realm.endswith(".key")
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.json()["error"] and "Server" not in r.headers
    assert "Www-Authenticate" in r.headers.keys()            # spelled as Go writes it


def test_key_file_rules(arc, arcc):
    _, realm = _challenge(arcc)
    st = os.lstat(realm)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    data = open(realm, "rb").read()
    assert 0 < len(data) <= 4096 and not data.endswith(b"\n") and not data.endswith(b"\r")
    assert arc.canary.encode() in data
    assert realm in arc.pending_key_files


def test_full_flow_and_single_use(arc, arcc):
    _, realm = _challenge(arcc)
    secret = open(realm, encoding="utf-8").read()
    r = arcc.token(api_version="2020-06-01", headers={"Authorization": f"Basic {secret}"})
    assert r.status == 200
    body = r.json()
    assert isinstance(body["expires_in"], str) and int(body["expires_in"]) > 3600    # MSAL needs it
    assert all(isinstance(v, str) for v in body.values())
    assert body["resource"] == ARM and body["token_type"] == "Bearer"
    assert arc.canary in body["access_token"]
    claims = decode_segment(body["access_token"].split(".")[1])
    assert "/providers/Microsoft.HybridCompute/machines/" in claims["xms_mirid"]
    assert not os.path.exists(realm), "key file must be deleted once used"
    # the same secret again: a fresh challenge, never a token
    again, realm2 = _challenge(arcc, headers={"Authorization": f"Basic {secret}"})
    assert realm2 != realm and os.path.exists(realm2)


def test_wrong_secret_gets_fresh_challenge(arc, arcc):
    _, realm = _challenge(arcc)
    _, realm2 = _challenge(arcc, headers={"Authorization": "Basic not-the-secret"})
    assert realm2 != realm and os.path.exists(realm) and os.path.exists(realm2)
    _, realm3 = _challenge(arcc, headers={"Authorization": "Bearer " + open(realm).read()})
    assert realm3 not in (realm, realm2)


def test_secret_works_for_a_different_resource_in_the_same_exchange(arc, arcc):
    _, realm = _challenge(arcc)
    secret = open(realm).read()
    r = arcc.token("https://monitor.azure.com/", api_version="2020-06-01", headers={"Authorization": f"Basic {secret}"})
    assert r.status == 200 and r.json()["resource"] == "https://monitor.azure.com/"


@pytest.mark.parametrize("selector", ["client_id", "object_id", "msi_res_id", "mi_res_id"])
def test_user_assigned_refused_before_challenge(arc, arcc, selector):
    r = arcc.token(api_version="2020-06-01", **{selector: "11111111-2222-3333-4444-555555555555"})
    assert r.status == 400 and r.json() == P.ARC_USER_ASSIGNED_REFUSED
    assert "WWW-Authenticate" not in r.headers and arc.pending_key_files == []
    assert os.listdir(arc.key_dir) == []


@pytest.mark.parametrize("version", ["2021-02-01", "2020-06-01", "2019-11-01", "2019-08-15"])
def test_himds_versions_accepted(arcc, version):
    assert arcc.token(api_version=version).status == 401
    assert arcc.get("/metadata/instance", {"api-version": version}).status == 200


@pytest.mark.parametrize("params", [{}, {"api-version": "2018-02-01"}, {"api-version": "2021-12-13"}])
def test_himds_api_version_error_text(arcc, params):
    r = arcc.get(TOKEN, {"resource": ARM, **params})
    assert r.status == 400
    assert r.json()["error_description"] == "The api-version not specified. Supported are 2021-02-01 2020-06-01 2019-11-01 2019-08-15"


def test_arc_missing_header(arcc):
    r = arcc.get(TOKEN, {"api-version": "2020-06-01", "resource": ARM}, metadata=False)
    assert r.status == 400 and r.json()["error_description"] == "Required metadata header not specified"
    assert arcc.get("/metadata/instance", {"api-version": "2020-06-01"}, metadata=False).status == 400


@pytest.mark.parametrize("path", ["/metadata/versions", "/metadata/identity/info", "/metadata/attested/document",
                                  "/metadata/scheduledevents", "/metadata/loadbalancer"])
def test_arc_serves_only_instance_and_token(arcc, path):
    assert arcc.get(path, {"api-version": "2020-06-01"}).status == 404


def test_arc_forwarded_for_rejected(arcc):
    assert arcc.token(api_version="2020-06-01", headers={"X-Forwarded-For": "1.2.3.4"}).status == 400


def test_arc_unknown_resource_after_challenge(arc, arcc):
    _, realm = _challenge(arcc, resource="https://example.com/")
    r = arcc.token("https://example.com/", api_version="2020-06-01",
                   headers={"Authorization": "Basic " + open(realm).read()})
    assert r.status == 400 and r.json()["error"] == "invalid_resource"


def test_arc_no_rate_limit(make_emulator, client):
    c = client(make_emulator(mode="arc", rate_limits=True))
    assert {c.get("/metadata/instance", {"api-version": "2020-06-01"}).status for _ in range(8)} == {200}


def test_temp_key_dir_removed_on_close(make_emulator, client):
    emu = make_emulator(mode="arc")
    key_dir = emu.key_dir
    assert os.path.isdir(key_dir) and stat.S_IMODE(os.stat(key_dir).st_mode) == 0o750
    _challenge(client(emu))
    emu.close()
    assert not os.path.exists(key_dir)


def test_given_key_dir_kept_but_files_removed(make_emulator, client, tmp_path):
    emu = make_emulator(mode="arc", key_dir=str(tmp_path))
    _, realm = _challenge(client(emu))
    assert os.path.dirname(realm) == str(tmp_path)
    emu.close()
    assert tmp_path.is_dir() and list(tmp_path.iterdir()) == []


def test_pending_challenges_are_bounded(make_emulator, client, monkeypatch):
    from imds_helpers.emulator import service
    monkeypatch.setattr(service, "MAX_PENDING_CHALLENGES", 3)
    emu = make_emulator(mode="arc")
    c = client(emu)
    realms = [_challenge(c)[1] for _ in range(5)]
    assert sorted(os.listdir(emu.key_dir)) == sorted(os.path.basename(r) for r in realms[2:])


def test_arc_request_log_redacts_authorization(arc, arcc):
    _, realm = _challenge(arcc)
    secret = open(realm).read()
    arcc.token(api_version="2020-06-01", headers={"Authorization": f"Basic {secret}"})
    assert arc.request_log[-1]["headers"]["Authorization"] == "<redacted>"
    assert secret not in repr(arc.request_log) and arc.canary not in repr(arc.request_log)
