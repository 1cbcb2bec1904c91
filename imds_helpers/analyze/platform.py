"""Which metadata service this machine should use, and why: Azure VM (IMDS at
``http://169.254.169.254``), Azure Arc-enabled server (HIMDS at ``http://localhost:40342``),
both, or neither.

Evidence, each recorded whether or not it is conclusive:

* DMI chassis asset tag ``7783-7084-3265-9085-8269-3286-77`` - proof of an Azure VM.
  Hyper-V vendor/product strings are only a hint; the SMBIOS UUID is kept for a vmId
  cross-check against IMDS later.
* The Arc agent's ``himds`` binary on disk (installed, not just running) and the state of
  its service (``himdsd`` on Linux, ``himds`` on Windows).
* Environment: ``IDENTITY_ENDPOINT`` + ``IMDS_ENDPOINT`` (Arc); ``IDENTITY_HEADER``,
  ``MSI_ENDPOINT``, ``MSI_SECRET``, ``IDENTITY_SERVER_THUMBPRINT``, ``AZUREPS_HOST_ENVIRONMENT``
  (App Service, Functions, Azure ML, Service Fabric, Cloud Shell - hosted identity endpoints
  that are not this tool's target); ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` (SDKs send token
  requests elsewhere).
* Container markers (``/.dockerenv``, ``/run/.containerenv``, cgroup paths,
  ``KUBERNETES_SERVICE_HOST``): a container reaches IMDS only through the host's NAT, and
  ``localhost`` inside it is not the host's HIMDS.

Choosing the endpoint - an explicit choice always wins:

1. ``endpoint=`` argument;
2. environment variable ``IMDS_RUNBOOK_ENDPOINT`` - the one documented override, used to
   point the tool at an emulator (e.g. ``IMDS_RUNBOOK_ENDPOINT=http://127.0.0.1:8080``);
3. ``target="vm"`` / ``"arc"``: that service's default address (Arc: ``IMDS_ENDPOINT`` when set);
4. ``target="auto"``: Arc when only Arc is detected; when both are, Arc if its service runs
   (as Azure Monitor Agent decides), else IMDS; otherwise IMDS.

Files, commands (systemctl, sc) and the environment are the host's answers (the live machine
or its evidence): a missing binary, a permission error or a timeout is evidence, never raised.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from imds_helpers.model.catalog import (PLAT_ARC, PLAT_ARC_ENV_UNSET, PLAT_ARC_SERVICE_STOPPED, PLAT_BOTH, PLAT_CONTAINER,
                                  PLAT_CONTAINER_EXPLICIT, PLAT_EXPLICIT, PLAT_HOSTED, PLAT_NEITHER,
                                  PLAT_SDK_REDIRECT, PLAT_VM, finding)
from imds_helpers.model.endpoints import (ENV_PRESENCE, ENV_SHOWN, HIMDS_BASE_URL, HIMDS_BINARY_LINUX, HIMDS_BINARY_WINDOWS_SUBPATH, HIMDS_PORT,
                                    IDENTITY_ENDPOINT_ENV, IDENTITY_HEADER_ENV, IDENTITY_SERVER_THUMBPRINT_ENV,
                                    IMDS_BASE_URL, IMDS_ENDPOINT_ENV, MSI_ENDPOINT_ENV, MSI_SECRET_ENV, OVERRIDE_ENV)
from imds_helpers.model.errors import UsageError
from imds_helpers.model.findings import CheckResult, Commands
from imds_helpers.model.evidence import COMMAND_TIMEOUT, HIMDS_STATE_LINUX, LINUX_HIMDS_UNIT, CommandOutput
from imds_helpers.parsers.container import parse_cgroup
from imds_helpers.parsers.dmi import is_azure_asset_tag, looks_like_hyperv, parse_dmi_value, vmid_candidates
from imds_helpers.parsers.services import ServiceState, parse_sc_query, parse_systemctl_show
from imds_helpers.model.redact import hide_url_credentials

IMDS_ENDPOINT = IMDS_BASE_URL
HIMDS_ENDPOINT = HIMDS_BASE_URL
# PowerShell needs 1-3 s just to start on a cold VM; 2 s would time out on healthy machines.
POWERSHELL_TIMEOUT = 6.0
LINUX_HIMDS = HIMDS_BINARY_LINUX
WINDOWS_HIMDS_SERVICE = "himds"
TARGETS = ("auto", "vm", "arc")

# Hosted managed-identity environments (MSAL's source order), with the variables that mark them.
_HOSTED = (
    ("Service Fabric", (IDENTITY_ENDPOINT_ENV, IDENTITY_HEADER_ENV, IDENTITY_SERVER_THUMBPRINT_ENV)),
    ("App Service / Azure Functions / Container Apps", (IDENTITY_ENDPOINT_ENV, IDENTITY_HEADER_ENV)),
    ("Azure Machine Learning", (MSI_ENDPOINT_ENV, MSI_SECRET_ENV)),
    ("Cloud Shell", (MSI_ENDPOINT_ENV,)),
)
# Shown by value; the others (IDENTITY_HEADER, MSI_SECRET, ...) are secrets: presence only.
_ENV_SHOWN = ENV_SHOWN[:8]
_ENV_PRESENCE = ENV_PRESENCE
# Every variable platform detection and the Arc environment check read (arc.py reads a subset).
ENVIRONMENT_VARIABLES = _ENV_SHOWN + _ENV_PRESENCE


@dataclass(frozen=True)
class PlatformResult:
    """Which platform this is, the endpoint chosen and why, with the evidence."""

    kind: str                      # "vm" | "arc" | "both" | "none"
    target: str                    # "vm" | "arc"
    endpoint: str                  # base URL without trailing slash
    reason: str                    # why this endpoint
    evidence: Mapping[str, Any]
    check: CheckResult             # the main finding: what was detected and chosen
    notes: tuple[CheckResult, ...] = ()   # further findings: container, Arc service, env, SDK redirect

    @property
    def checks(self) -> tuple[CheckResult, ...]:
        return (self.check, *self.notes)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "endpoint": self.endpoint, "reason": self.reason,
                "evidence": dict(self.evidence), "check": self.check.to_dict(),
                "notes": [n.to_dict() for n in self.notes]}


def normalise_endpoint(value: str, *, argument: str = "endpoint") -> str:
    """``http(s)://host[:port]`` without path or trailing slash; UsageError otherwise."""
    from imds_helpers.model.validate import endpoint_url

    return endpoint_url(value, argument=argument)


def _is_arc_endpoint(endpoint: str, env: Mapping[str, str]) -> bool:
    parts = urlsplit(endpoint)
    if parts.port == HIMDS_PORT:
        return True
    arc = env.get(IMDS_ENDPOINT_ENV, "")
    return bool(arc) and arc.rstrip("/") == endpoint


def detect_platform(target: str = "auto", endpoint: str | None = None, *, host: Any) -> PlatformResult:
    """Detect Azure VM / Arc / both / neither and choose the endpoint (see module docstring).

    ``host`` answers the questions (files, commands, environment): the live machine or its
    evidence. Raises :class:`UsageError` only for a bad ``target`` or a malformed explicit
    endpoint.
    """
    if target not in TARGETS:
        raise UsageError(f"must be one of {', '.join(TARGETS)}, got {target!r}", argument="target")
    env = dict(host.env)
    os_name = host.os_name

    explicit, explicit_source = None, ""
    if endpoint:
        explicit, explicit_source = normalise_endpoint(endpoint, argument="endpoint"), "the endpoint argument"
    elif env.get(OVERRIDE_ENV, "").strip():
        explicit = normalise_endpoint(env[OVERRIDE_ENV], argument=OVERRIDE_ENV)
        explicit_source = f"{OVERRIDE_ENV}"

    azure = _azure_vm_evidence(host, os_name)
    arc = _arc_evidence(env, host, os_name)
    container = _container_evidence(env, host)
    hosted = _hosted_environment(env)
    evidence = {
        "os": os_name,
        "env": _env_evidence(env),
        "azure_vm": azure,
        "arc": arc,
        "container": container,
        "hosted_environment": hosted,
    }
    is_vm = bool(azure.get("azure_asset_tag"))
    is_arc = bool(arc["installed"] or arc["env_points_to_himds"])
    kind = "both" if is_vm and is_arc else "vm" if is_vm else "arc" if is_arc else "none"

    chosen_target, chosen_endpoint, reason = _choose(target, explicit, explicit_source, kind, arc, env)
    evidence["choice"] = {"requested_target": target, "explicit_endpoint": explicit, "explicit_source": explicit_source}

    commands = _commands(os_name)
    check = _main_check(kind, chosen_target, chosen_endpoint, reason, explicit, hosted, evidence, commands)
    notes = _notes(kind, chosen_target, arc, container, env, evidence, commands, os_name,
                   explicit_elsewhere=bool(explicit) and not _is_real_service(chosen_endpoint))
    return PlatformResult(kind=kind, target=chosen_target, endpoint=chosen_endpoint, reason=reason,
                          evidence=evidence, check=check, notes=notes)


def _choose(target: str, explicit: str | None, explicit_source: str, kind: str, arc: Mapping[str, Any],
            env: Mapping[str, str]) -> tuple[str, str, str]:
    if explicit:
        if target != "auto":
            return target, explicit, f"endpoint {explicit} given by {explicit_source}; target {target} given explicitly"
        inferred = "arc" if _is_arc_endpoint(explicit, env) else "vm"
        why = "port 40342 / IMDS_ENDPOINT means Arc" if inferred == "arc" else "not the Arc port, so IMDS rules apply"
        return inferred, explicit, f"endpoint {explicit} given by {explicit_source}; target {inferred} ({why})"
    if target == "vm":
        return "vm", IMDS_ENDPOINT, "target vm given explicitly: Azure IMDS at its fixed address"
    if target == "arc":
        endpoint, why = _arc_endpoint(env)
        return "arc", endpoint, f"target arc given explicitly: {why}"
    if kind == "arc":
        endpoint, why = _arc_endpoint(env)
        return "arc", endpoint, f"Arc agent detected and no Azure VM asset tag: {why}"
    if kind == "both":
        if arc["service"].get("kind") == "running":
            endpoint, why = _arc_endpoint(env)
            return "arc", endpoint, ("Azure VM and Arc agent both detected; the Arc service is running, "
                                     f"so Arc is used (as Azure Monitor Agent decides): {why}")
        return "vm", IMDS_ENDPOINT, ("Azure VM and Arc agent both detected; the Arc service is not running, "
                                     "so Azure IMDS is used (as Azure Monitor Agent decides)")
    if kind == "vm":
        return "vm", IMDS_ENDPOINT, "Azure VM detected (DMI chassis asset tag): Azure IMDS"
    return "vm", IMDS_ENDPOINT, "neither an Azure VM nor Arc detected: trying Azure IMDS, the default"


def _arc_endpoint(env: Mapping[str, str]) -> tuple[str, str]:
    value = env.get(IMDS_ENDPOINT_ENV, "").strip()
    if value:
        try:
            return normalise_endpoint(value, argument=IMDS_ENDPOINT_ENV), f"{IMDS_ENDPOINT_ENV}={value}"
        except UsageError:
            from imds_helpers.model.validate import shown

            return HIMDS_ENDPOINT, f"{IMDS_ENDPOINT_ENV}={shown(value, url=True)} is not a URL; using the fixed HIMDS address"
    return HIMDS_ENDPOINT, "HIMDS at its fixed address (IMDS_ENDPOINT not set)"


# --- evidence ------------------------------------------------------------------------------

def _env_evidence(env: Mapping[str, str]) -> dict[str, Any]:
    shown = {k: hide_url_credentials(env[k]) for k in _ENV_SHOWN if env.get(k)}
    present = {k: "<set>" for k in _ENV_PRESENCE if env.get(k)}
    return {**shown, **present}


def _hosted_environment(env: Mapping[str, str]) -> str:
    if env.get("AZUREPS_HOST_ENVIRONMENT", "").lower().startswith("cloud-shell"):
        return "Cloud Shell"
    for name, variables in _HOSTED:
        if all(env.get(v) for v in variables):
            return name
    return ""


def _azure_vm_evidence(host: Any, os_name: str) -> dict[str, Any]:
    if os_name == "windows":
        return _azure_vm_evidence_windows(host.run)
    found: dict[str, Any] = {"source": "/sys/class/dmi/id"}
    for name in ("chassis_asset_tag", "sys_vendor", "product_name", "product_uuid"):
        text, problem = host.read_file(f"/sys/class/dmi/id/{name}", 512)
        if text is None:
            found[name] = None
            found[f"{name}_error"] = problem
        else:
            parsed = parse_dmi_value(text)
            found[name] = parsed.value if parsed.kind == "value" else ""
    # cloud-init's rule: no /sys/firmware/efi means a BIOS boot, a generation 1 VM. When
    # /sys/firmware itself is hidden (containers) the generation is unknown.
    gen2 = host.path_kind("/sys/firmware/efi") == "dir" if host.path_kind("/sys/firmware") == "dir" else None
    _summarise_dmi(found, gen2=gen2)
    return found


def _azure_vm_evidence_windows(run: Callable[..., CommandOutput]) -> dict[str, Any]:
    script = ("$e=Get-CimInstance Win32_SystemEnclosure; $p=Get-CimInstance Win32_ComputerSystemProduct; "
              "$s=Get-CimInstance Win32_ComputerSystem; "
              "$e.SMBIOSAssetTag; $s.Manufacturer; $s.Model; $p.UUID")
    out = run(["powershell", "-NoProfile", "-NonInteractive", "-Command", script], POWERSHELL_TIMEOUT)
    found: dict[str, Any] = {"source": "Win32_SystemEnclosure / Win32_ComputerSystem(Product)", "command": out.to_dict()}
    lines = [ln.strip() for ln in out.stdout.splitlines()] if out.ok else []
    values = (lines + ["", "", "", ""])[:4]
    for name, value in zip(("chassis_asset_tag", "sys_vendor", "product_name", "product_uuid"), values):
        found[name] = value if out.ok else None
    _summarise_dmi(found, gen2=None)
    return found


def _summarise_dmi(found: dict[str, Any], *, gen2: bool | None) -> None:
    tag = found.get("chassis_asset_tag") or ""
    found["azure_asset_tag"] = is_azure_asset_tag(tag)
    found["hyperv_guest"] = looks_like_hyperv(found.get("sys_vendor") or "", found.get("product_name") or "")
    uuid = found.get("product_uuid") or ""
    found["vmid_candidates"] = list(vmid_candidates(uuid, gen2=gen2))
    if found.get("product_uuid_error") == "permission_denied":
        found["product_uuid_note"] = "readable by root only; run with sudo to cross-check the vmId"


def _arc_evidence(env: Mapping[str, str], host: Any, os_name: str) -> dict[str, Any]:
    if os_name == "windows":
        program_files = env.get("ProgramFiles") or env.get("PROGRAMFILES") or r"C:\Program Files"
        binary = program_files.rstrip("\\/") + "\\" + HIMDS_BINARY_WINDOWS_SUBPATH
        installed = host.path_kind(binary) == "file"
        out = host.run(["sc", "query", WINDOWS_HIMDS_SERVICE], COMMAND_TIMEOUT)
        service = _service_state(out, parse_sc_query)
    else:
        binary = LINUX_HIMDS
        installed = host.path_kind(LINUX_HIMDS) == "file"
        out = host.run(HIMDS_STATE_LINUX, COMMAND_TIMEOUT)
        service = _service_state(out, parse_systemctl_show)
    identity, imds = env.get(IDENTITY_ENDPOINT_ENV, ""), env.get(IMDS_ENDPOINT_ENV, "")
    points = bool(identity and imds and not env.get(IDENTITY_HEADER_ENV)) and _port_of(imds) == HIMDS_PORT
    return {"binary": binary, "installed": installed, "service": service,
            "env_points_to_himds": points, "env_identity_endpoint_set": bool(identity),
            "env_imds_endpoint_set": bool(imds)}


def _port_of(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:
        return None


def _service_state(out: CommandOutput, parse: Callable[[str], ServiceState]) -> dict[str, Any]:
    if out.error is not None:
        return {"kind": "unknown", "error": out.error, "command": " ".join(out.argv)}
    state = parse(out.text)
    return {**state.to_dict(), "command": " ".join(out.argv), "returncode": out.returncode}


def _container_evidence(env: Mapping[str, str], host: Any) -> dict[str, Any]:
    markers: list[str] = []
    for path in ("/.dockerenv", "/run/.containerenv"):
        if host.path_kind(path) not in ("missing", "error"):
            markers.append(path)
    runtime = ""
    for path in ("/proc/1/cgroup", "/proc/self/cgroup"):
        text, _ = host.read_file(path)
        hint = parse_cgroup(text or "")
        if hint.kind == "container":
            markers.append(f"{path}: {hint.line}")
            runtime = runtime or hint.runtime
            break
    if env.get("KUBERNETES_SERVICE_HOST"):
        markers.append("KUBERNETES_SERVICE_HOST is set")
        runtime = runtime or "kubernetes"
    if env.get("container"):
        markers.append(f"container={env['container']}")
        runtime = runtime or env["container"]
    if not runtime and "/.dockerenv" in markers:
        runtime = "docker"
    if not runtime and "/run/.containerenv" in markers:
        runtime = "podman"
    return {"in_container": bool(markers), "runtime": runtime, "markers": markers}


# --- findings ------------------------------------------------------------------------------

def _commands(os_name: str) -> Commands:
    return Commands(
        curl=(f"cat /sys/class/dmi/id/chassis_asset_tag; ls -l {HIMDS_BINARY_LINUX}; "
              "systemctl status himdsd --no-pager; env | grep -E 'IDENTITY_|IMDS_|MSI_'"),
        powershell=("(Get-CimInstance Win32_SystemEnclosure).SMBIOSAssetTag; "
                    f"Test-Path \"$env:ProgramFiles\\{HIMDS_BINARY_WINDOWS_SUBPATH}\"; "
                    "Get-Service himds; Get-ChildItem env: | Where-Object Name -match 'IDENTITY_|IMDS_|MSI_'"),
    )


def _main_check(kind: str, target: str, endpoint: str, reason: str, explicit: str | None, hosted: str,
                evidence: Mapping[str, Any], commands: Commands) -> CheckResult:
    summary = {"kind": kind, "target": target, "endpoint": endpoint, "reason": reason}
    if hosted:
        return finding("platform.detect", PLAT_HOSTED,
                       f"{hosted} identity variables are set; that service's own endpoint, not IMDS/HIMDS, "
                       f"serves managed identity here. Checking {endpoint} anyway: {reason}.",
                       evidence={**summary, "hosted_environment": hosted}, commands=commands)
    if explicit:
        return finding("platform.detect", PLAT_EXPLICIT, f"{reason} (detected platform: {kind}).",
                       evidence=summary, commands=commands)
    code = {"vm": PLAT_VM, "arc": PLAT_ARC, "both": PLAT_BOTH, "none": PLAT_NEITHER}[kind]
    detail = f"{reason}."
    azure = evidence["azure_vm"]
    if kind == "none" and azure.get("hyperv_guest"):
        detail += " This is a Hyper-V guest, but without the Azure asset tag: on-premises Hyper-V or Azure Stack."
    if kind == "none" and azure.get("chassis_asset_tag") is None:
        detail += " The DMI asset tag could not be read."
    return finding("platform.detect", code, detail, evidence=summary, commands=commands)


def _is_real_service(endpoint: str) -> bool:
    """IMDS's address, or HIMDS's port on loopback: where a container's network path matters.
    ``endpoint`` is a validated URL (its port parses)."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    return host == urlsplit(IMDS_ENDPOINT).hostname or (is_loopback_host(host) and parts.port == HIMDS_PORT)


def _notes(kind: str, target: str, arc: Mapping[str, Any], container: Mapping[str, Any], env: Mapping[str, str],
           evidence: Mapping[str, Any], commands: Commands, os_name: str,
           *, explicit_elsewhere: bool = False) -> tuple[CheckResult, ...]:
    notes: list[CheckResult] = []
    if container["in_container"] and explicit_elsewhere:
        # An emulator or test endpoint: the container's route to the real service is not checked,
        # so a warning would only make healthy training runs look unhealthy.
        runtime = container["runtime"] or "unknown runtime"
        notes.append(finding("platform.container", PLAT_CONTAINER_EXPLICIT,
                             f"Running in a container ({runtime}); the endpoint was given explicitly and is not "
                             "the real IMDS or HIMDS address, so the container's path to them is not checked here.",
                             evidence=dict(container), commands=commands))
    elif container["in_container"]:
        runtime = container["runtime"] or "unknown runtime"
        if target == "arc":
            detail = (f"Running in a container ({runtime}). localhost:40342 here is the container itself, not "
                      "the host's HIMDS; and the Arc key file path is a host path.")
        else:
            detail = (f"Running in a container ({runtime}). IMDS is reachable only if the host's NAT or host "
                      "networking lets 169.254.169.254 through.")
        notes.append(finding("platform.container", PLAT_CONTAINER, detail,
                             evidence=dict(container), commands=commands))
    service = arc["service"]
    if arc["installed"] and service.get("kind") in ("stopped", "failed", "not_found", "transitioning"):
        name = WINDOWS_HIMDS_SERVICE if os_name == "windows" else LINUX_HIMDS_UNIT
        notes.append(finding("platform.arc_service", PLAT_ARC_SERVICE_STOPPED,
                             f"The Arc agent is installed ({arc['binary']}) but service {name} is "
                             f"{service.get('state') or service.get('kind')}.",
                             evidence=dict(service), commands=commands))
    if arc["installed"] and not (arc["env_identity_endpoint_set"] and arc["env_imds_endpoint_set"]):
        missing = [v for v, s in ((IDENTITY_ENDPOINT_ENV, arc["env_identity_endpoint_set"]),
                                  (IMDS_ENDPOINT_ENV, arc["env_imds_endpoint_set"])) if not s]
        notes.append(finding("platform.arc_env", PLAT_ARC_ENV_UNSET,
                             f"The Arc agent is installed but {' and '.join(missing)} "
                             f"{'is' if len(missing) == 1 else 'are'} not set in this environment.",
                             evidence={"missing": missing, "binary": arc["binary"]}, commands=commands))
    redirect = hide_url_credentials(env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", "").strip())
    if redirect:
        notes.append(finding("platform.sdk_redirect", PLAT_SDK_REDIRECT,
                             f"AZURE_POD_IDENTITY_AUTHORITY_HOST={redirect}: azure-identity and MSAL send "
                             "managed-identity token requests there instead of 169.254.169.254.",
                             evidence={"AZURE_POD_IDENTITY_AUTHORITY_HOST": redirect}, commands=commands))
    return tuple(notes)


def is_loopback_host(host: str) -> bool:
    """localhost or a loopback address: no route, NIC or gateway is involved."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


__all__ = [
    "PlatformResult", "detect_platform", "normalise_endpoint", "is_loopback_host", "IMDS_ENDPOINT", "HIMDS_ENDPOINT",
    "OVERRIDE_ENV",
]
