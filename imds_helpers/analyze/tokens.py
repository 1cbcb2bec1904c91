"""Step 5: managed-identity tokens on an Azure VM.

System-assigned for the guide's audience (management) and the one Azure Monitor Agent uses
(monitor), each user-assigned identity asked for, and the identity AMA is configured with.
Tokens are decoded for display (claims only) and dropped; they never reach a result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit

from imds_helpers.model.answers import Answer, after_retries, classify, error_fields, says
from imds_helpers.model.catalog import (HTTP_UNEXPECTED, TOKEN_AMA_CONFIG_UNREADABLE, TOKEN_AMA_IDENTITY,
                                  TOKEN_AUDIENCE_UNKNOWN, TOKEN_NO_IDENTITY, TOKEN_OK, TOKEN_REJECTED,
                                  TOKEN_SYSTEM_OFF, TOKEN_UAMI_AMBIGUOUS, TOKEN_UAMI_NOT_ATTACHED, TOKEN_UNUSABLE,
                                  finding)
from imds_helpers.model.claims import decode_claims
from imds_helpers.model.commands import http_get
from imds_helpers.model.endpoints import AUDIENCE_LABELS, MANAGEMENT, MONITOR, TOKEN_API_VERSION, TOKEN_PATH
from imds_helpers.model.findings import CheckResult, Status
from imds_helpers.model.taxonomy import ErrorKind

VM_TOKEN_API_VERSION = TOKEN_API_VERSION
DEFAULT_RESOURCES = (MANAGEMENT, MONITOR)
AMA_CONFIG_PATH = "/etc/default/azuremonitoragent"
# AMA's selector names (MANAGED_IDENTITY="<name>#<id>") -> IMDS query parameter
AMA_SELECTORS = {"mi_res_id": "msi_res_id", "msi_res_id": "msi_res_id", "client_id": "client_id", "object_id": "object_id"}


@dataclass(frozen=True)
class Identity:
    """Which identity to ask for: ``selector`` is None for system-assigned."""

    selector: str | None = None     # client_id | object_id | msi_res_id
    value: str | None = None
    source: str = "argument"        # argument | ama-config

    @property
    def label(self) -> str:
        if self.selector is None:
            return "system"
        short = self.value.rsplit("/", 1)[-1] if self.selector == "msi_res_id" else (self.value or "")[:8]
        return f"{self.selector}:{short}"


def parse_ama_identity(text: str) -> Identity | None | str:
    """``MANAGED_IDENTITY`` from AMA's defaults file: an Identity, None if unset, or the raw
    value when it cannot be parsed (pure)."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):].strip()
        if not line.startswith("MANAGED_IDENTITY="):
            continue
        import shlex   # only when AMA's file sets it: the quick check does not pay for shlex

        try:
            value = " ".join(shlex.split(line.split("=", 1)[1]))
        except ValueError:
            return line.split("=", 1)[1]
        if not value:
            return None
        name, sep, ident = value.partition("#")
        selector = AMA_SELECTORS.get(name.strip().lower())
        if not sep or selector is None or not ident.strip():
            return value
        return Identity(selector, ident.strip(), source="ama-config")
    return None


def read_ama_identity(machine: Any, path: str = AMA_CONFIG_PATH) -> Identity | None | str:
    """AMA's configured identity as the machine's file says (None when there is no file)."""
    text, _ = machine.read_file(path, 65536)
    return None if text is None else parse_ama_identity(text)


def _audience_label(resource: str) -> str:
    host = urlsplit(resource).hostname or resource
    return AUDIENCE_LABELS.get(host, re.sub(r"[^\w.-]", "_", host))


def check_token(
    client: Any,
    endpoint: str,
    resource: str,
    identity: Identity = Identity(),
    *,
    user_assigned_checked: bool = False,
) -> CheckResult:
    """One token request; the result holds decoded claims, never the token."""
    params = {"api-version": VM_TOKEN_API_VERSION, "resource": resource}
    if identity.selector:
        params[identity.selector] = identity.value or ""
    check_id = f"token.{identity.label}.{_audience_label(resource)}"
    outcome = client.request(endpoint.rstrip("/") + TOKEN_PATH, params=params, headers={"Metadata": "true"})
    answer = classify(outcome, service="vm")
    commands = http_get(endpoint, TOKEN_PATH, params)
    evidence = {"resource": resource, "identity": identity.label, "identity_source": identity.source}
    code, status, detail = _interpret(answer, identity, user_assigned_checked)
    if code == TOKEN_OK:
        claims = (decode_claims(str(answer.body.get("access_token", "")), now=outcome.received_at)
                  if isinstance(answer.body, dict) else {})
        if "error" in claims:
            code, status, detail = TOKEN_UNUSABLE, None, claims["error"]
        else:
            evidence.update(claims=claims, expires_in=answer.body.get("expires_in"), token_type=answer.body.get("token_type"))
            detail = _claims_line(claims)
            if identity.source == "ama-config":
                code = TOKEN_AMA_IDENTITY
    result = finding(check_id, code, detail, status=status, elapsed_ms=outcome.elapsed_ms,
                     evidence=evidence, commands=commands, attempts=outcome.attempts)
    return after_retries(result, outcome, service="vm")


def _interpret(answer: Answer, identity: Identity, user_assigned_checked: bool) -> tuple[str, Status | None, str]:
    if answer.code is not None and answer.code != HTTP_UNEXPECTED:
        return answer.code, None, answer.detail
    body = answer.body
    if answer.code is None:
        if isinstance(body, dict) and body.get("access_token") and body.get("expires_in"):
            return TOKEN_OK, None, ""
        return TOKEN_UNUSABLE, None, "200 without access_token/expires_in"
    error, description = error_fields(body)
    said = f"{error}: {description}"[:200]
    if says(ErrorKind.IDENTITY_NOT_FOUND, body):
        if identity.selector:
            return TOKEN_UAMI_NOT_ATTACHED, None, f"{identity.selector} {identity.value}: {said}"
        if user_assigned_checked:
            return TOKEN_SYSTEM_OFF, None, said
        return TOKEN_NO_IDENTITY, None, said
    if says(ErrorKind.MULTIPLE_IDENTITIES, body):
        return TOKEN_UAMI_AMBIGUOUS, (Status.WARN if user_assigned_checked else None), said
    if says(ErrorKind.INVALID_RESOURCE, body):
        return TOKEN_AUDIENCE_UNKNOWN, None, said.split("\\r\\n")[0].split("\r\n")[0]
    return TOKEN_REJECTED, None, said


def _claims_line(claims: dict) -> str:
    mirid = str(claims.get("xms_mirid", ""))
    who = mirid.rsplit("/", 1)[-1] if mirid else claims.get("oid", "?")
    return f"aud={claims.get('aud')} identity={who} expires in {claims.get('expires_in_s', '?')} s"


def check_vm_tokens(
    client: Any,
    endpoint: str,
    *,
    resources: Sequence[str] = DEFAULT_RESOURCES,
    identities: Iterable[Identity] = (),
    ama_identity: Identity | None | str = None,
) -> tuple[CheckResult, ...]:
    """System-assigned for every resource, then each user-assigned identity, then AMA's own."""
    identities = list(identities)
    results: list[CheckResult] = []
    ama_named = isinstance(ama_identity, Identity)
    for resource in resources:
        results.append(check_token(client, endpoint, resource, user_assigned_checked=bool(identities) or ama_named))
    for identity in identities:
        for resource in resources:
            results.append(check_token(client, endpoint, resource, identity))
    if isinstance(ama_identity, str):
        results.append(finding("token.ama-config", TOKEN_AMA_CONFIG_UNREADABLE, f"MANAGED_IDENTITY={ama_identity[:120]!r}",
                               evidence={"path": AMA_CONFIG_PATH}))
    elif ama_named and not any(i.value and ama_identity.value and i.value.lower() == ama_identity.value.lower() for i in identities):
        results.append(check_token(client, endpoint, MONITOR, ama_identity))
    return tuple(results)
