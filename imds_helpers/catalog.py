"""The one table of finding codes: code, default status, title, explanation, fix.

Adding a finding is adding a row. Steps refer to codes only; :func:`finding` fills in the
words from this table. Docs and tests list the codes from ``CATALOG``.

Code scheme ``IMDS-<AREA>-<NNN>``; NNN = 000 is the area's "all good" row.
  PLAT  platform detection         PROXY proxy configuration      NET   route / TCP / firewall
  META  instance metadata          TOKEN managed-identity tokens  ARC   Arc HIMDS challenge
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from imds_helpers.findings import Attempt, CheckResult, Commands, Status


@dataclass(frozen=True)
class FindingSpec:
    code: str
    status: Status
    title: str
    explanation: str
    fix: str


def _rows(*rows: tuple[str, str, str, str, str]) -> dict[str, FindingSpec]:
    return {code: FindingSpec(code, Status(status), title, explanation, fix)
            for code, status, title, explanation, fix in rows}


CATALOG: dict[str, FindingSpec] = {}

# --- PLAT / PROXY / NET (platform, proxy, network path) ------------------------------------
CATALOG.update(_rows(
))

# --- META / TOKEN (instance metadata, managed-identity tokens) -----------------------------
# HTTP rows describe how a request to the service failed, whichever step sent it.
CATALOG.update(_rows(
    ("IMDS-HTTP-001", "fail", "Connection timed out",
     "The TCP connection was not answered at all: packets to the metadata address are silently dropped. "
     "Typical causes: a firewall DROP rule, a missing or wrong route (request leaving through a secondary NIC), "
     "or this is not an Azure VM.",
     "Check the route (`ip route get 169.254.169.254`) and firewall rules that mention 169.254.169.254; "
     "make sure the request leaves through the primary NIC. On Arc, check that himds is running."),
    ("IMDS-HTTP-002", "fail", "Connection refused",
     "Something actively refused the connection: nothing listens on that port (HIMDS stopped on Arc), or a "
     "firewall REJECT rule answers for it.",
     "On Arc: `systemctl restart himdsd` / `Restart-Service himds`, then `azcmagent show`. On a VM: look for "
     "REJECT rules (`iptables -S`, `Get-NetFirewallRule`) and remove them."),
    ("IMDS-HTTP-003", "fail", "Network unreachable",
     "The kernel has no route to the metadata address.",
     "Restore the route for 169.254.169.254/32 via the primary NIC's gateway (DHCP option 121 normally sets it): "
     "renew DHCP or repair the NIC configuration."),
    ("IMDS-HTTP-004", "fail", "Connected, but no answer",
     "The connection was accepted but no HTTP answer came before the read timeout: something that is not "
     "IMDS holds the connection (a hung proxy or interceptor), or the service is stuck.",
     "Find what owns the address (`ss -tnp`, iptables DNAT rules, a local proxy); retry later; if it persists "
     "open a support case with the evidence."),
    ("IMDS-HTTP-005", "fail", "Connection reset",
     "The connection was reset while the request was in flight: a firewall or interceptor tears it down.",
     "Look for REJECT --reject-with tcp-reset rules, endpoint-security agents or transparent proxies that "
     "intercept 169.254.169.254."),
    ("IMDS-HTTP-006", "fail", "Answer too slow",
     "The answer trickled in so slowly that the step's deadline passed before it was complete. IMDS answers "
     "in milliseconds; a slow trickle points at something in the path.",
     "Look for a proxy or traffic shaper in the path; retry with a longer --timeout to see whether it ever completes."),
    ("IMDS-HTTP-007", "fail", "Unreadable answer",
     "The answer was not valid JSON or was cut short: IMDS always answers complete JSON, so something "
     "else answered or the connection broke mid-body.",
     "Repeat the request by hand (commands below) and look at the raw body; look for a proxy or interceptor."),
    ("IMDS-HTTP-008", "fail", "Answer far too large",
     "The answer exceeded 1 MiB; an IMDS document is a few kilobytes.",
     "Something other than IMDS answered: find what intercepts the metadata address."),
    ("IMDS-HTTP-009", "fail", "Something other than the metadata service answered",
     "The answer does not come from IMDS/HIMDS (wrong Server header, HTML, or an interceptor's error such as "
     "Docker Desktop's 403 'unreachable network'). Typical for containers, captive proxies and laptops.",
     "Run the check on the VM itself (not in a container without host networking) and make sure no proxy "
     "or interceptor handles 169.254.169.254."),
    ("IMDS-HTTP-010", "fail", "Request went through a proxy (X-Forwarded-For rejected)",
     "IMDS rejects any request carrying X-Forwarded-For: a proxy in the path added it. IMDS must be reached "
     "directly.",
     "Bypass the proxy for the metadata address: NO_PROXY=169.254.169.254,localhost,127.0.0.1; on Windows "
     "`netsh winhttp set proxy <proxy> bypass-list=\"<local>;169.254.169.254\"`; remove transparent proxying."),
    ("IMDS-HTTP-011", "warn", "Throttled (429)",
     "The service answered 429 Too Many Requests: more than 5 requests/s (20/s or 5 concurrent for identity) "
     "from this machine. Busy hosts with many agents or containers hit this.",
     "Find the process hammering IMDS; clients must cache tokens and back off (honour Retry-After)."),
    ("IMDS-HTTP-012", "warn", "Metadata service is updating (410)",
     "IMDS answered 410 Gone: it is being updated and is back within 70 seconds.",
     "Retry after 70 seconds; if it persists, restart the VM or open a support case."),
    ("IMDS-HTTP-013", "fail", "Service error (5xx)",
     "The service answered with a server error and kept doing so within the step's time budget.",
     "Retry later; if it persists, collect the evidence (status, body excerpt) for a support case."),
    ("IMDS-HTTP-014", "fail", "Not found (404)",
     "The service answered 404 for this path, also after retries. On the identity endpoint this happens "
     "while IMDS updates; elsewhere the path does not exist on this service.",
     "Retry later; if it persists, check the endpoint and path."),
    ("IMDS-HTTP-015", "fail", "Request rejected: Metadata header missing",
     "The service says the `Metadata: true` header was not sent. This tool sends it, so something in the "
     "path stripped it.",
     "Look for a proxy or interceptor that rewrites headers."),
    ("IMDS-HTTP-016", "fail", "Unexpected HTTP answer",
     "The service answered with a status this step does not expect.",
     "Repeat the request by hand (commands below) and read the body."),
    ("IMDS-META-000", "ok", "Instance metadata answered",
     "The metadata service answered the guide's request with a valid instance document.",
     ""),
    ("IMDS-META-001", "warn", "Instance metadata incomplete",
     "The instance document lacks fields Azure Monitor Agent relies on (resourceId, location, vmId, ...). "
     "Some are legitimately empty (classic VMs, VMs created before 2016, custom images).",
     "Check the VM in the portal; a reboot or a tag change refreshes the document."),
    ("IMDS-META-002", "warn", "api-version not supported; a newer one works",
     "The service rejected the guide's api-version and listed its newest versions; a request with one of "
     "those succeeded. Old clients pinned to the rejected version will fail the same way.",
     "Use one of the listed versions (`newest-versions` in the 400 body)."),
    ("IMDS-META-003", "fail", "api-version rejected",
     "The service rejected the api-version, and no listed version worked either.",
     "Use a version from `/metadata/versions`; the body excerpt lists the newest ones."),
    ("IMDS-META-004", "warn", "vmId does not match this machine's SMBIOS UUID",
     "The instance document's vmId differs from the local SMBIOS UUID: the answer may come from another "
     "machine's metadata (a proxy, a cloned image, or an interceptor).",
     "Make sure nothing relays metadata requests; compare `dmidecode -s system-uuid` with the portal's VM id."),
    ("IMDS-META-005", "ok", "Newest api-version answered",
     "The newest api-version the service lists also answers.",
     ""),
    ("IMDS-META-006", "warn", "Newest api-version request failed",
     "The guide's request works, but the newest api-version the service lists did not answer properly.",
     "Clients pinned to new versions may fail; repeat the request by hand and read the body."),
    ("IMDS-TOKEN-000", "ok", "Token issued",
     "The managed-identity endpoint issued a token for this identity and audience; its claims are shown "
     "(the token itself never is).",
     ""),
    ("IMDS-TOKEN-001", "fail", "No managed identity on this machine",
     "The token endpoint answered 'Identity not found' for the system-assigned identity: the VM has no "
     "system-assigned identity and no single user-assigned identity to fall back on. AMA cannot authenticate.",
     "Enable the system-assigned identity (`az vm identity assign -g <rg> -n <vm>`) or attach a user-assigned "
     "identity and configure AMA with it."),
    ("IMDS-TOKEN-002", "fail", "User-assigned identity not attached",
     "The token endpoint answered 'Identity not found' for this client_id / object_id / msi_res_id: that "
     "identity is not attached to this VM (or was attached moments ago and has not propagated).",
     "Attach it (`az vm identity assign -g <rg> -n <vm> --identities <msi_res_id>`) or correct the id in the "
     "AMA / DCR configuration; after attaching, allow a few minutes."),
    ("IMDS-TOKEN-003", "fail", "Several user-assigned identities, none selected",
     "The VM has several user-assigned identities and no system-assigned one, so a request without a selector "
     "is ambiguous. AMA must be configured with the identity to use.",
     "Pass client_id, object_id or msi_res_id (AMA: the extension's `authentication.managedIdentity` setting), "
     "or enable the system-assigned identity."),
    ("IMDS-TOKEN-004", "fail", "Audience not known to the tenant (AADSTS500011)",
     "Entra ID does not know this resource in the VM's tenant/cloud: a wrong or badly encoded audience, or a "
     "public-cloud audience on a sovereign-cloud VM.",
     "Use the audience of this cloud (AMA: https://monitor.azure.com/ in public cloud; check azEnvironment) "
     "and URL-encode it."),
    ("IMDS-TOKEN-005", "fail", "Token answer unusable",
     "The token endpoint answered 200 but without a usable access_token / expires_in, or the token is not a JWT.",
     "Repeat by hand (token redacted) and look for an interceptor in the path."),
    ("IMDS-TOKEN-006", "fail", "Token request rejected",
     "The token endpoint refused the request (400/401/403) for a reason other than a missing identity.",
     "Read the error and error_description in the evidence; fix the identity configuration accordingly."),
    ("IMDS-TOKEN-007", "warn", "System-assigned identity off (user-assigned in use)",
     "No system-assigned identity, but user-assigned identities were checked. Fine if AMA is configured "
     "with a user-assigned identity.",
     "Nothing, if AMA uses the user-assigned identity; otherwise enable the system-assigned identity."),
    ("IMDS-TOKEN-008", "ok", "AMA's configured identity",
     "Azure Monitor Agent's configuration names the identity shown in the evidence; its token was requested.",
     ""),
    ("IMDS-TOKEN-009", "warn", "AMA configuration names an unreadable identity setting",
     "/etc/default/azuremonitoragent has a MANAGED_IDENTITY value this tool cannot parse.",
     "Expected `MANAGED_IDENTITY=mi_res_id#<resource id>` (or client_id#/object_id#); fix the extension settings."),
))

# --- ARC (HIMDS challenge: 401 -> realm -> key file -> Basic -> token) ----------------------
CATALOG.update(_rows(
))


def finding(
    check_id: str,
    code: str,
    detail: str,
    *,
    status: Status | None = None,
    elapsed_ms: float = 0.0,
    evidence: Mapping[str, Any] | None = None,
    commands: Commands | None = None,
    attempts: tuple[Attempt, ...] = (),
) -> CheckResult:
    """Build a :class:`CheckResult` whose words come from the catalogue row ``code``."""
    spec = CATALOG[code]
    return CheckResult(
        id=check_id,
        code=code,
        status=status or spec.status,
        title=spec.title,
        detail=detail,
        explanation=spec.explanation,
        fix=spec.fix,
        elapsed_ms=elapsed_ms,
        evidence=dict(evidence or {}),
        commands=commands or Commands(),
        attempts=attempts,
    )
