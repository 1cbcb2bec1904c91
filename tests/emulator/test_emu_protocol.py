"""VM-mode protocol: the documented error cases E1-E21 of imds-protocol.md §1.11 that apply to
an emulator, plus headers, verbs, versions and the non-identity categories.

Where each case is tested:
  E1, E2 missing header ............ test_e1_*, test_e2_* (here)
  E3 X-Forwarded-For ............... test_e3_* (here); vm-forwarded-rejected (test_emu_scenarios)
  E4 api-version ................... test_e4_* (here); vm-old-api-versions (test_emu_scenarios)
  E5 leaf without format=text ...... test_e5_* (here)
  E6 unknown path .................. test_e6_* (here)
  E7 verbs ......................... test_e7_* (here)
  E8 duplicate parameter ........... test_e8_* (here)
  E9 rate limits ................... test_e9_* (here); vm-throttled (test_emu_scenarios)
  E10 updating (410) ............... vm-updating (test_emu_scenarios, test_emu_api)
  E11 token 404 .................... vm-token-404-then-ok (test_emu_scenarios)
  E12 server error ................. vm-transient-5xx, vm-persistent-5xx (test_emu_scenarios)
  E13 Identity not found ........... test_emu_tokens; vm-no-identity, vm-identity-propagating
  E14 several UAMIs ................ test_emu_tokens; vm-multiple-user-assigned
  E15 unknown resource ............. test_emu_tokens; vm-unknown-resource
  E16 other 4xx codes .............. not emulated (no trigger is documented)
  E17 LB parameter errors .......... LB 405 text here; other LB texts not emulated
  E18 no load balancer ............. vm-no-loadbalancer (test_emu_scenarios)
  E19 LB outage 503 ................ vm-transient-5xx (its 503 body is the E19 text)
  E20 scheduled events bad POST .... test_e20_* (here)
  E21 Docker Desktop 403 ........... vm-docker-desktop-403 (test_emu_scenarios, conformance)
  E22 timeout / refused ............ vm-accept-then-hang (test_emu_scenarios, conformance)
"""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest

from emu_client import ARM, TOKEN, Client, load_fixture, scalars
from imds_helpers.emulator import protocol as P

NEWEST3 = ["2025-04-07", "2024-07-17", "2024-03-15"]


def test_success_headers_are_the_real_services(vmc):
    r = vmc.instance()
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.headers["Server"].startswith("IMDS/150.870.65.")
    assert int(r.headers["Content-Length"]) == len(r.body)


def test_every_instance_scalar_is_a_string(vmc):
    doc = vmc.instance(api_version="2025-04-07").json()
    bad = [(path, v) for path, v in scalars(doc) if not isinstance(v, str)]
    assert bad == []


# --- E1 / E2: Metadata header ---------------------------------------------------------------

@pytest.mark.parametrize("path", ["/metadata/instance", "/metadata/versions", "/metadata/attested/document",
                                  "/metadata/scheduledevents", "/metadata/loadbalancer"])
def test_e1_missing_header_non_identity(vmc, path):
    r = vmc.get(path, {"api-version": "2021-12-13"}, metadata=False)
    assert r.status == 400
    assert r.body == b'{"error":"Bad request. Required metadata header not specified"}'


def test_e2_missing_header_token_matches_recording(vmc):
    r = vmc.get(TOKEN, {"api-version": "2018-02-01", "resource": ARM}, metadata=False)
    assert r.status == 400
    assert r.json() == {"error": "invalid_request", "error_description": "Required metadata header not specified"}
    assert r.headers["Content-Length"] == "88"          # as in the azure-identity recording (T1)
    assert r.headers["Server"].startswith("IMDS/")


def test_e2_identity_info_uses_identity_shape(vmc):
    r = vmc.get("/metadata/identity/info", {"api-version": "2018-02-01"}, metadata=False)
    assert r.status == 400 and r.json()["error"] == "invalid_request"


@pytest.mark.parametrize("value", ["true", "True", "TRUE"])
def test_metadata_value_is_case_insensitive(vmc, value):
    assert vmc.instance(headers={"Metadata": value}).status == 200
    assert vmc.token(headers={"Metadata": value}).status == 200


@pytest.mark.parametrize("value", ["false", "1", "yes", ""])
def test_metadata_other_values_rejected(vmc, value):
    assert vmc.get("/metadata/instance", {"api-version": "2021-12-13"}, metadata=value).status == 400


# --- E3: X-Forwarded-For ------------------------------------------------------------------------

def test_e3_forwarded_for_rejected(vmc):
    r = vmc.instance(headers={"X-Forwarded-For": "10.0.0.9"})
    assert r.status == 400 and r.json() == P.FORWARDED
    r = vmc.token(headers={"X-Forwarded-For": "10.0.0.9"})
    assert r.status == 400 and r.json()["error"] == "invalid_request"


# --- E4: api-version ------------------------------------------------------------------------

@pytest.mark.parametrize("params", [{}, {"api-version": "2017-07-01"}, {"api-version": "latest"},
                                    {"api-version": "2099-01-01"}])
def test_e4_missing_or_unknown_version(vmc, params):
    r = vmc.get("/metadata/instance", params)
    assert r.status == 400
    assert r.json() == {"error": P.API_VERSION_ERROR_TEXT, "newest-versions": NEWEST3}


@pytest.mark.parametrize("path,too_old,first", [
    ("/metadata/instance", "2017-03-01", "2017-04-02"),
    (TOKEN, "2017-12-01", "2018-02-01"),
    ("/metadata/identity/info", "2017-12-01", "2018-02-01"),
    ("/metadata/attested/document", "2018-04-02", "2018-10-01"),
    ("/metadata/loadbalancer", "2020-09-01", "2020-10-01"),
])
def test_e4_category_introduction_versions(vmc, path, too_old, first):
    extra = {"resource": ARM} if path == TOKEN else {}
    old = vmc.get(path, {"api-version": too_old, **extra})
    assert old.status == 400 and old.json()["newest-versions"] == NEWEST3
    assert vmc.get(path, {"api-version": first, **extra}).status == 200


def test_e4_scheduled_events_own_versions(vmc):
    for v in ("2020-07-01", "2019-08-01", "2017-11-01", "2021-12-13"):
        assert vmc.get("/metadata/scheduledevents", {"api-version": v}).status == 200, v
    assert vmc.get("/metadata/scheduledevents", {"api-version": "2017-04-02"}).status == 400


def test_versions_endpoint_lists_all_and_needs_no_api_version(vmc):
    r = vmc.get("/metadata/versions")
    assert r.status == 200
    assert r.json()["apiVersions"] == sorted(P.API_VERSIONS)
    assert len(P.API_VERSIONS) == 35 and "2025-04-07" in P.API_VERSIONS


# --- E5 / E6: leaf nodes and unknown paths -------------------------------------------------------

def test_e5_leaf_needs_format_text(vmc):
    assert vmc.instance("/compute/vmId").status == 400
    assert vmc.instance("/compute/vmId", format="json").status == 400
    r = vmc.instance("/compute/vmId", format="text")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert r.text == vmc.instance().json()["compute"]["vmId"]


def test_route_filtering_with_array_indexes(vmc):
    r = vmc.instance("/network/interface/0/ipv4/ipAddress/0/privateIpAddress", format="text")
    assert r.status == 200 and r.text == "10.0.0.4"
    sub = vmc.instance("/network/interface/0")
    assert sub.status == 200 and set(sub.json()) == {"ipv4", "ipv6", "macAddress"}
    assert vmc.instance("/compute/tags", format="text").text == "environment:emulator;owner:imds-runbook"


def test_non_leaf_format_text_lists_children(vmc):
    assert vmc.instance(format="text").text == "compute/\nnetwork/"
    assert vmc.instance("/network/interface", format="text").text == "0/"
    lines = vmc.instance("/compute", format="text").text.splitlines()
    assert "vmId" in lines and "storageProfile/" in lines


def test_unknown_format_rejected(vmc):
    assert vmc.instance(format="xml").status == 400


@pytest.mark.parametrize("sub", ["/compute/identity", "/network/interface/7", "/compute/vmid", "/Compute"])
def test_e6_missing_instance_path(vmc, sub):
    r = vmc.instance(sub)
    assert r.status == 404
    # byte for byte the captured body (spaces included)
    assert r.body == load_fixture("issue_azure-docs_15282_404_not_found_instance_compute_identity.json")["body"].encode()


@pytest.mark.parametrize("path", ["/metadata/identity", "/metadata", "/", "/metadata/identity/oauth2",
                                  "/latest/meta-data/"])
def test_e6_unknown_metadata_path(vmc, path):
    r = vmc.get(path, {"api-version": "2021-12-13"})
    assert r.status == 404
    assert r.body == load_fixture("issue_azure-docs_15282_404_not_found_metadata_identity_root.json")["body"].encode()


# --- E7 / E8 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"])
def test_e7_other_verbs_405(vmc, method):
    r = vmc.request(method, "/metadata/instance", {"api-version": "2021-12-13"})
    assert r.status == 405
    assert "GET" in r.headers["Allow"]


def test_e7_post_only_for_scheduled_events(vmc):
    assert vmc.request("POST", "/metadata/instance", {"api-version": "2021-12-13"}, body=b"{}").status == 405
    r = vmc.request("POST", "/metadata/loadbalancer", {"api-version": "2020-10-01"}, body=b"{}")
    assert r.status == 405 and "Http method isn't allowed" in r.json()["error"]
    assert vmc.request("POST", TOKEN, {"api-version": "2018-02-01", "resource": ARM}).status == 405


def test_e8_duplicate_query_parameter(vmc):
    r = vmc.get("/metadata/instance", [("api-version", "2021-12-13"), ("api-version", "2021-12-13")])
    assert r.status == 400 and r.json() == P.DUPLICATE_PARAM
    r = vmc.get(TOKEN, [("api-version", "2018-02-01"), ("resource", ARM), ("resource", ARM)])
    assert r.status == 400 and r.json()["error"] == "invalid_request"


# --- E9: rate limits ------------------------------------------------------------------------

def test_e9_general_rate_limit_5_per_second(make_emulator, client):
    c = client(make_emulator(rate_limits=True))
    start = time.monotonic()
    statuses = [c.get("/metadata/versions").status for _ in range(7)]
    if time.monotonic() - start > 0.8:
        pytest.skip("machine too slow to send 7 requests within one rate-limit window")
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    r = c.get("/metadata/versions")
    if r.status == 429:
        assert r.headers["Retry-After"] == "1" and r.json() == P.TOO_MANY
    time.sleep(1.05)
    assert c.get("/metadata/versions").status == 200


def test_e9_identity_rate_limit_is_separate_and_20_per_second(make_emulator, client):
    c = client(make_emulator(rate_limits=True))
    start = time.monotonic()
    statuses = [c.token().status for _ in range(22)]
    if time.monotonic() - start > 0.8:
        pytest.skip("machine too slow to send 22 requests within one rate-limit window")
    assert statuses[:20] == [200] * 20 and statuses[20:] == [429, 429]
    r = c.token()
    assert r.json() == P.TOO_MANY_IDENTITY and r.headers["Retry-After"]
    assert c.get("/metadata/versions").status == 200       # the general bucket is untouched


def test_e9_identity_five_concurrent(make_emulator, client):
    emu = make_emulator(rate_limits=True, scenario_params={"token_delay": 0.6})
    c = client(emu)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(c.token(timeout=5).status)) for _ in range(7)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    for t in threads:
        t.join(5)
    assert sorted(results) == [200] * 5 + [429] * 2


# --- identity info, attested, scheduled events, load balancer ----------------------------------

def test_identity_info(vm, vmc):
    r = vmc.get("/metadata/identity/info", {"api-version": "2018-02-01"})
    assert r.status == 200 and r.json() == {"tenantId": vm.tenant_id}


def test_identity_info_without_system_identity(make_emulator, client):
    c = client(make_emulator(scenario="vm-user-assigned-only"))
    r = c.get("/metadata/identity/info", {"api-version": "2018-02-01"})
    assert r.status == 400 and r.json() == P.IDENTITY_NOT_FOUND


def test_attested_document_signature_is_clearly_fake(vm, vmc):
    r = vmc.get("/metadata/attested/document", {"api-version": "2021-12-13", "nonce": "1234567890"})
    assert r.status == 200
    doc = r.json()
    assert doc["encoding"] == "pkcs7"
    raw = base64.b64decode(doc["signature"])
    assert raw.startswith(b"IMDS-EMULATOR-FAKE-PKCS7 -- NOT A SIGNATURE")
    payload = json.loads(raw.split(b"\n", 1)[1])
    assert payload["nonce"] == "1234567890" and payload["vmId"] == vm.machine.vm_id
    assert payload["subscriptionId"] == vm.machine.subscription_id and "sku" in payload
    old = json.loads(base64.b64decode(vmc.get("/metadata/attested/document",
                                              {"api-version": "2018-10-01"}).json()["signature"]).split(b"\n", 1)[1])
    assert "subscriptionId" not in old and "sku" not in old and len(old["nonce"]) == 15


def test_attested_bad_nonce(vmc):
    assert vmc.get("/metadata/attested/document", {"api-version": "2021-12-13", "nonce": "x" * 33}).status == 400
    assert vmc.get("/metadata/attested/document", {"api-version": "2021-12-13", "nonce": "a-b"}).status == 400


def test_scheduled_events_empty_by_default(vmc):
    r = vmc.get("/metadata/scheduledevents", {"api-version": "2020-07-01"})
    doc = r.json()
    assert r.status == 200 and doc["Events"] == [] and isinstance(doc["DocumentIncarnation"], int)


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"StartRequests": "x"}', b'{"StartRequests": [{"Id": 1}]}'])
def test_e20_scheduled_events_malformed_post(vmc, body):
    r = vmc.request("POST", "/metadata/scheduledevents", {"api-version": "2020-07-01"}, body=body,
                    headers={"Content-Type": "application/json"})
    assert r.status == 400


def test_scheduled_events_post_needs_header(vmc):
    r = vmc.request("POST", "/metadata/scheduledevents", {"api-version": "2020-07-01"},
                    body=b'{"StartRequests":[]}', metadata=False)
    assert r.status == 400 and r.json() == P.MISSING_HEADER


def test_loadbalancer_document(vmc):
    r = vmc.get("/metadata/loadbalancer", {"api-version": "2020-10-01"})
    lb = r.json()["loadbalancer"]
    assert r.status == 200 and isinstance(lb["inboundRules"][0]["frontendPort"], int)
    assert set(lb) == {"publicIpAddresses", "inboundRules", "outboundRules"}


def test_token_missing_resource(vmc):
    r = vmc.get(TOKEN, {"api-version": "2018-02-01"})
    assert r.status == 400 and r.json() == P.RESOURCE_MISSING


def test_unknown_path_404_even_without_header(vmc):
    assert vmc.get("/metadata/nothing", metadata=False).status == 404


def test_keep_alive_serves_several_requests_on_one_connection(vm):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", vm.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/metadata/versions", headers={"Metadata": "true"})
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read()
    finally:
        conn.close()


def test_client_helper_roundtrip(vm):
    assert Client(vm.base_url).get("/metadata/versions").status == 200
