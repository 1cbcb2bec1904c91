"""Real clients (azure-identity ManagedIdentityCredential, MSAL ManagedIdentityClient) against the
VM-mode emulator: tokens for every identity kind, and the errors they report on Azure.

Two ways to reach the emulator:
  override  loopback port + AZURE_POD_IDENTITY_AUTHORITY_HOST (runs everywhere)
  default   the real 169.254.169.254:80 with no override (only inside tests/isolated.sh)
Retrying scenarios use MSAL (no retries) or short timings, so the module stays fast.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any, Callable

import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ChainedTokenCredential, CredentialUnavailableError, ManagedIdentityCredential

IN_NETNS = os.environ.get("IMDS_RUNBOOK_NETNS") == "1"

ARM = "https://management.azure.com/"
SCOPE = ARM + ".default"
netns_only = pytest.mark.skipif(not IN_NETNS, reason="needs tests/isolated.sh (IMDS_RUNBOOK_NETNS=1): "
                                "the emulator must own 169.254.169.254:80")


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture(params=["override", pytest.param("default", marks=netns_only)])
def vm_target(request, make_emulator, clean_env) -> Callable[..., Any]:
    """``start(scenario=None, **params)`` -> Emulator reachable the way ``request.param`` says."""

    def start(scenario: str | None = None, **params: Any):
        if request.param == "default":
            emu = make_emulator(mode="vm", scenario=scenario, host="169.254.169.254", port=80,
                                scenario_params=params)
        else:
            emu = make_emulator(mode="vm", scenario=scenario, scenario_params=params)
            clean_env.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.base_url)
        return emu

    start.variant = request.param  # type: ignore[attr-defined]
    return start


@pytest.fixture
def vm_override(make_emulator, clean_env) -> Callable[..., Any]:
    def start(scenario: str | None = None, **params: Any):
        emu = make_emulator(mode="vm", scenario=scenario, scenario_params=params)
        clean_env.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.base_url)
        return emu
    return start


def _selector(emu, kind: str) -> tuple[dict[str, str], str | None, str]:
    """(azure identity kwargs, msal kind, expected object id) for an identity kind."""
    if kind == "system":
        return {}, None, emu.identities["system_assigned"]["object_id"]
    uami = emu.identities["user_assigned"][0]
    value = uami["msi_res_id" if kind == "resource_id" else kind]
    return {kind: value}, kind, uami["object_id"]


def _azure_credential(selector: dict[str, str]) -> ManagedIdentityCredential:
    if not selector:
        return ManagedIdentityCredential()
    if "client_id" in selector:
        return ManagedIdentityCredential(client_id=selector["client_id"])
    return ManagedIdentityCredential(identity_config=selector)


# --- success ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["system", "client_id", "object_id", "resource_id"])
def test_azure_identity_gets_token(vm_target, kind):
    emu = vm_target()
    selector, _, object_id = _selector(emu, kind)
    token = _azure_credential(selector).get_token(SCOPE)
    assert emu.canary in token.token
    assert _claims(token.token)["oid"] == object_id
    assert token.expires_on > time.time() + 3600
    last = emu.request_log[-1]
    assert last["query"]["api-version"] == "2018-02-01" and last["headers"]["Metadata"] == "true"
    assert last["query"]["resource"] == ARM.rstrip("/")         # azure-identity strips "/.default"
    wire = {"client_id": "client_id", "object_id": "object_id", "resource_id": "msi_res_id"}.get(kind)
    if wire:
        assert wire in last["query"]


@pytest.mark.parametrize("kind", ["system", "client_id", "object_id", "resource_id"])
def test_msal_gets_token(vm_target, msal_client, kind):
    emu = vm_target()
    selector, msal_kind, object_id = _selector(emu, kind)
    identity = (msal.UserAssignedManagedIdentity(**{msal_kind: list(selector.values())[0]})
                if msal_kind else msal.SystemAssignedManagedIdentity())
    result = msal_client(identity).acquire_token_for_client(resource=ARM)
    assert "access_token" in result, result
    assert emu.canary in result["access_token"] and _claims(result["access_token"])["oid"] == object_id
    assert result["token_type"] == "Bearer" and 86000 < result["expires_in"] <= 86399
    assert emu.request_log[-1]["headers"]["x-client-SKU"] == "MSAL.Python"


@netns_only
def test_chain_probe_then_token_on_the_real_address(make_emulator, clean_env):
    """In a chain azure-identity first probes IMDS without the Metadata header (400 = present)."""
    emu = make_emulator(mode="vm", host="169.254.169.254", port=80)
    token = ChainedTokenCredential(ManagedIdentityCredential()).get_token(SCOPE)
    assert emu.canary in token.token
    probe, real = emu.request_log[0], emu.request_log[-1]
    assert "Metadata" not in probe["headers"] and probe["status"] == 400 and real["status"] == 200


@netns_only
def test_chain_probe_sees_docker_desktop_403(make_emulator, clean_env):
    make_emulator(mode="vm", scenario="vm-docker-desktop-403", host="169.254.169.254", port=80)
    with pytest.raises(ClientAuthenticationError, match="unreachable"):
        ChainedTokenCredential(ManagedIdentityCredential()).get_token(SCOPE)


# --- errors as the clients report them on Azure ---------------------------------------------------

def test_no_identity(vm_override, msal_client):
    vm_override("vm-no-identity")
    with pytest.raises(CredentialUnavailableError, match="Identity not found"):
        ManagedIdentityCredential().get_token(SCOPE)
    assert msal_client().acquire_token_for_client(resource=ARM) == {
        "error": "invalid_request", "error_description": "Identity not found"}


def test_multiple_user_assigned(vm_override, msal_client):
    emu = vm_override("vm-multiple-user-assigned")
    with pytest.raises(CredentialUnavailableError, match="Multiple user assigned identities exist"):
        ManagedIdentityCredential().get_token(SCOPE)
    result = msal_client().acquire_token_for_client(resource=ARM)
    assert result["error"] == "invalid_request" and "Multiple user assigned" in result["error_description"]
    second = emu.identities["user_assigned"][1]
    token = ManagedIdentityCredential(client_id=second["client_id"]).get_token(SCOPE)
    assert _claims(token.token)["oid"] == second["object_id"]


def test_unknown_resource(vm_override, msal_client):
    vm_override("vm-unknown-resource")
    with pytest.raises(CredentialUnavailableError, match="invalid_resource.*AADSTS500011"):
        ManagedIdentityCredential().get_token(SCOPE)
    result = msal_client().acquire_token_for_client(resource=ARM)
    assert result["error"] == "invalid_resource" and result["error_description"].startswith("AADSTS500011")


def test_throttled_msal_replays_429_without_asking_again(vm_override, msal_client):
    emu = vm_override("vm-throttled")
    client = msal_client()
    first = client.acquire_token_for_client(resource=ARM)
    second = client.acquire_token_for_client(resource=ARM)
    assert first["error"] == second["error"] == "too_many_requests"
    assert len(emu.request_log) == 1        # MSAL's throttle cache honours Retry-After


def test_updating_410_then_ok_msal(vm_override, msal_client):
    vm_override("vm-updating", for_seconds=0.5)
    client = msal_client()
    assert "error" in client.acquire_token_for_client(resource=ARM)
    time.sleep(0.55)
    assert "access_token" in client.acquire_token_for_client(resource=ARM)


def test_transient_5xx_azure_identity_retries_through(vm_override):
    emu = vm_override("vm-transient-5xx")
    start = time.monotonic()
    token = ManagedIdentityCredential().get_token(SCOPE)
    assert emu.canary in token.token and time.monotonic() - start < 10
    assert [e["status"] for e in emu.request_log] == [500, 503, 200]


def test_token_404_then_ok_azure_identity_retries(vm_override):
    emu = vm_override("vm-token-404-then-ok")
    assert emu.canary in ManagedIdentityCredential().get_token(SCOPE).token
    assert [e["status"] for e in emu.request_log] == [404, 200]


def test_identity_propagating(vm_override, msal_client):
    vm_override("vm-identity-propagating", for_seconds=0.5)
    with pytest.raises(CredentialUnavailableError, match="Identity not found"):
        ManagedIdentityCredential().get_token(SCOPE)           # 400 is not retried
    client = msal_client()
    assert client.acquire_token_for_client(resource=ARM)["error_description"] == "Identity not found"
    time.sleep(0.55)
    assert "access_token" in client.acquire_token_for_client(resource=ARM)


def test_docker_desktop_403(vm_override, msal_client):
    vm_override("vm-docker-desktop-403")
    with pytest.raises(CredentialUnavailableError, match="unreachable network"):
        ManagedIdentityCredential().get_token(SCOPE)
    assert "unreachable network" in msal_client().acquire_token_for_client(resource=ARM)["error"]


def test_not_imds_html(vm_override, msal_client):
    vm_override("vm-not-imds-html")
    with pytest.raises(CredentialUnavailableError, match="authentication unavailable"):
        ManagedIdentityCredential().get_token(SCOPE)
    with pytest.raises(ValueError):                      # json.JSONDecodeError
        msal_client().acquire_token_for_client(resource=ARM)


def test_malformed_json(vm_override, msal_client):
    """azure-core decodes application/json itself and fails with the body in the message - which
    here holds a token: a diagnostic tool must redact exception text, not only response fields."""
    emu = vm_override("vm-malformed-json")
    with pytest.raises(ClientAuthenticationError, match="JSON is invalid") as info:
        ManagedIdentityCredential().get_token(SCOPE)
    assert emu.canary in str(info.value)
    with pytest.raises(ValueError):
        msal_client().acquire_token_for_client(resource=ARM)


def test_forwarded_rejected(vm_override, msal_client):
    vm_override("vm-forwarded-rejected")
    with pytest.raises(CredentialUnavailableError, match="X-Forwarded-For"):
        ManagedIdentityCredential().get_token(SCOPE)
    assert msal_client().acquire_token_for_client(resource=ARM)["error"] == "invalid_request"


@pytest.mark.parametrize("scenario,exc", [
    ("vm-connection-reset", requests.ConnectionError),
    ("vm-accept-then-hang", requests.Timeout),
    ("vm-slow-drip", requests.RequestException),
    ("vm-truncated-body", requests.RequestException),
])
def test_transport_faults_msal(vm_override, msal_client, scenario, exc):
    vm_override(scenario)
    start = time.monotonic()
    with pytest.raises(exc):
        msal_client(timeout=(1.0, 0.5)).acquire_token_for_client(resource=ARM)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("scenario", ["vm-old-api-versions", "vm-oversized-body"])
def test_token_path_unaffected(vm_override, msal_client, scenario):
    emu = vm_override(scenario)
    assert emu.canary in msal_client().acquire_token_for_client(resource=ARM)["access_token"]
    assert emu.canary in ManagedIdentityCredential().get_token(SCOPE).token
