"""The one table of finding codes: code, default status, title, explanation, fix.

Adding a finding is adding a row and its name (the block after the table). Steps refer to
codes only, by those names; :func:`finding` fills in the words from this table. Docs and tests list the codes from ``CATALOG``.

Code scheme ``IMDS-<AREA>-<NNN>``; NNN = 000 is the area's "all good" row.
  PLAT  platform detection         PROXY proxy configuration      NET   route / TCP / firewall
  META  instance metadata          TOKEN managed-identity tokens  ARC   Arc HIMDS challenge
  HTTP  how a request to the service went, whichever step sent it: failures, and (017) success
        only after retries - one shared row, so a flap reads the same in every step
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from imds_helpers.model.findings import Attempt, CheckResult, Commands, Status


@dataclass(frozen=True)
class FindingSpec:
    """One row of the finding table: a code's status, title, explanation and fix."""

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
    # Platform: which service this machine should use, and what in the environment points elsewhere.
    ("IMDS-PLAT-000", "ok", "Azure VM detected; using Azure IMDS",
     "The SMBIOS chassis asset tag is 7783-7084-3265-9085-8269-3286-77 (\"MSFT AZURE VM\"), which only Azure "
     "VMs carry, so the checks use Azure IMDS at http://169.254.169.254.",
     "Nothing to fix."),
    ("IMDS-PLAT-001", "ok", "Azure Arc-enabled server detected; using HIMDS",
     "The Arc agent (himds) is installed, or IDENTITY_ENDPOINT and IMDS_ENDPOINT point at localhost:40342, and "
     "this is not an Azure VM, so the checks use the Arc local identity service at http://localhost:40342.",
     "Nothing to fix."),
    ("IMDS-PLAT-002", "warn", "Both an Azure VM and the Arc agent detected",
     "This Azure VM also has the Azure Connected Machine (Arc) agent installed. Microsoft does not support Arc on "
     "Azure VMs; tools choose between IMDS and HIMDS by guesswork (Azure Monitor Agent uses HIMDS while the himdsd "
     "service runs), and the data collection rules must be associated with the resource that is actually used.",
     "Remove the Arc agent from the Azure VM (`azcmagent disconnect`, then uninstall), or, for an Arc test set-up, "
     "follow Microsoft's \"evaluate Arc on an Azure VM\" steps consistently. Associate the DCR with the resource "
     "whose endpoint is shown here."),
    ("IMDS-PLAT-003", "warn", "Neither an Azure VM nor an Arc-enabled server",
     "No Azure asset tag and no Arc agent were found. Outside Azure nothing answers on 169.254.169.254, so every "
     "later check will time out; Hyper-V, WSL, other clouds and on-premises servers look like this.",
     "Run the tool on the Azure VM or Arc-enabled server itself. On a non-Azure machine, onboard it to Azure Arc "
     "(then HIMDS at localhost:40342 serves identity). If this is an Azure VM, check that the DMI tables are "
     "readable (`cat /sys/class/dmi/id/chassis_asset_tag`)."),
    ("IMDS-PLAT-004", "ok", "Endpoint chosen explicitly",
     "The endpoint came from the command line or from IMDS_RUNBOOK_ENDPOINT (for example an emulator), so "
     "platform detection did not choose it; what was detected is still recorded.",
     "Nothing to fix. Unset IMDS_RUNBOOK_ENDPOINT to let the tool choose."),
    ("IMDS-PLAT-005", "warn", "Hosted managed-identity environment",
     "IDENTITY_ENDPOINT with IDENTITY_HEADER, or MSI_ENDPOINT, are set: App Service, Azure Functions, Container "
     "Apps, Service Fabric, Azure Machine Learning or Cloud Shell. There the platform's own endpoint issues "
     "tokens, not IMDS or HIMDS, so this tool's checks do not describe what your code uses.",
     "Troubleshoot the hosting service's managed identity instead (its docs describe IDENTITY_ENDPOINT). Use this "
     "tool on VMs and Arc-enabled servers."),
    ("IMDS-PLAT-006", "warn", "Running inside a container",
     "Container markers were found (/.dockerenv, /run/.containerenv, a container cgroup or KUBERNETES_SERVICE_HOST). "
     "From a container, IMDS is reached only through the host's NAT or host networking, and Kubernetes may "
     "intercept or block it; on Arc, localhost:40342 inside the container is the container itself.",
     "Run the checks on the host as well. For Docker use host networking or make sure the bridge NAT passes "
     "169.254.169.254; on AKS check pod identity / PodLinkLocalAccess settings; for Arc, call HIMDS from the host "
     "(containers cannot reach the host's localhost)."),
    ("IMDS-PLAT-010", "ok", "In a container, checking an endpoint given explicitly",
     "Container markers were found, but the endpoint was given explicitly and is not the real IMDS or HIMDS "
     "address (an emulator, for instance), so how the container reaches the real service does not matter to "
     "this run.",
     "Nothing to fix for this run. Checking the real service from this container is IMDS-PLAT-006's case."),
    ("IMDS-PLAT-007", "warn", "Arc agent installed but its HIMDS service is not running",
     "The Arc agent is installed but its identity service (himdsd on Linux, himds on Windows) is stopped or "
     "failed, so nothing listens on localhost:40342 and token requests are refused.",
     "Linux: `sudo systemctl restart himdsd` and `sudo journalctl -u himdsd`; Windows: `Restart-Service himds`. "
     "Then `azcmagent show` should list the services as running and the agent as Connected."),
    ("IMDS-PLAT-008", "warn", "Arc agent installed but IDENTITY_ENDPOINT / IMDS_ENDPOINT not set here",
     "The Arc agent sets IDENTITY_ENDPOINT and IMDS_ENDPOINT for services (on Linux through "
     "/lib/systemd/system.conf.d/azcmagent.conf). Interactive shells, sudo and containers often lack them, and "
     "then azure-identity and other SDKs try 169.254.169.254 instead of HIMDS and time out.",
     "For a test, export IDENTITY_ENDPOINT=http://localhost:40342/metadata/identity/oauth2/token and "
     "IMDS_ENDPOINT=http://localhost:40342. For services, restart them (or reboot) after the agent install so "
     "they inherit the variables; Windows: sign out and back in."),
    ("IMDS-PLAT-009", "warn", "SDK token requests redirected by AZURE_POD_IDENTITY_AUTHORITY_HOST",
     "azure-identity and MSAL send managed-identity token requests to AZURE_POD_IDENTITY_AUTHORITY_HOST instead "
     "of 169.254.169.254 (pod identity, test emulators). If it is left over, SDK calls go somewhere else than "
     "these checks.",
     "Unset AZURE_POD_IDENTITY_AUTHORITY_HOST unless pod identity or an emulator is intended."),

    # Proxy: would clients send metadata requests to a proxy? IMDS rejects proxied requests.
    ("IMDS-PROXY-000", "ok", "No proxy configured",
     "No proxy is configured in this source (environment variables, WinHTTP or Internet Options), so clients "
     "connect to the metadata endpoint directly.",
     "Nothing to fix."),
    ("IMDS-PROXY-001", "ok", "Proxy configured; metadata endpoint bypassed",
     "A proxy is configured, but the no-proxy/bypass list covers the metadata endpoint, so clients go direct.",
     "Nothing to fix. Keep 169.254.169.254 (and localhost,127.0.0.1 on Arc) in the bypass list when the proxy "
     "settings change."),
    ("IMDS-PROXY-002", "warn", "Proxy configured and not bypassed for the metadata endpoint",
     "Clients that honour the proxy variables (Python requests, azure-identity, azure-core, curl, many agents) "
     "would send metadata requests to the proxy. IMDS rejects proxied requests (it refuses X-Forwarded-For) and a "
     "proxy cannot reach this machine's link-local or localhost addresses, so the result is 400/403/502/504 "
     "errors or timeouts. This tool itself bypasses proxies, so its own checks can pass while other clients fail.",
     "Add the endpoint to both NO_PROXY and no_proxy: `NO_PROXY=169.254.169.254,localhost,127.0.0.1` "
     "(localhost,127.0.0.1 matter for Arc). For services, set it where the proxy is set (systemd drop-in, "
     "/etc/environment). Do not rely on wildcards such as 169.254.*."),
    ("IMDS-PROXY-003", "warn", "curl and Python clients disagree about the proxy",
     "curl and Python requests read the proxy variables differently: curl ignores HTTP_PROXY in upper case for "
     "http:// URLs, older curl ignores CIDR entries in NO_PROXY, and requests matches IP addresses only exactly or "
     "by CIDR. A manual curl test can therefore succeed while azure-identity or the agent goes through the proxy, "
     "or the other way round.",
     "Set both spellings consistently (http_proxy and HTTP_PROXY, no_proxy and NO_PROXY) and list 169.254.169.254 "
     "(and localhost,127.0.0.1 for Arc) literally in no_proxy; test with `curl --noproxy '*'` and without."),
    ("IMDS-PROXY-004", "warn", "WinHTTP proxy does not bypass the metadata endpoint",
     "The machine-wide WinHTTP proxy (netsh winhttp) is set and its bypass list does not cover the endpoint. "
     "Services that use WinHTTP send metadata requests to the proxy, which IMDS rejects. <local> covers only "
     "names without a dot, so it never covers 169.254.169.254 or 127.0.0.1.",
     "`netsh winhttp set proxy proxy-server=\"<proxy:port>\" bypass-list=\"<local>;169.254.169.254;localhost;127.0.0.1\"` "
     "(keep the existing entries), then restart the agent service."),
    ("IMDS-PROXY-005", "ok", "WinHTTP proxy set; metadata endpoint bypassed",
     "The machine-wide WinHTTP proxy is set, and its bypass list covers the metadata endpoint.",
     "Nothing to fix."),
    ("IMDS-PROXY-006", "warn", "Internet Options proxy applies to the metadata endpoint",
     "The user's Internet Options (WinINet) proxy is on and its exceptions do not cover the endpoint. Windows "
     "PowerShell, .NET Framework programs and Python on Windows (when no proxy variable is set) use it, per user - "
     "the SYSTEM account has its own settings.",
     "In Internet Options > Connections > LAN settings > Advanced, add 169.254.169.254 (and localhost;127.0.0.1 "
     "for Arc) to the exceptions, or set ProxyOverride by policy; in PowerShell 7 use Invoke-RestMethod -NoProxy."),
    ("IMDS-PROXY-007", "warn", "Proxy auto-configuration script in use",
     "Internet Options point at a PAC script (AutoConfigURL); the script decides per URL whether to use a proxy, "
     "so whether metadata requests are proxied cannot be told from the settings.",
     "Make the PAC script return DIRECT for 169.254.169.254 and localhost (isInNet(host, \"169.254.0.0\", "
     "\"255.255.0.0\")), or test the client with the proxy explicitly disabled."),
    ("IMDS-PROXY-008", "warn", "Proxy variable is not a valid URL",
     "A proxy variable holds text that does not parse as a proxy URL (an unclosed [IPv6] bracket, a port that "
     "is not a number in 1-65535, no host). Clients that honour the variable fail before they send anything: "
     "Python requests and azure-identity raise an invalid-URL error, curl refuses the proxy syntax.",
     "Correct the variable (`http://HOST:PORT`, user and password percent-encoded) or unset it where the proxy "
     "is set (shell profile, systemd drop-in, /etc/environment), and list 169.254.169.254 in NO_PROXY."),
    ("IMDS-PROXY-009", "skip", "WinHTTP proxy settings not readable",
     "The output of `netsh winhttp show proxy` could not be read, so the WinHTTP proxy is unknown.",
     "Run `netsh winhttp show proxy` by hand and check the bypass list for 169.254.169.254."),

    # Network path: route, TCP connect, firewall.
    ("IMDS-NET-000", "ok", "Route to the metadata address uses the primary interface",
     "The kernel routes the metadata address through the interface of the default route, as Azure requires "
     "(IMDS answers only requests from the primary NIC and its primary IP).",
     "Nothing to fix."),
    ("IMDS-NET-001", "ok", "Endpoint on loopback; no route involved",
     "The endpoint is localhost or a loopback address (Arc HIMDS, an emulator), so no route, NIC or gateway is "
     "involved.",
     "Nothing to fix."),
    ("IMDS-NET-002", "fail", "No route to the metadata address",
     "The routing table has no usable route to 169.254.169.254 (no host route and no default route, or an "
     "unreachable/blackhole/prohibit route), so connections fail immediately with \"network unreachable\". On "
     "Azure the route comes from DHCP (option 121); static IP configurations and imported images often lose it.",
     "Re-enable DHCP on the primary NIC (Azure requires it) or restore the route: Linux `sudo ip route add "
     "169.254.169.254/32 via <gateway> dev <primary NIC>` and make it persistent in netplan/NetworkManager; "
     "Windows `route -p add 169.254.169.254 mask 255.255.255.255 <gateway>`. Restore the default route too."),
    ("IMDS-NET-003", "warn", "Metadata route leaves through a non-primary interface",
     "The route to 169.254.169.254 uses a different interface than the default route. Azure answers metadata "
     "requests only from the primary NIC, so requests through a secondary NIC time out (common with multi-NIC "
     "VMs, policy routing, failover-cluster adapters and Docker bridges).",
     "Route 169.254.169.254/32 via the primary NIC's gateway: Linux `sudo ip route replace 169.254.169.254/32 via "
     "<gateway> dev <primary NIC>`; Windows `route -p add 169.254.169.254 mask 255.255.255.255 <gateway> if "
     "<primary interface index>`. Fix DHCP on the secondary NIC so it does not install the route."),
    ("IMDS-NET-004", "warn", "Metadata address assigned to this machine",
     "169.254.169.254 is configured on a local interface, so a program on this machine (a mock, emulator, test "
     "harness or leftover configuration) answers instead of Azure IMDS.",
     "If this is not a deliberate test set-up, remove the address (`sudo ip addr del 169.254.169.254/32 dev "
     "<interface>`; Windows `Remove-NetIPAddress -IPAddress 169.254.169.254`) and the program that uses it."),
    ("IMDS-NET-005", "warn", "Metadata route uses a secondary source address",
     "The route to 169.254.169.254 is on the primary NIC but uses a different source address than the default "
     "route. IMDS answers only the primary IP configuration, so requests from a secondary IP time out.",
     "Make the route use the primary address: `sudo ip route replace 169.254.169.254/32 via <gateway> dev <NIC> "
     "src <primary IP>`, or add an outbound SNAT to the primary IP on appliances (NVAs)."),
    ("IMDS-NET-009", "skip", "Route could not be determined",
     "No routing command or table could be read (ip, route print or netstat missing, or their output not "
     "recognised).",
     "Run `ip route get 169.254.169.254` (Linux), `Find-NetRoute -RemoteIPAddress 169.254.169.254` (Windows) or "
     "`netstat -rn` by hand."),
    ("IMDS-NET-010", "ok", "TCP connection succeeded",
     "A TCP connection to the endpoint was opened and closed; the elapsed time and the local source address "
     "are recorded.",
     "Nothing to fix."),
    ("IMDS-NET-011", "fail", "TCP connect timed out",
     "Nothing answered the connection attempt: packets are silently dropped. Usual causes: not an Azure VM, a "
     "firewall DROP rule, the request leaving through a secondary NIC or IP, or (Arc) a host firewall.",
     "Check the route and firewall findings; look for DROP rules (`sudo iptables-save | grep 169.254`, "
     "`Get-NetFirewallRule -Direction Outbound -Action Block`) and confirm the platform."),
    ("IMDS-NET-012", "fail", "TCP connection refused",
     "The connection was refused at once: nothing listens on that port, or a firewall REJECT rule answers for "
     "it. On Arc this usually means the HIMDS service is stopped; on an Azure VM, a REJECT rule or a local "
     "program that took over the address.",
     "Arc: `sudo systemctl restart himdsd` / `Restart-Service himds`, then `azcmagent show`. VM: look for REJECT "
     "rules (`sudo iptables-save | grep -i reject`) and remove them."),
    ("IMDS-NET-013", "fail", "Network unreachable",
     "The kernel (or a REJECT rule answering icmp-net-unreachable) says the network is unreachable: there is "
     "no route to the address.",
     "Restore the route to 169.254.169.254 via the primary NIC (see the route finding); renew DHCP; check "
     "`ip route get 169.254.169.254` / `route print`."),
    ("IMDS-NET-014", "fail", "Host unreachable",
     "\"No route to host\": an unreachable route, a REJECT rule (icmp-host-unreachable / admin-prohibited) or "
     "an ARP failure on the path to the address.",
     "Look for REJECT rules and unreachable routes (`ip route show table all | grep unreachable`); make sure the "
     "route goes through the primary NIC's gateway."),
    ("IMDS-NET-016", "fail", "Connection blocked by local policy",
     "The operating system refused to open the connection (permission denied): a \"prohibit\" route, an "
     "outbound firewall or SELinux/AppArmor policy, or an endpoint-protection product blocked it before any "
     "packet left.",
     "Check `ip route get 169.254.169.254` for prohibit routes, outbound firewall rules, SELinux denials "
     "(`ausearch -m avc`) and EDR policies for this process."),
    ("IMDS-NET-017", "fail", "TCP connect failed (other error)",
     "The connection failed with an error outside the usual set (for example a blackhole route gives "
     "\"invalid argument\", an interceptor reset the connection the moment it opened, or the name did not "
     "resolve); the error and errno are recorded.",
     "Read the recorded error; check `ip route get <address>` for blackhole routes and the endpoint's host name."),
    ("IMDS-NET-020", "ok", "No firewall rule blocks or redirects the endpoint",
     "The iptables/nftables rules that were read neither drop, reject, restrict by user nor redirect new "
     "connections to the endpoint.",
     "Nothing to fix."),
    ("IMDS-NET-021", "fail", "Firewall blocks the metadata endpoint",
     "An output rule (or a DROP policy) drops or rejects new connections to the endpoint for every user. Typical "
     "sources: hardening scripts, `ufw deny out`, the BlockAzureIMDS rule left from Arc-on-Azure-VM tests, or "
     "legacy images.",
     "Remove the rule (`sudo iptables -D OUTPUT <rule>` / `sudo nft delete rule ...`, and from the saved "
     "configuration) or add an ACCEPT before it for the Azure Monitor Agent's user. If access must be limited, "
     "limit it per user (owner match) as Microsoft suggests, not for everyone."),
    ("IMDS-NET-022", "warn", "Firewall lets only some users reach the endpoint",
     "Owner-match rules accept some users (usually root, uid 0) and drop or reject everyone else. Processes "
     "running as other users - including agents that do not run as root and tools run without sudo - time out.",
     "Run the client as an allowed user, or add an ACCEPT for the agent's uid before the DROP: `sudo iptables -I "
     "OUTPUT -d 169.254.169.254 -p tcp --dport 80 -m owner --uid-owner <uid> -j ACCEPT`."),
    ("IMDS-NET-023", "warn", "Firewall redirects metadata traffic elsewhere",
     "A DNAT/REDIRECT rule sends connections for the endpoint to another address or port - for example AKS "
     "pod identity (NMI), a metadata proxy (OpenStack/Calico, GCP-style), or an agent's test pod. Whatever "
     "listens there answers instead of Azure IMDS.",
     "Confirm the redirect is intended (pod identity, a security proxy). If not, delete the rule (`sudo iptables "
     "-t nat -D <chain> <rule>`) and find what created it; otherwise troubleshoot the component it redirects to."),
    ("IMDS-NET-025", "warn", "Firewall rule may block the endpoint",
     "A DROP/REJECT rule could apply to connections to the endpoint, depending on matches this check cannot "
     "evaluate (marks, sets, interfaces, rate limits).",
     "Read the rule listed in the detail and check whether it matches the agent's traffic; test with the agent's "
     "user and watch the rule counters (`sudo iptables -L OUTPUT -v -n`)."),
    ("IMDS-NET-029", "skip", "Firewall rules not readable",
     "No firewall rules could be read: iptables/nft are missing, reading them needs root, or the operating "
     "system is not Linux.",
     "Rerun with sudo, or inspect by hand: `sudo iptables-save`, `sudo nft list ruleset`; Windows "
     "`Get-NetFirewallRule -Direction Outbound -Action Block -Enabled True`."),
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
     "The answer was not valid JSON, was cut short, or was JSON no metadata service sends (nested deeper "
     "than 64 levels, a number of over 1000 digits): IMDS always answers complete, plain JSON, so something "
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
    ("IMDS-HTTP-017", "warn", "Answered only after retries",
     "The step succeeded, but only after the service failed first with answers Microsoft says to retry "
     "(410, 429, 404 on the identity endpoint, 5xx, or a connection reset); the detail counts them and says "
     "what each usually means. Clients with fewer retries or shorter timeouts (scripts, older agents) fail "
     "where this check got through. The evidence is the successful answer's; the attempts show the flap.",
     "Occasional: nothing to fix. Repeated: 410 - wait for the IMDS update (70 s) or restart the VM; 429 - find "
     "the process calling the service too often (clients must cache tokens); 404 on a token - allow a few "
     "minutes after assigning an identity; 5xx - open a support case with the attempts shown."),
    ("IMDS-HTTP-018", "skip", "Not in the evidence",
     "This request was not made when the evidence was collected (a bundle from another collector or an "
     "older version, or a digest cut short), so this analysis cannot judge it.",
     "Collect again on the host with this version: imds-runbook collect --out evidence.json."),
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

# --- PROXY comparison (opt-in request through the proxy; instance metadata only) -----------
CATALOG.update(_rows(
    ("IMDS-PROXY-010", "skip", "No proxy to compare",
     "No proxy applies to the endpoint, so there is no request through a proxy to compare with.", ""),
    ("IMDS-PROXY-011", "warn", "The proxy relays metadata requests",
     "Instance metadata also answered THROUGH the proxy: the proxy can reach the metadata address. Clients "
     "that send token requests through it expose tokens to the proxy.",
     "Bypass the proxy for the metadata address anyway (NO_PROXY=169.254.169.254,localhost,127.0.0.1) and "
     "block the metadata address on the proxy."),
    ("IMDS-PROXY-012", "warn", "Through the proxy the request fails",
     "The same instance-metadata request sent THROUGH the proxy fails (see detail): this is what a client "
     "that does not bypass the proxy experiences - e.g. IMDS rejecting X-Forwarded-For, or the proxy's own "
     "error page.",
     "Add the metadata address to the bypass list (NO_PROXY / WinHTTP bypass-list) for every client and agent."),
    ("IMDS-PROXY-013", "warn", "Proxy unreachable",
     "The configured proxy did not accept the connection; clients that honour the proxy variables fail "
     "before they reach the metadata service.",
     "Fix or remove the proxy setting, and bypass it for the metadata address."),
))


# --- ARC (HIMDS challenge: 401 -> realm -> key file -> Basic -> token) ----------------------
# One row per visible step outcome of imds_helpers/analyze/arc.py; 000-004 are the good answers.
CATALOG.update(_rows(
    ("IMDS-ARC-000", "ok", "Arc token issued through the challenge",
     "HIMDS challenged, the key file passed every rule and was read, and the repeated request with "
     "`Authorization: Basic <secret>` returned a token. Its claims are shown (never the token or the secret).",
     ""),
    ("IMDS-ARC-001", "ok", "HIMDS answered with the challenge",
     "The token request without Authorization got 401 with `WWW-Authenticate: Basic realm=<key file>`, "
     "exactly what MSAL and azure-identity expect from HIMDS.",
     ""),
    ("IMDS-ARC-002", "ok", "Key path passes every rule",
     "The realm is an absolute path directly inside the tokens directory (after resolving '..' and symlinks), "
     "ends in .key, is a regular file of at most 4096 bytes and this process may read it.",
     ""),
    ("IMDS-ARC-003", "ok", "Key file read",
     "The key file was read (bounded, without following symlinks); its contents can be sent verbatim as "
     "`Authorization: Basic <secret>`.",
     ""),
    ("IMDS-ARC-004", "ok", "Arc endpoint variables visible",
     "IDENTITY_ENDPOINT and IMDS_ENDPOINT are set for this process and point to HIMDS on localhost:40342, "
     "so MSAL and azure-identity choose the Arc flow.",
     ""),
    ("IMDS-ARC-010", "fail", "HIMDS is not listening",
     "Nothing accepts connections on the Arc identity endpoint (localhost:40342): the himds service "
     "(Linux `himdsd`, Windows `himds`) is stopped, crashed, or the Connected Machine agent is not installed.",
     "Linux: `systemctl status himdsd`, then `sudo systemctl restart himdsd`; Windows: `Get-Service himds`, "
     "then `Restart-Service himds`. Then `azcmagent show` must list himds as running; if the agent is missing, "
     "install or repair the Azure Connected Machine agent."),
    ("IMDS-ARC-011", "fail", "Something other than HIMDS answers on the Arc endpoint",
     "HIMDS always answers a token request without Authorization with 401 and a `Basic realm` challenge. This "
     "answer did not (e.g. 200 straight away, or HTML), so another program owns the port or a proxy intercepts "
     "it. MSAL turns this into `invalid_request` with the raw body; the JavaScript SDK says '401 is expected'.",
     "Find the owner of the port: `sudo ss -ltnp 'sport = :40342'` / `Get-NetTCPConnection -LocalPort 40342 | "
     "Select OwningProcess`; stop it and restart himds. Make sure localhost is excluded from any proxy."),
    ("IMDS-ARC-012", "fail", "HIMDS answered an error instead of the challenge",
     "The first token request (no Authorization) was refused with an HTTP error before any challenge, so no "
     "key file was written. Usually the request itself is wrong for this agent (path, api-version, resource).",
     "Read the error in the evidence; use the path /metadata/identity/oauth2/token with api-version=2020-06-01 "
     "(what MSAL and azure-identity send); update the agent if it rejects that version (`azcmagent version`)."),
    ("IMDS-ARC-013", "fail", "Challenge header missing",
     "HIMDS answered 401 but without `WWW-Authenticate: Basic realm=<path>`, so no client can find the key file. "
     "azure-identity: 'Did not receive a value from WWW-Authenticate header'; MSAL: 'Unrecognizable "
     "WWW-Authenticate header'.",
     "Check that nothing between the client and HIMDS strips headers (a local proxy); restart himds "
     "(`systemctl restart himdsd` / `Restart-Service himds`); update the agent if it persists."),
    ("IMDS-ARC-014", "fail", "Challenge header malformed",
     "The WWW-Authenticate header is not exactly `Basic realm=<path>`: another scheme, no path, a quoted path, "
     "or a path containing '='. MSAL splits the header on '=' and requires exactly two parts; azure-identity "
     "takes the text after the first '='. Such a challenge is rejected (or misread) by the clients.",
     "Something other than a genuine HIMDS produced this challenge, or a proxy rewrote it: compare with "
     "`curl -si --noproxy '*' -H Metadata:true 'http://localhost:40342/metadata/identity/oauth2/token?"
     "api-version=2020-06-01&resource=https://management.azure.com/'`; restart himds; update the agent."),
    ("IMDS-ARC-020", "fail", "Key path is not absolute",
     "The realm names a relative path. HIMDS always names an absolute path inside its tokens directory; a "
     "relative one would be resolved against the caller's working directory, so it is refused and not opened.",
     "Do not trust this endpoint: check what answers on port 40342 (`ss -ltnp`), restart himds, update the agent."),
    ("IMDS-ARC-021", "fail", "Key path outside the tokens directory",
     "After resolving '..' and symlinks, the realm does not point directly into the tokens directory "
     "(/var/opt/azcmagent/tokens, or %ProgramData%\\AzureConnectedMachineAgent\\Tokens). The SDKs refuse such "
     "paths on purpose (CVE-2024-35255 class): a fake service could make a privileged caller send the contents "
     "of any file. The file was not opened and nothing was sent.",
     "Treat the endpoint as untrusted: find what answers on port 40342 (`ss -ltnp`, `Get-NetTCPConnection`). "
     "If the tokens directory itself was moved or is a symlink, restore it (`azcmagent` recreates it on restart)."),
    ("IMDS-ARC-022", "fail", "Key file name does not end in .key",
     "The realm names a file without the .key extension; azure-identity and msal-node refuse it, MSAL silently "
     "reads <tokens dir>/<name>.key instead. The file was not opened.",
     "Treat the endpoint as untrusted: find what answers on port 40342; restart himds; update the agent."),
    ("IMDS-ARC-023", "fail", "Key file missing",
     "The challenge names a key file that does not exist. Key files are single-use and deleted after use, so "
     "another caller (or a retry) may have consumed it, or the agent could not write it (disk full, tokens "
     "directory missing or not writable).",
     "Run the check once more; if it persists check `df /var/opt`, that /var/opt/azcmagent/tokens exists "
     "(owner root, group himds), and `journalctl -u himdsd` / the agent logs (`azcmagent logs`)."),
    ("IMDS-ARC-024", "fail", "Key path is not a regular file",
     "The realm names a FIFO, a directory, a device (such as /dev/zero), a socket or a symlink. HIMDS writes "
     "plain files; reading anything else could hang or leak data, so it was not opened.",
     "Remove the odd entry from the tokens directory (`ls -la /var/opt/azcmagent/tokens`) and restart himds; "
     "if the challenge keeps naming such a path, treat the endpoint as untrusted."),
    ("IMDS-ARC-025", "fail", "Key file too large",
     "The key file is larger than 4096 bytes. MSAL ('Local key file shall not be larger than 4KB') and "
     "azure-identity refuse it; a genuine key is a few dozen bytes. It was not read.",
     "Delete the file and retry; if HIMDS keeps naming large files, repair or update the agent and treat the "
     "endpoint as suspect."),
    ("IMDS-ARC-026", "fail", "Key file not readable by this user",
     "Only root and members of the `himds` group (Linux), or Administrators and 'Hybrid agent extension "
     "applications' (Windows), may read HIMDS key files. This process is neither, so every client running as "
     "this user fails after the challenge ('Permission denied', or on Windows 'Cannot find path ...key').",
     "Run as root (`sudo`), or add the account to the group and log in again: `sudo usermod -aG himds <user>`; "
     "on Windows run elevated or `Add-LocalGroupMember -Group 'Hybrid agent extension applications' "
     "-Member <user>`. The agent's own services already have this access."),
    ("IMDS-ARC-027", "warn", "Key file ends with a line break",
     "The key file ends with a newline. Clients send the contents verbatim, and HTTP libraries refuse a header "
     "value ending in a line break, so the token request cannot be sent. HIMDS does not write such files.",
     "Something rewrote the key file (an editor, a script, a fake service): find it; restart himds."),
    ("IMDS-ARC-029", "warn", "Key file readable only by root",
     "The key file grants no read permission to its group, so only root can read it. This check runs as root "
     "and got through, but Azure Monitor Agent's components and other extensions that read key files as members "
     "of the himds group fail with 'permission denied'.",
     "Let himds recreate its key files with group read: `systemctl restart himdsd`; check that the tokens "
     "directory and files belong to group himds (`ls -l /var/opt/azcmagent/tokens`) and that nothing (a hardening "
     "script, umask policy) strips group permissions."),
    ("IMDS-ARC-028", "fail", "Key contents cannot be sent as a header",
     "The key file is empty, not UTF-8 text, or contains line breaks or characters HTTP headers cannot carry. "
     "Clients send the contents verbatim as `Authorization: Basic <contents>` and fail the same way. Nothing was "
     "sent.",
     "Restart himds so it writes a fresh key; if the contents stay unusable, repair or update the agent."),
    ("IMDS-ARC-030", "fail", "Secret rejected",
     "HIMDS answered the repeated request with 401 again: the secret did not match. The key file was already "
     "used or expired (single use; another caller or a retry got there first), was replaced, or the "
     "Authorization header was altered on the way.",
     "Retry once as root or a `himds` member (`sudo`); make sure no proxy touches localhost; if it keeps "
     "failing, restart himds and check the agent (`azcmagent show`, `journalctl -u himdsd`)."),
    ("IMDS-ARC-031", "fail", "Arc agent cannot issue tokens (disconnected or expired)",
     "The challenge succeeded but HIMDS could not issue a token: the Connected Machine agent is disconnected "
     "from Azure or its identity certificate expired (`azcmagent show` says Disconnected or Expired). Typical "
     "after the machine was offline for more than 45 days or outbound Arc endpoints are blocked.",
     "Run `azcmagent show` and `azcmagent check`; fix outbound access or the proxy (`azcmagent config set "
     "proxy.url ...`); if Expired, disconnect and reconnect the machine (`azcmagent disconnect` then "
     "`azcmagent connect ...`)."),
    ("IMDS-ARC-032", "fail", "HIMDS refused the authorised token request",
     "The secret was accepted, but HIMDS refused the token request itself (HTTP 4xx): typically a wrong "
     "resource/audience or api-version.",
     "Read the error in the evidence; use the audience Azure Monitor Agent needs (https://monitor.azure.com/) "
     "or https://management.azure.com/, and api-version=2020-06-01."),
    ("IMDS-ARC-033", "fail", "Token answer unusable",
     "HIMDS answered 200 but the body lacks what clients require: JSON with a non-empty access_token and "
     "expires_in (MSAL needs expires_in; azure-identity's async client also accepts expires_on), or the token "
     "is not a JWT.",
     "Repeat by hand (commands below; the token is redacted) and look for an interceptor; update the agent."),
    ("IMDS-ARC-034", "fail", "Arc did not confirm the user-assigned identity",
     "A user-assigned identity was requested and HIMDS issued a token without echoing the selector "
     "(client_id / object_id / msi_res_id). Legacy agents ignore selectors and return the system-assigned "
     "identity; MSAL and azure-identity then refuse the token ('Azure Arc did not confirm the requested "
     "user-assigned managed identity').",
     "Use the system-assigned identity on Arc (remove the selector; AMA on Arc uses it), or update the agent "
     "to a version that supports user-assigned identities and assign it "
     "(`az connectedmachine identity assign --user-assigned ...`)."),
    ("IMDS-ARC-040", "fail", "User-assigned identity refused on Arc",
     "A user-assigned identity (client_id / object_id / msi_res_id) was requested, and HIMDS refused it before "
     "the challenge. Arc-enabled servers have one system-assigned identity; user-assigned ones are not "
     "supported by most agents (older clients such as azure-identity < 1.16 and msal-node refuse them "
     "outright: 'User assigned managed identities are not supported by Azure Arc').",
     "Request the system-assigned identity (no selector) - it is what Azure Monitor Agent uses on Arc - and grant "
     "it the needed roles; remove client_id / mi_res_id from the AMA settings on Arc machines."),
    ("IMDS-ARC-050", "warn", "Arc endpoint variables missing for this process",
     "IDENTITY_ENDPOINT and IMDS_ENDPOINT are not set here. The agent sets them for services through "
     "/lib/systemd/system.conf.d/azcmagent.conf (Linux) or machine-wide (Windows); interactive shells, sudo "
     "and containers usually do not inherit them. Without them azure-identity (async) and most SDKs try Azure "
     "IMDS at 169.254.169.254 instead, which times out; MSAL Python falls back to Arc only if "
     "/opt/azcmagent/bin/himds exists.",
     "For a test shell: `export IDENTITY_ENDPOINT=http://localhost:40342/metadata/identity/oauth2/token "
     "IMDS_ENDPOINT=http://localhost:40342` (or `sudo --preserve-env=IDENTITY_ENDPOINT,IMDS_ENDPOINT`); services "
     "get them after `systemctl daemon-reexec` or a reboot. On Windows open a new session (they are machine "
     "variables). In containers pass both with `-e` and use host networking."),
    ("IMDS-ARC-051", "warn", "Only one of the two Arc endpoint variables is set",
     "Clients choose the Arc flow only when both IDENTITY_ENDPOINT and IMDS_ENDPOINT are set; with one of them "
     "they fall back to Azure IMDS (169.254.169.254), which does not exist on an Arc server.",
     "Set both: IDENTITY_ENDPOINT=http://localhost:40342/metadata/identity/oauth2/token and "
     "IMDS_ENDPOINT=http://localhost:40342 (see /lib/systemd/system.conf.d/azcmagent.conf)."),
    ("IMDS-ARC-052", "warn", "Arc endpoint variables point elsewhere",
     "IDENTITY_ENDPOINT / IMDS_ENDPOINT are set but do not point to HIMDS on localhost:40342 (port 40342 is "
     "fixed). Clients will send their token requests, and the key-file secret, to that other address.",
     "Correct them: IDENTITY_ENDPOINT=http://localhost:40342/metadata/identity/oauth2/token, "
     "IMDS_ENDPOINT=http://localhost:40342; find who set them (`systemctl show-environment`, shell profiles)."),
    ("IMDS-ARC-053", "warn", "Another managed-identity source takes precedence",
     "IDENTITY_HEADER (App Service / Service Fabric) or MSI_ENDPOINT + MSI_SECRET (Azure ML / Cloud Shell) are "
     "set; MSAL and azure-identity check those before Arc, so they will not use HIMDS.",
     "Unset the variables that do not belong on this machine (IDENTITY_HEADER, IDENTITY_SERVER_THUMBPRINT, "
     "MSI_ENDPOINT, MSI_SECRET) in the service or shell environment."),
    ("IMDS-ARC-099", "skip", "Step not attempted",
     "An earlier step of the Arc challenge failed, so this one could not run (nothing was read or sent).",
     "Fix the earlier step first."),
))


# --- the codes by name -----------------------------------------------------------------------
# Checks refer to a code by its name here, never by writing "IMDS-..." themselves (a test keeps
# it so: only this module writes a code); tests/core/test_catalog_names.py pins one name per row.

PLAT_VM = "IMDS-PLAT-000"
PLAT_ARC = "IMDS-PLAT-001"
PLAT_BOTH = "IMDS-PLAT-002"
PLAT_NEITHER = "IMDS-PLAT-003"
PLAT_EXPLICIT = "IMDS-PLAT-004"
PLAT_HOSTED = "IMDS-PLAT-005"
PLAT_CONTAINER = "IMDS-PLAT-006"
PLAT_CONTAINER_EXPLICIT = "IMDS-PLAT-010"
PLAT_ARC_SERVICE_STOPPED = "IMDS-PLAT-007"
PLAT_ARC_ENV_UNSET = "IMDS-PLAT-008"
PLAT_SDK_REDIRECT = "IMDS-PLAT-009"

PROXY_NONE = "IMDS-PROXY-000"
PROXY_BYPASSED = "IMDS-PROXY-001"
PROXY_NOT_BYPASSED = "IMDS-PROXY-002"
PROXY_CLIENTS_DISAGREE = "IMDS-PROXY-003"
PROXY_WINHTTP_NOT_BYPASSED = "IMDS-PROXY-004"
PROXY_WINHTTP_BYPASSED = "IMDS-PROXY-005"
PROXY_WININET_APPLIES = "IMDS-PROXY-006"
PROXY_PAC = "IMDS-PROXY-007"
PROXY_INVALID_URL = "IMDS-PROXY-008"
PROXY_WINHTTP_UNREADABLE = "IMDS-PROXY-009"

NET_ROUTE_PRIMARY = "IMDS-NET-000"
NET_LOOPBACK = "IMDS-NET-001"
NET_NO_ROUTE = "IMDS-NET-002"
NET_ROUTE_NOT_PRIMARY = "IMDS-NET-003"
NET_ADDRESS_LOCAL = "IMDS-NET-004"
NET_ROUTE_SECONDARY_SOURCE = "IMDS-NET-005"
NET_ROUTE_UNKNOWN = "IMDS-NET-009"
NET_TCP_OK = "IMDS-NET-010"
NET_TCP_TIMEOUT = "IMDS-NET-011"
NET_TCP_REFUSED = "IMDS-NET-012"
NET_NETWORK_UNREACHABLE = "IMDS-NET-013"
NET_HOST_UNREACHABLE = "IMDS-NET-014"
NET_TCP_POLICY = "IMDS-NET-016"
NET_TCP_OTHER = "IMDS-NET-017"
NET_FIREWALL_OK = "IMDS-NET-020"
NET_FIREWALL_BLOCKS = "IMDS-NET-021"
NET_FIREWALL_SOME_USERS = "IMDS-NET-022"
NET_FIREWALL_REDIRECTS = "IMDS-NET-023"
NET_FIREWALL_MAYBE = "IMDS-NET-025"
NET_FIREWALL_UNREADABLE = "IMDS-NET-029"

HTTP_CONNECT_TIMEOUT = "IMDS-HTTP-001"
HTTP_CONNECT_REFUSED = "IMDS-HTTP-002"
HTTP_UNREACHABLE = "IMDS-HTTP-003"
HTTP_NO_ANSWER = "IMDS-HTTP-004"
HTTP_RESET = "IMDS-HTTP-005"
HTTP_TOO_SLOW = "IMDS-HTTP-006"
HTTP_UNREADABLE = "IMDS-HTTP-007"
HTTP_TOO_LARGE = "IMDS-HTTP-008"
HTTP_NOT_IMDS = "IMDS-HTTP-009"
HTTP_FORWARDED = "IMDS-HTTP-010"
HTTP_THROTTLED = "IMDS-HTTP-011"
HTTP_UPDATING = "IMDS-HTTP-012"
HTTP_SERVER_ERROR = "IMDS-HTTP-013"
HTTP_NOT_FOUND = "IMDS-HTTP-014"
HTTP_NO_METADATA_HEADER = "IMDS-HTTP-015"
HTTP_UNEXPECTED = "IMDS-HTTP-016"
HTTP_RETRIED = "IMDS-HTTP-017"
HTTP_NOT_COLLECTED = "IMDS-HTTP-018"

META_OK = "IMDS-META-000"
META_INCOMPLETE = "IMDS-META-001"
META_VERSION_OLD = "IMDS-META-002"
META_VERSION_REJECTED = "IMDS-META-003"
META_VMID_MISMATCH = "IMDS-META-004"
META_NEWEST_OK = "IMDS-META-005"
META_NEWEST_FAILED = "IMDS-META-006"

TOKEN_OK = "IMDS-TOKEN-000"
TOKEN_NO_IDENTITY = "IMDS-TOKEN-001"
TOKEN_UAMI_NOT_ATTACHED = "IMDS-TOKEN-002"
TOKEN_UAMI_AMBIGUOUS = "IMDS-TOKEN-003"
TOKEN_AUDIENCE_UNKNOWN = "IMDS-TOKEN-004"
TOKEN_UNUSABLE = "IMDS-TOKEN-005"
TOKEN_REJECTED = "IMDS-TOKEN-006"
TOKEN_SYSTEM_OFF = "IMDS-TOKEN-007"
TOKEN_AMA_IDENTITY = "IMDS-TOKEN-008"
TOKEN_AMA_CONFIG_UNREADABLE = "IMDS-TOKEN-009"

PROXY_COMPARE_NONE = "IMDS-PROXY-010"
PROXY_COMPARE_RELAYS = "IMDS-PROXY-011"
PROXY_COMPARE_FAILS = "IMDS-PROXY-012"
PROXY_COMPARE_UNREACHABLE = "IMDS-PROXY-013"

ARC_OK_CHAIN = "IMDS-ARC-000"
ARC_CHALLENGE_OK = "IMDS-ARC-001"
ARC_REALM_OK = "IMDS-ARC-002"
ARC_KEYFILE_OK = "IMDS-ARC-003"
ARC_ENV_OK = "IMDS-ARC-004"
ARC_HIMDS_NOT_LISTENING = "IMDS-ARC-010"
ARC_NOT_HIMDS = "IMDS-ARC-011"
ARC_ERROR_BEFORE_CHALLENGE = "IMDS-ARC-012"
ARC_CHALLENGE_MISSING = "IMDS-ARC-013"
ARC_CHALLENGE_MALFORMED = "IMDS-ARC-014"
ARC_REALM_NOT_ABSOLUTE = "IMDS-ARC-020"
ARC_REALM_OUTSIDE_DIR = "IMDS-ARC-021"
ARC_REALM_NOT_KEY = "IMDS-ARC-022"
ARC_KEY_MISSING = "IMDS-ARC-023"
ARC_KEY_NOT_REGULAR = "IMDS-ARC-024"
ARC_KEY_TOO_LARGE = "IMDS-ARC-025"
ARC_KEY_UNREADABLE = "IMDS-ARC-026"
ARC_KEY_TRAILING_NEWLINE = "IMDS-ARC-027"
ARC_KEY_ROOT_ONLY = "IMDS-ARC-029"
ARC_KEY_NOT_SENDABLE = "IMDS-ARC-028"
ARC_SECRET_REJECTED = "IMDS-ARC-030"
ARC_AGENT_DISCONNECTED = "IMDS-ARC-031"
ARC_AUTHORISED_REQUEST_REFUSED = "IMDS-ARC-032"
ARC_TOKEN_UNUSABLE = "IMDS-ARC-033"
ARC_USER_ASSIGNED_NOT_CONFIRMED = "IMDS-ARC-034"
ARC_USER_ASSIGNED_REFUSED = "IMDS-ARC-040"
ARC_ENV_MISSING = "IMDS-ARC-050"
ARC_ENV_PARTIAL = "IMDS-ARC-051"
ARC_ENV_ELSEWHERE = "IMDS-ARC-052"
ARC_ENV_OTHER_SOURCE = "IMDS-ARC-053"
ARC_NOT_ATTEMPTED = "IMDS-ARC-099"


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
