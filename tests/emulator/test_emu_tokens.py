"""VM-mode token endpoint: identities (E13, E14), resources (E15), token shape and the canary."""

from __future__ import annotations

import re
import time

import pytest

from emu_client import ARM, TOKEN
from imds_helpers.emulator import protocol as P
from imds_helpers.emulator.tokens import CANARY_PREFIX, decode_segment

CLAIMS = {"aud", "iss", "iat", "nbf", "exp", "appid", "idtyp", "oid", "sub", "tid", "xms_mirid", "xms_az_rid", "ver"}


def _claims(token: str) -> dict:
    header, payload, signature = token.split(".")
    assert decode_segment(header) == {"typ": "JWT", "alg": "RS256", "kid": "emulator"}
    assert re.fullmatch(r"[A-Za-z0-9_-]+", signature)
    return decode_segment(payload)


def test_token_response_shape_and_strings(vm, vmc):
    r = vmc.token()
    assert r.status == 200 and r.headers["Content-Type"] == "application/json; charset=utf-8"
    body = r.json()
    assert set(body) == {"access_token", "client_id", "expires_in", "expires_on", "ext_expires_in",
                         "not_before", "resource", "token_type"}
    assert all(isinstance(v, str) for v in body.values())
    assert body["token_type"] == "Bearer" and body["resource"] == ARM
    assert 86000 < int(body["expires_in"]) <= 86399 and body["ext_expires_in"] == "86399"
    assert abs(int(body["expires_on"]) - (time.time() + 86399)) < 5
    assert int(body["not_before"]) <= time.time()
    assert body["client_id"] == vm.identities["system_assigned"]["client_id"]


def test_jwt_claims_are_realistic(vm, vmc):
    body = vmc.token().json()
    claims = _claims(body["access_token"])
    assert CLAIMS <= set(claims)
    system = vm.identities["system_assigned"]
    assert claims["aud"] == ARM and claims["tid"] == vm.tenant_id
    assert claims["iss"] == f"https://sts.windows.net/{vm.tenant_id}/"
    assert claims["oid"] == claims["sub"] == system["object_id"] and claims["appid"] == system["client_id"]
    assert claims["idtyp"] == "app" and claims["xms_mirid"] == vm.resource_id
    assert claims["xms_az_rid"] == vm.resource_id
    assert claims["exp"] == int(body["expires_on"]) and claims["nbf"] <= time.time() < claims["exp"]


def test_canary_in_every_token(vm, vmc):
    uami = vm.identities["user_assigned"][0]
    tokens = [vmc.token().json()["access_token"],
              vmc.token("https://vault.azure.net", bypass_cache="true").json()["access_token"],
              vmc.token(client_id=uami["client_id"]).json()["access_token"],
              vmc.token(object_id=uami["object_id"]).json()["access_token"],
              vmc.token(msi_res_id=uami["msi_res_id"]).json()["access_token"]]
    assert vm.canary.startswith(CANARY_PREFIX) and re.fullmatch(r"imdsrbcanary[0-9a-f]{16}", vm.canary)
    for token in tokens:
        assert vm.canary in token.split(".")[2]


def test_custom_canary(make_emulator, client):
    emu = make_emulator(canary="imdsrbcanary0123456789abcdef")
    assert "imdsrbcanary0123456789abcdef" in client(emu).token().json()["access_token"]


@pytest.mark.parametrize("selector", ["client_id", "object_id", "msi_res_id", "mi_res_id"])
def test_user_assigned_selectors_and_echo(vm, vmc, selector):
    uami = vm.identities["user_assigned"][0]
    value = uami["msi_res_id" if selector == "mi_res_id" else selector]
    body = vmc.token(**{selector: value.upper() if selector != "msi_res_id" else value}).json()
    assert body[selector].lower() == value.lower()          # echo of the selector
    assert body["client_id"] == uami["client_id"]
    claims = _claims(body["access_token"])
    assert claims["oid"] == uami["object_id"] and claims["xms_mirid"] == uami["msi_res_id"]


def test_e13_unknown_selector_identity_not_found(vmc):
    r = vmc.token(client_id="00000000-0000-0000-0000-000000000000")
    assert r.status == 400 and r.json() == {"error": "invalid_request", "error_description": "Identity not found"}


def test_e13_no_identity(make_emulator, client):
    c = client(make_emulator(scenario="vm-no-identity"))
    r = c.token()
    assert r.status == 400 and r.json() == P.IDENTITY_NOT_FOUND


def test_e14_multiple_user_assigned_exact_body(make_emulator, client):
    emu = make_emulator(scenario="vm-multiple-user-assigned")
    c = client(emu)
    r = c.token()
    assert r.status == 400 and r.headers["Content-Length"] == "168"     # as recorded (I1)
    assert r.json()["error_description"].startswith("Multiple user assigned identities exist")
    uamis = emu.identities["user_assigned"]
    assert len(uamis) == 3 and emu.identities["system_assigned"] is None
    for u in uamis:
        assert c.token(client_id=u["client_id"]).json()["client_id"] == u["client_id"]


def test_lone_user_assigned_answers_without_selector(make_emulator, client):
    emu = make_emulator(scenario="vm-user-assigned-only")
    body = client(emu).token().json()
    assert body["client_id"] == emu.identities["user_assigned"][0]["client_id"]


def test_several_selectors_rejected(vm, vmc):
    u = vm.identities["user_assigned"][0]
    r = vmc.token(client_id=u["client_id"], object_id=u["object_id"])
    assert r.status == 400 and r.json()["error"] == "invalid_request"


@pytest.mark.parametrize("resource", list(P.KNOWN_RESOURCES) + [
    "https://management.azure.com", "https://monitor.azure.com", "https://vault.azure.net/",
    "HTTPS://MANAGEMENT.AZURE.COM/"])
def test_known_resources_accepted_and_echoed(vmc, resource):
    body = vmc.token(resource).json()
    assert body["resource"] == resource and _claims(body["access_token"])["aud"] == resource


@pytest.mark.parametrize("resource", ["https://management.usgovcloudapi.net/", "https://example.com/",
                                      "https://management.azure.com/.default", "api://nothing"])
def test_e15_unknown_resource(vm, vmc, resource):
    r = vmc.token(resource)
    assert r.status == 400
    body = r.json()
    assert body["error"] == "invalid_resource" and set(body) == {"error", "error_description"}
    desc = body["error_description"]
    assert desc.startswith(f"AADSTS500011: The resource principal named {resource} was not found in the tenant named {vm.tenant_id}.")
    assert "\r\nTrace ID: " in desc and "\r\nCorrelation ID: " in desc and "\r\nTimestamp: " in desc


def test_tokens_are_cached_like_imds_unless_bypassed(vmc):
    first = vmc.token().json()
    again = vmc.token().json()
    assert again["access_token"] == first["access_token"] and again["expires_on"] == first["expires_on"]
    fresh = vmc.token(bypass_cache="true").json()
    assert fresh["access_token"] != first["access_token"]


def test_token_log_never_holds_the_token(vm, vmc):
    token = vmc.token().json()["access_token"]
    assert token not in repr(vm.request_log) and vm.canary not in repr(vm.request_log)


def test_token_path_trailing_slash_is_not_the_token_endpoint(vmc):
    assert vmc.get(TOKEN + "x", {"api-version": "2018-02-01", "resource": ARM}).status == 404
