"""Step 4: instance metadata - the guide's exact request, the newest version, field checks,
and evidence that the responder really is IMDS / HIMDS."""

from __future__ import annotations

from typing import Any

from imds_helpers.model.answers import after_retries, classify
from imds_helpers.model.catalog import (META_INCOMPLETE, META_NEWEST_FAILED, META_NEWEST_OK, META_OK, META_VERSION_OLD,
                                  META_VERSION_REJECTED, META_VMID_MISMATCH, finding)
from imds_helpers.model.commands import http_get
from imds_helpers.model.endpoints import INSTANCE_API_VERSION, INSTANCE_PATH, VERSIONS_PATH
from imds_helpers.model.findings import CheckResult
from imds_helpers.model.evidence import Outcome
from imds_helpers.parsers.dmi import canonical_uuid, swap_uuid_fields

SEED_API_VERSION = INSTANCE_API_VERSION
METADATA_HEADERS = {"Metadata": "true"}
REQUIRED_FIELDS = ("vmId", "name", "location", "resourceId", "azEnvironment", "osType")
RESOURCE_TYPES = {"vm": "Microsoft.Compute/virtualMachines", "arc": "Microsoft.HybridCompute/machines"}


def _get(client: Any, endpoint: str, path: str, params: dict[str, str]) -> Outcome:
    return client.request(endpoint.rstrip("/") + path, params=params, headers=METADATA_HEADERS)


def check_instance(
    client: Any,
    endpoint: str,
    *,
    service: str = "vm",
    smbios_uuid: str | None = None,
    api_version: str = SEED_API_VERSION,
) -> tuple[CheckResult, ...]:
    """The guide's ``/metadata/instance?api-version=2019-11-01&format=json`` and, on VMs, the
    newest version the service lists. Returns one or two results."""
    params = {"api-version": api_version, "format": "json"}
    commands = http_get(endpoint, INSTANCE_PATH, params)
    outcome = _get(client, endpoint, INSTANCE_PATH, params)
    answer = classify(outcome, service=service)
    attempts = outcome.attempts
    retried_with: str | None = None
    if answer.code == META_VERSION_REJECTED:
        newest = _newest_versions(answer.body)
        if newest:
            retried_with = newest[0]
            params = {"api-version": retried_with, "format": "json"}
            retry = _get(client, endpoint, INSTANCE_PATH, params)
            attempts += retry.attempts
            retry_answer = classify(retry, service=service)
            if retry_answer.code is None:
                outcome, answer = retry, retry_answer
    elapsed = sum(a.elapsed_ms for a in attempts)
    if answer.code is not None:
        detail = answer.detail
        if retried_with:
            detail += f"; also failed with listed version {retried_with}"
        return (finding("metadata.instance", answer.code, detail, elapsed_ms=elapsed,
                        evidence={"api_version": api_version, "error_kind": answer.kind},
                        commands=commands, attempts=attempts),)
    document = answer.body
    evidence = instance_evidence(document, outcome, service=service, smbios_uuid=smbios_uuid)
    problems = evidence.pop("problems")
    if retried_with:
        code = META_VERSION_OLD
        detail = f"api-version {api_version} rejected; {retried_with} (listed as newest) works"
    elif evidence.get("vmid_matches_smbios") is False:
        code, detail = META_VMID_MISMATCH, f"vmId {evidence.get('vmId')} != SMBIOS {smbios_uuid}"
    elif problems:
        code, detail = META_INCOMPLETE, "; ".join(problems)
    else:
        code = META_OK
        detail = f"{evidence.get('name')} in {evidence.get('location')} ({evidence.get('osType')}), api-version {params['api-version']}"
    result = finding("metadata.instance", code, detail, elapsed_ms=elapsed, evidence=evidence,
                     commands=http_get(endpoint, INSTANCE_PATH, params), attempts=attempts)
    # Only the answered request's own retries are a flap; a rejected api-version is META-002's.
    results = [after_retries(result, outcome, service=service)]
    if service == "vm":
        results.append(check_newest_version(client, endpoint, service=service))
    return tuple(results)


def check_newest_version(client: Any, endpoint: str, *, service: str = "vm") -> CheckResult:
    """``/metadata/versions``, then the instance document with the newest listed version."""
    versions = _get(client, endpoint, VERSIONS_PATH, {})
    answer = classify(versions, service=service)
    listed = answer.body.get("apiVersions") if isinstance(answer.body, dict) else None
    if answer.code is not None or not isinstance(listed, list) or not listed:
        detail = answer.detail if answer.code else "no apiVersions list in /metadata/versions"
        return finding("metadata.newest", META_NEWEST_FAILED, detail, elapsed_ms=versions.elapsed_ms,
                       commands=http_get(endpoint, VERSIONS_PATH, {}), attempts=versions.attempts)
    newest = max(str(v) for v in listed)
    params = {"api-version": newest, "format": "json"}
    outcome = _get(client, endpoint, INSTANCE_PATH, params)
    instance = classify(outcome, service=service)
    attempts = versions.attempts + outcome.attempts
    elapsed = versions.elapsed_ms + outcome.elapsed_ms
    code = META_NEWEST_OK if instance.code is None and isinstance(instance.body, dict) else META_NEWEST_FAILED
    detail = f"api-version {newest}: " + ("instance document returned" if code == META_NEWEST_OK else instance.detail)
    result = finding("metadata.newest", code, detail, elapsed_ms=elapsed,
                     evidence={"newest_version": newest, "versions_listed": len(listed)},
                     commands=http_get(endpoint, INSTANCE_PATH, params), attempts=attempts)
    return after_retries(result, versions, outcome, service=service)


def _newest_versions(body: Any) -> list[str]:
    versions = body.get("newest-versions") if isinstance(body, dict) else None
    return [str(v) for v in versions] if isinstance(versions, list) else []


def instance_evidence(document: Any, outcome: Outcome, *, service: str, smbios_uuid: str | None) -> dict[str, Any]:
    """Fields worth showing, responder evidence, and a list of problems (pure; tested directly)."""
    problems: list[str] = []
    compute = document.get("compute") if isinstance(document, dict) else None
    if not isinstance(compute, dict):
        return {"problems": ["no 'compute' object in the document"], "server": outcome.header("Server")}
    evidence: dict[str, Any] = {name: compute.get(name) for name in REQUIRED_FIELDS}
    evidence.update({"vmSize": compute.get("vmSize"), "sku": compute.get("sku"), "server": outcome.header("Server")})
    missing = [name for name in REQUIRED_FIELDS if not compute.get(name)]
    if missing:
        problems.append("missing or empty: " + ", ".join(missing))
    not_strings = [k for k, v in compute.items() if isinstance(v, (int, float, bool))]
    if not_strings:
        problems.append("non-string scalars (IMDS sends strings): " + ", ".join(sorted(not_strings)[:5]))
    resource_id = str(compute.get("resourceId") or "")
    expected_type = RESOURCE_TYPES.get(service)
    if resource_id and expected_type and f"/providers/{expected_type.lower()}/" not in resource_id.lower():
        problems.append(f"resourceId is not a {expected_type} resource")
    vm_id = str(compute.get("vmId") or "")
    if vm_id and not _is_uuid(vm_id):
        problems.append("vmId is not a GUID")
    network = document.get("network")
    if service == "vm":
        interfaces = network.get("interface") if isinstance(network, dict) else None
        if not isinstance(interfaces, list) or not interfaces:
            problems.append("no network interface in the document")
        else:
            evidence["interfaces"] = len(interfaces)
            evidence["private_ips"] = _private_ips(interfaces)
    evidence["vmid_matches_smbios"] = vmid_matches_smbios(vm_id, smbios_uuid) if smbios_uuid and vm_id else None
    evidence["problems"] = problems
    return evidence


def _private_ips(interfaces: list[Any]) -> list[Any]:
    """``network.interface[].ipv4.ipAddress[].privateIpAddress``, skipping whatever has another shape."""
    found: list[Any] = []
    for nic in interfaces:
        ipv4 = nic.get("ipv4") if isinstance(nic, dict) else None
        addresses = ipv4.get("ipAddress") if isinstance(ipv4, dict) else None
        if isinstance(addresses, list):
            found += [ip.get("privateIpAddress") for ip in addresses if isinstance(ip, dict)]
    return found[:8]


def _is_uuid(value: str) -> bool:
    return canonical_uuid(value) is not None


def vmid_matches_smbios(vm_id: str, smbios_uuid: str) -> bool:
    """Azure's vmId equals the SMBIOS UUID, on Gen1 VMs with the first three fields byte-swapped."""
    vm, sm = canonical_uuid(vm_id), canonical_uuid(smbios_uuid)
    if vm is None or sm is None:
        return False
    return vm == sm or swap_uuid_fields(vm) == sm
