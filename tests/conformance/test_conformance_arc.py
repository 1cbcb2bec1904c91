"""Real clients against the Arc-mode emulator: the 401 challenge flow end to end, and what
azure-identity / MSAL do with each hostile or broken challenge.

Two set-ups, both with IDENTITY_ENDPOINT + IMDS_ENDPOINT set as an Arc agent sets them:
  netns    the real layout: localhost:40342 and key files in /var/opt/azcmagent/tokens
           (a private tmpfs inside tests/isolated.sh); no patching at all
  patched  any port and a temp key dir; MSAL's Linux key directory is patched to it, as MSAL's
           and azure-identity's own tests do
MSAL rebuilds the key path as <platform dir>/<basename stem>.key, so the realm's directory
never matters to it - several tests below pin exactly that behaviour.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from typing import Any, Callable

import msal
import msal.managed_identity as msal_mi
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential

TOKENS_DIR = "/var/opt/azcmagent/tokens"
TOKENS_DIR_READY = (os.environ.get("IMDS_RUNBOOK_NETNS") == "1"
                    and os.environ.get("IMDS_RUNBOOK_TOKENS_DIR_MOUNTED") == "1")

ARM = "https://management.azure.com/"
SCOPE = ARM + ".default"
TOKEN_PATH = "/metadata/identity/oauth2/token"


@pytest.fixture(params=["patched", pytest.param("netns", marks=pytest.mark.skipif(
    not TOKENS_DIR_READY, reason="needs tests/isolated.sh with /var/opt/azcmagent/tokens mounted "
    "(IMDS_RUNBOOK_NETNS=1, IMDS_RUNBOOK_TOKENS_DIR_MOUNTED=1)"))])
def arc_target(request, make_emulator, clean_env) -> Callable[..., Any]:
    def start(scenario: str | None = None, **params: Any):
        if request.param == "netns":
            emu = make_emulator(mode="arc", scenario=scenario, host="127.0.0.1", port=40342,
                                key_dir=TOKENS_DIR, scenario_params=params)
            base = "http://localhost:40342"
        else:
            emu = make_emulator(mode="arc", scenario=scenario, scenario_params=params)
            clean_env.setitem(msal_mi._supported_arc_platforms_and_their_prefixes, "linux", emu.key_dir)
            base = emu.base_url
        clean_env.setenv("IDENTITY_ENDPOINT", base + TOKEN_PATH)
        clean_env.setenv("IMDS_ENDPOINT", base)
        return emu

    return start


def _statuses(emu) -> list[int | None]:
    return [e["status"] for e in emu.request_log]


# --- the healthy flow ------------------------------------------------------------------------

def test_azure_identity_challenge_flow(arc_target):
    emu = arc_target()
    token = ManagedIdentityCredential().get_token(SCOPE)
    assert emu.canary in token.token and token.expires_on > time.time() + 3600
    assert _statuses(emu) == [401, 200]
    first, second = emu.request_log
    assert first["query"]["api-version"] == "2020-06-01" and "Authorization" not in first["headers"]
    assert second["headers"]["Authorization"] == "<redacted>"
    assert emu.pending_key_files == [] and os.listdir(emu.key_dir) == []     # single use
    assert emu.canary not in repr(emu.request_log)


def test_msal_challenge_flow(arc_target, msal_client):
    emu = arc_target()
    result = msal_client().acquire_token_for_client(resource=ARM)
    assert emu.canary in result["access_token"] and isinstance(result["expires_in"], int)
    assert _statuses(emu) == [401, 200]


def test_user_assigned_refused_before_challenge(arc_target, msal_client):
    emu = arc_target()
    result = msal_client(msal.UserAssignedManagedIdentity(client_id="11111111-2222-3333-4444-555555555555")
                         ).acquire_token_for_client(resource=ARM)
    assert result["error"] == "invalid_request" and "not supported" in result["error_description"]
    assert _statuses(emu) == [400] and os.listdir(emu.key_dir) == []


def test_legacy_agent_ignoring_selector_is_caught_by_msal(arc_target, msal_client):
    arc_target("arc-legacy-agent")
    client = msal_client(msal.UserAssignedManagedIdentity(client_id="11111111-2222-3333-4444-555555555555"))
    with pytest.raises(msal.ManagedIdentityError, match="did not confirm the requested user-assigned"):
        client.acquire_token_for_client(resource=ARM)


# --- broken or hostile challenges: what MSAL (and azure-identity on top of it) does ----------------

@pytest.mark.parametrize("scenario", ["arc-no-challenge-header", "arc-realm-with-equals"])
def test_unparsable_challenge(arc_target, msal_client, scenario):
    arc_target(scenario)
    with pytest.raises(msal.ManagedIdentityError, match="Unrecognizable WWW-Authenticate header"):
        msal_client().acquire_token_for_client(resource=ARM)
    with pytest.raises(Exception, match="Unrecognizable WWW-Authenticate header"):
        ManagedIdentityCredential().get_token(SCOPE)


@pytest.mark.parametrize("scenario", ["arc-key-too-large", "arc-realm-huge-file"])
def test_key_over_4kb_refused(arc_target, msal_client, scenario):
    emu = arc_target(scenario)
    with pytest.raises(msal.ManagedIdentityError, match="shall not be larger than 4KB"):
        msal_client().acquire_token_for_client(resource=ARM)
    assert _statuses(emu) == [401]                   # the secret was never sent


@pytest.mark.parametrize("scenario", ["arc-realm-outside-tokens-dir", "arc-realm-not-key", "arc-realm-dev-zero"])
def test_msal_rebuilds_path_inside_tokens_dir(arc_target, msal_client, scenario):
    """MSAL ignores the realm's directory and adds .key: the file it looks for does not exist."""
    emu = arc_target(scenario)
    with pytest.raises(FileNotFoundError) as info:
        msal_client().acquire_token_for_client(resource=ARM)
    assert os.path.dirname(info.value.filename) == emu.key_dir and info.value.filename.endswith(".key")
    assert _statuses(emu) == [401]


def test_traversal_realm_harmless_to_msal(arc_target, msal_client):
    emu = arc_target("arc-realm-traversal")
    assert emu.canary in msal_client().acquire_token_for_client(resource=ARM)["access_token"]


def test_msal_follows_a_symlinked_key_file(arc_target, msal_client):
    """MSAL does not refuse a .key symlink pointing outside the tokens directory (it reads the
    target) - a diagnostic check must flag symlinks itself."""
    emu = arc_target("arc-realm-symlink-out")
    assert emu.canary in msal_client().acquire_token_for_client(resource=ARM)["access_token"]


def test_directory_realm(arc_target, msal_client):
    arc_target("arc-realm-directory")
    with pytest.raises(IsADirectoryError):
        msal_client().acquire_token_for_client(resource=ARM)


def test_fifo_realm_blocks_msal_until_a_writer_appears(arc_target, msal_client):
    emu = arc_target("arc-realm-fifo")
    client = msal_client()
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["result"] = client.acquire_token_for_client(resource=ARM)
        except Exception as err:  # noqa: BLE001 - reported below
            outcome["error"] = err

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(0.7)
    assert worker.is_alive(), "MSAL should be stuck in open() on the FIFO"
    (fifo,) = [p for p in emu.pending_key_files if stat.S_ISFIFO(os.lstat(p).st_mode)]
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)      # a writer: MSAL's open() returns, reads EOF
    os.close(fd)
    worker.join(5)
    assert not worker.is_alive()
    assert outcome.get("result", {}).get("error") == "invalid_request"     # empty secret -> new 401


def test_unreadable_key(arc_target, msal_client):
    emu = arc_target("arc-key-unreadable")
    if os.geteuid() == 0:
        # root bypasses file modes: MSAL reads the 0000 file and succeeds
        assert emu.canary in msal_client().acquire_token_for_client(resource=ARM)["access_token"]
    else:
        with pytest.raises(PermissionError):
            msal_client().acquire_token_for_client(resource=ARM)


@pytest.mark.parametrize("scenario,needle", [
    ("arc-wrong-secret", "unauthorized_client"),
    ("arc-agent-disconnected", "certificate has expired"),
    ("arc-unknown-resource", "AADSTS500011"),
])
def test_errors_after_the_challenge(arc_target, msal_client, scenario, needle):
    emu = arc_target(scenario)
    result = msal_client().acquire_token_for_client(resource=ARM)
    assert result["error"] == "invalid_request" and needle in result["error_description"]
    assert _statuses(emu)[0] == 401 and len(emu.request_log) == 2
    with pytest.raises(ClientAuthenticationError, match=needle):
        ManagedIdentityCredential().get_token(SCOPE)
