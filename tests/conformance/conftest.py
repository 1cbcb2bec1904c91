"""Fixtures for real-client conformance: azure-identity and MSAL Python against the emulator.

Every test starts from a clean environment (no managed-identity, Azure or proxy variables), so
the clients choose their source only from what the test sets, and no request can be sent to a
proxy. MSAL gets a ``requests.Session`` with ``trust_env=False`` and a default timeout.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import pytest
import requests


IN_NETNS = os.environ.get("IMDS_RUNBOOK_NETNS") == "1"
TOKENS_DIR = "/var/opt/azcmagent/tokens"
TOKENS_DIR_READY = IN_NETNS and os.environ.get("IMDS_RUNBOOK_TOKENS_DIR_MOUNTED") == "1"

CLEARED = (
    "AZURE_POD_IDENTITY_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AZUREPS_HOST_ENVIRONMENT",
    "AZURE_TOKEN_CREDENTIALS", "AZURE_USERNAME", "AZURE_PASSWORD",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
)


class TimeoutSession(requests.Session):
    """requests.Session that never waits without a deadline and ignores proxy settings."""

    def __init__(self, timeout: float | tuple[float, float] = (2.0, 5.0)) -> None:
        super().__init__()
        self.trust_env = False
        self.default_timeout = timeout

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, **kwargs)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    return monkeypatch


@pytest.fixture
def msal_client(clean_env) -> Callable[..., Any]:
    """``msal_client(identity=None, timeout=...)`` -> msal.ManagedIdentityClient (fresh cache)."""
    import msal

    sessions: list[requests.Session] = []

    def make(identity: Any = None, timeout: float | tuple[float, float] = (2.0, 5.0)) -> Any:
        session = TimeoutSession(timeout)
        sessions.append(session)
        return msal.ManagedIdentityClient(identity or msal.SystemAssignedManagedIdentity(), http_client=session)

    yield make
    for session in sessions:
        session.close()
