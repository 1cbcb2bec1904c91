"""The network path to the metadata endpoint: route and source address, a timed TCP
connect, and firewall rules that mention the address.

Each check returns one :class:`CheckResult`; nothing here raises for network trouble, a
missing tool or a permission problem - those are findings too. Commands, files, the TCP
connect and user names are the ``machine``'s answers (the live host or its evidence); what
commands print is parsed by the pure functions in :mod:`imds_helpers.parsers`, and the
decisions (``assess_route``, ``parsers.firewall.analyze``) are pure as well.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import urlsplit

from imds_helpers.model.catalog import (NET_ADDRESS_LOCAL, NET_FIREWALL_BLOCKS, NET_FIREWALL_MAYBE, NET_FIREWALL_OK,
                                  NET_FIREWALL_REDIRECTS, NET_FIREWALL_SOME_USERS, NET_FIREWALL_UNREADABLE,
                                  NET_HOST_UNREACHABLE, NET_LOOPBACK, NET_NETWORK_UNREACHABLE, NET_NO_ROUTE,
                                  NET_ROUTE_NOT_PRIMARY, NET_ROUTE_PRIMARY, NET_ROUTE_SECONDARY_SOURCE,
                                  NET_ROUTE_UNKNOWN, NET_TCP_OK, NET_TCP_OTHER, NET_TCP_POLICY, NET_TCP_REFUSED,
                                  NET_TCP_TIMEOUT, finding)
from imds_helpers.model.endpoints import ARC_API_VERSION, COMMAND_API_VERSION, HIMDS_PORT, IMDS_ADDRESS, INSTANCE_PATH
from imds_helpers.model.findings import CheckResult, Commands
from imds_helpers.model.evidence import IPTABLES_SAVE, NFT_RULESET, CommandOutput, Runner
from imds_helpers.analyze.platform import is_loopback_host
from imds_helpers.model.taxonomy import ErrorKind

if TYPE_CHECKING:
    # The parsers are imported where used: a loopback endpoint needs no route parser, and a
    # host without firewall rules no rule evaluator - the quick check stays quick.
    from imds_helpers.parsers.dhcp import DhcpLease
    from imds_helpers.parsers.firewall import FirewallAnalysis, Ruleset
    from imds_helpers.parsers.iproute import RouteLookup
    from imds_helpers.parsers.routes import Route, RouteTable

DEFAULT_CONNECT_TIMEOUT = 2.0
# Where DHCP clients keep leases (systemd-networkd, dhclient, NetworkManager's dhclient, dhcpcd dumps).
LEASE_GLOBS = ("/run/systemd/netif/leases/*", "/var/lib/dhcp/dhclient*.lease*", "/var/lib/dhclient/*.lease*",
               "/var/lib/NetworkManager/*.lease")

# Refused by local policy rather than by the network: a "prohibit" route gives EACCES, an
# OUTPUT rule or SELinux EPERM, WinSock 10013; a blackhole route gives EINVAL.
_POLICY_ERRNOS = frozenset({errno.EACCES, errno.EPERM, 10013})

_TCP_CODES = {
    ErrorKind.CONNECT_TIMEOUT: NET_TCP_TIMEOUT,
    ErrorKind.CONNECT_REFUSED: NET_TCP_REFUSED,
    ErrorKind.NETWORK_UNREACHABLE: NET_NETWORK_UNREACHABLE,
    ErrorKind.HOST_UNREACHABLE: NET_HOST_UNREACHABLE,
    # A reset cannot end a connect() on Linux (a RST to the SYN is a refusal); only a race with
    # an interceptor that resets the moment the handshake completes gives one: NET-017, errno kept.
}


# --- TCP -------------------------------------------------------------------------------------

def _tcp_commands(host: str, port: int) -> Commands:
    shown = f"[{host}]" if ":" in host else host
    version = ARC_API_VERSION if port == HIMDS_PORT else COMMAND_API_VERSION
    url = f"http://{shown}:{port}{INSTANCE_PATH}?api-version={version}"
    return Commands(
        curl=(f"curl --noproxy '*' --connect-timeout 2 -m 5 -sS -o /dev/null "
              f"-w 'connect %{{time_connect}}s, HTTP %{{http_code}}\\n' -H Metadata:true \"{url}\""),
        powershell=f"Test-NetConnection {host} -Port {port}",
    )


def check_tcp(host: str, port: int, *, timeout: float = DEFAULT_CONNECT_TIMEOUT, machine: Any) -> CheckResult:
    """A timed TCP connect (nothing sent), judged from ``machine.tcp``'s attempts.

    Evidence: ``elapsed_ms``, ``error_kind`` and ``errno`` of a failure, the local
    ``source_address`` the kernel chose, and each address tried.
    """
    commands = _tcp_commands(host, port)
    probe = machine.tcp(host, port, timeout)
    base = {"host": host, "port": port, "timeout_s": timeout}
    if probe.resolve_error is not None:
        return finding("network.tcp", NET_TCP_OTHER, f"Could not resolve {host}: {probe.resolve_error}.",
                       elapsed_ms=probe.elapsed_ms, evidence={**base, "error_kind": ErrorKind.TRANSPORT_ERROR.value,
                                                              "error": probe.resolve_error}, commands=commands)
    attempts = [dict(a) for a in probe.attempts]
    connected = next((a for a in attempts if a["error_kind"] is None), None)
    if connected is not None:
        return finding("network.tcp", NET_TCP_OK,
                       f"Connected to {connected['address']}:{port} in {connected['elapsed_ms']:.0f} ms from "
                       f"{connected['source_address']}.",
                       elapsed_ms=probe.elapsed_ms,
                       evidence={**base, "address": connected["address"], "elapsed_ms": connected["elapsed_ms"],
                                 "source_address": connected["source_address"], "error_kind": None,
                                 "attempts": attempts},
                       commands=commands)
    # IMDS and HIMDS listen on IPv4: when localhost also resolved to ::1, the IPv4 attempt tells more.
    chosen = next((a for a in attempts if "." in str(a["address"])), attempts[-1] if attempts else None)
    if chosen is None:
        return finding("network.tcp", NET_TCP_OTHER, f"{host} resolved to no usable address.",
                       elapsed_ms=probe.elapsed_ms, evidence={**base, "error_kind": ErrorKind.TRANSPORT_ERROR.value},
                       commands=commands)
    try:
        kind = ErrorKind(chosen["error_kind"])
    except ValueError:
        kind = ErrorKind.TRANSPORT_ERROR
    code = _TCP_CODES.get(kind, NET_TCP_OTHER)
    if kind is ErrorKind.TRANSPORT_ERROR and chosen.get("errno") in _POLICY_ERRNOS:
        code = NET_TCP_POLICY
    detail = (f"TCP connect to {chosen['address']}:{port} failed after {chosen['elapsed_ms']:.0f} ms: "
              f"{kind.value} ({chosen['error']}).")
    return finding("network.tcp", code, detail, elapsed_ms=probe.elapsed_ms,
                   evidence={**base, "address": chosen["address"], "elapsed_ms": chosen["elapsed_ms"],
                             "error_kind": kind.value, "errno": chosen.get("errno"), "source_address": None,
                             "attempts": attempts},
                   commands=commands)


# --- route -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RouteFacts:
    """What the route check learned; the firewall check uses interface and source."""

    code: str
    detail: str
    route: Route | None = None
    primary: Route | None = None
    lookup_kind: str = ""

    @property
    def interface(self) -> str | None:
        return self.route.interface if self.route else None

    @property
    def source(self) -> str | None:
        return self.route.source if self.route else None


def assess_route(address: str, lookup_result: RouteLookup | None, table: RouteTable | None,
                 leases: Iterable[DhcpLease] = ()) -> RouteFacts:
    """Decide the route finding from parsed evidence (pure).

    ``lookup_result`` is what the kernel answered (``ip route get``); without it the route
    is looked up in ``table``. The table's default route names the primary interface.
    """
    from imds_helpers.parsers.routes import REFUSING_TYPES, default_route, is_ip, lookup

    routes = table.routes if table is not None and table.kind == "routes" else ()
    primary = default_route(routes)
    route: Route | None = None
    if lookup_result is not None and lookup_result.kind in ("route", "local"):
        route = lookup_result.route
    elif lookup_result is not None and lookup_result.kind in ("unreachable", "host_unreachable", "prohibited", "blackhole"):
        return RouteFacts(NET_NO_ROUTE, f"The kernel has no usable route to {address}: {lookup_result.message}."
                          + _lease_hint(address, leases), primary=primary, lookup_kind=lookup_result.kind)
    elif routes:
        route = lookup(routes, address)
    else:
        return RouteFacts(NET_ROUTE_UNKNOWN, f"The route to {address} could not be determined.",
                          lookup_kind=lookup_result.kind if lookup_result else "")
    kind = lookup_result.kind if lookup_result is not None else "table"
    if route is None or route.type in REFUSING_TYPES:
        what = f"a {route.type} route ({route.raw})" if route is not None else "no route"
        return RouteFacts(NET_NO_ROUTE, f"The routing table has {what} for {address}"
                          + ("" if primary else " and no default route") + "." + _lease_hint(address, leases),
                          route=route, primary=primary, lookup_kind=kind)
    if route.type == "local":
        return RouteFacts(NET_ADDRESS_LOCAL, f"{address} is an address of this machine ({route.raw}); a local "
                          "program, not Azure, answers on it.", route=route, primary=primary, lookup_kind=kind)
    via = f"via {route.gateway}" if route.gateway else "on-link"
    # Windows tables name the interface by its address, Linux/BSD by device name.
    device = f"interface {route.interface}" if route.interface and is_ip(route.interface) else f"dev {route.interface}"
    where = f"{via} {device}" + (f" src {route.source}" if route.source else "")
    if primary is None:
        why = ("there is no default route" if routes else "the routing table was not available")
        return RouteFacts(NET_ROUTE_PRIMARY, f"{address} is routed {where}; {why}, so it cannot be compared with the "
                          "primary interface.", route=route, primary=None, lookup_kind=kind)
    if route.interface and primary.interface and route.interface != primary.interface:
        return RouteFacts(NET_ROUTE_NOT_PRIMARY, f"{address} is routed {where}, but the primary interface (default route) "
                          f"is {primary.interface}.", route=route, primary=primary, lookup_kind=kind)
    if route.source and primary.source and route.source != primary.source:
        return RouteFacts(NET_ROUTE_SECONDARY_SOURCE, f"{address} is routed {where}, but the primary address (default route "
                          f"source) is {primary.source}.", route=route, primary=primary, lookup_kind=kind)
    return RouteFacts(NET_ROUTE_PRIMARY, f"{address} is routed {where} - the primary interface.",
                      route=route, primary=primary, lookup_kind=kind)


def _lease_hint(address: str, leases: Iterable[DhcpLease]) -> str:
    for lease in leases:
        offered = [r for r in lease.routes_to(address) if r.destination != "0.0.0.0/0"]
        if offered:
            r = offered[0]
            return (f" The DHCP lease offers {r.destination} via {r.gateway} ({lease.format}), so it was not applied"
                    " - check the DHCP client or a static network configuration.")
    return ""


def _route_commands(address: str) -> Commands:
    return Commands(curl=f"ip route get {address}; ip route show",
                    powershell=(f"Find-NetRoute -RemoteIPAddress {address}; "
                                f"Get-NetRoute -DestinationPrefix {address}/32; route print -4"))


def read_leases(machine: Any) -> tuple[DhcpLease, ...]:
    """Parsed DHCP leases the machine has (unreadable files are skipped)."""
    leases = []
    for pattern in LEASE_GLOBS:
        for path in machine.glob(pattern):
            text, _ = machine.read_file(path, 65536)
            if text is None:
                continue
            from imds_helpers.parsers.dhcp import parse_lease

            lease = parse_lease(text)
            if lease.kind == "lease":
                leases.append(lease)
    return tuple(leases)


ROUTE_PRINT = ("route", "print", "-4")
NETSTAT_ROUTES = ("netstat", "-rn", "-f", "inet")
IP_ROUTE_SHOW = ("ip", "route", "show")
BSD_FAMILY = ("freebsd", "darwin", "openbsd", "netbsd")


def ip_route_get(address: str) -> tuple[str, ...]:
    return ("ip", "route", "get", address)


def route_commands(endpoint_url: str, os_name: str) -> tuple[tuple[str, ...], ...]:
    """The commands the route check will run for the endpoint (none for loopback): started
    ahead by a :class:`~imds_helpers.collect.hostcmd.CommandPrefetch`, they finish while earlier
    steps run."""
    host, _ = endpoint_host_port(endpoint_url)
    if not host or is_loopback_host(host):
        return ()
    if os_name == "windows":
        return (ROUTE_PRINT,)
    if os_name in BSD_FAMILY:
        return (NETSTAT_ROUTES,)
    return (ip_route_get(host), IP_ROUTE_SHOW)


def _route_facts(address: str, machine: Any) -> tuple[RouteFacts, dict[str, Any]]:
    run, os_name = machine.run, machine.os_name
    evidence: dict[str, Any] = {"address": address, "os": os_name}
    lookup_result: RouteLookup | None = None
    table: RouteTable | None = None
    if os_name == "windows":
        out = run(ROUTE_PRINT, 2.0)
        evidence["route_print"] = _cmd(out)
        from imds_helpers.parsers.routeprint import parse_route_print

        table = parse_route_print(out.stdout) if out.error is None else None
    elif os_name in BSD_FAMILY:
        out = run(NETSTAT_ROUTES, 2.0)
        evidence["netstat"] = _cmd(out)
        from imds_helpers.parsers.netstat import parse_netstat_rn

        table = parse_netstat_rn(out.stdout) if out.error is None else None
    else:
        from imds_helpers.parsers.iproute import parse_ip_route_get, parse_ip_route_show

        get = run(ip_route_get(address), 2.0)
        evidence["ip_route_get"] = _cmd(get)
        if get.error is None:
            lookup_result = parse_ip_route_get(get.text)
            evidence["lookup"] = lookup_result.to_dict()
            show = run(IP_ROUTE_SHOW, 2.0)
            evidence["ip_route_show"] = _cmd(show)
            table = parse_ip_route_show(show.stdout) if show.error is None else None
        else:
            text, problem = machine.read_file("/proc/net/route")
            evidence["proc_net_route"] = problem or "read"
            from imds_helpers.parsers.procroute import parse_proc_net_route

            table = parse_proc_net_route(text) if text is not None else None
    if table is not None:
        evidence["table"] = {"kind": table.kind, "format": table.format, "routes": [r.raw for r in table.routes]}
    leases = read_leases(machine) if os_name not in ("windows",) else ()
    facts = assess_route(address, lookup_result, table, leases)
    if facts.code == NET_NO_ROUTE and leases:
        evidence["dhcp_leases"] = [lease.to_dict() for lease in leases]
    evidence.update({"route": facts.route.to_dict() if facts.route else None,
                     "primary": facts.primary.to_dict() if facts.primary else None,
                     "interface": facts.interface, "source_address": facts.source})
    return facts, evidence


def _cmd(out: CommandOutput) -> dict[str, Any]:
    return {"argv": " ".join(out.argv), "returncode": out.returncode, "error": out.error,
            "output": out.text.strip()[:1500]}


def check_route(address: str = IMDS_ADDRESS, *, machine: Any) -> CheckResult:
    """The route and source address the kernel uses for ``address`` (see :func:`assess_route`)."""
    if is_loopback_host(address):
        return _loopback_route(address)
    facts, evidence = _route_facts(address, machine)
    return finding("network.route", facts.code, facts.detail, evidence=evidence, commands=_route_commands(address))


def _loopback_route(address: str) -> CheckResult:
    return finding("network.route", NET_LOOPBACK, f"{address} is on loopback: no route, NIC or gateway is involved.",
                   evidence={"address": address, "interface": "loopback"}, commands=_route_commands(address))


# --- firewall --------------------------------------------------------------------------------

def _firewall_commands(address: str) -> Commands:
    return Commands(
        curl=f"sudo iptables-save | grep -n '{address}\\|owner\\|-P OUTPUT'; sudo nft list ruleset | grep -n '{address}'",
        powershell=("Get-NetFirewallRule -Direction Outbound -Enabled True -Action Block | "
                    "Get-NetFirewallAddressFilter | Where-Object RemoteAddress -match '" + address.rsplit(".", 2)[0] + "'"),
    )


def _uid_names(rulesets: Iterable[Ruleset], machine: Any) -> dict[str, int]:
    names: dict[str, int] = {}
    for ruleset in rulesets:
        for rule in ruleset.rules:
            for part in (rule.uid_owner or "").split("-"):
                part = part.strip()
                if part and not part.isdigit() and part not in names:
                    uid = machine.uid_of(part)
                    if uid is not None:
                        names[part] = uid
    return names


def read_rulesets(run: Runner) -> tuple[list[Ruleset], dict[str, Any]]:
    """iptables (``iptables-save``, else ``iptables -S`` per table) and ``nft list ruleset``.

    A command that runs and prints nothing has no rules loaded: it adds no ruleset, and its
    evidence says ``"empty": true``.
    """
    evidence: dict[str, Any] = {}
    rulesets: list[Ruleset] = []
    save = run(IPTABLES_SAVE, 2.0)
    evidence["iptables-save"] = _cmd_short(save)
    if save.ok and save.stdout.strip():
        from imds_helpers.parsers.iptables import parse_iptables

        rulesets.append(parse_iptables(save.stdout))
    elif save.ok:
        evidence["iptables-save"]["empty"] = True
    elif save.error == "not_found":
        texts = []
        for table in ("filter", "nat", "mangle", "raw"):
            out = run(["iptables", "-t", table, "-S"], 2.0)
            evidence[f"iptables -t {table} -S"] = _cmd_short(out)
            if out.ok:
                texts.append(f"*{table}\n{out.stdout}")
        if texts:
            from imds_helpers.parsers.iptables import parse_iptables

            rulesets.append(parse_iptables("\n".join(texts)))
    nft = run(NFT_RULESET, 2.0)
    evidence["nft list ruleset"] = _cmd_short(nft)
    if nft.ok and nft.stdout.strip():
        from imds_helpers.parsers.firewall import Ruleset
        from imds_helpers.parsers.nft import parse_nft_ruleset

        parsed = parse_nft_ruleset(nft.text)
        if rulesets and parsed.iptables_nft_tables:
            # Those tables repeat the iptables rules already read; counting them twice adds nothing.
            keep = tuple(r for r in parsed.rules if r.table not in parsed.iptables_nft_tables)
            chains = tuple(c for c in parsed.chains if c.table not in parsed.iptables_nft_tables)
            parsed = Ruleset(kind="rules" if keep or chains else "empty", source="nft", rules=keep, chains=chains,
                             skipped_lines=parsed.skipped_lines, iptables_nft_tables=parsed.iptables_nft_tables)
        rulesets.append(parsed)
    elif nft.ok:
        evidence["nft list ruleset"]["empty"] = True
    evidence["rulesets"] = [r.to_dict() for r in rulesets]
    return rulesets, evidence


def _cmd_short(out: CommandOutput) -> dict[str, Any]:
    problem = out.error or (None if out.returncode == 0 else (out.stderr.strip().splitlines() or [""])[-1][:300])
    return {"returncode": out.returncode, "error": problem}


_VERDICT_WORDS = {"drop": "dropped", "reject": "rejected", "other": "handed to a userspace queue"}


def assess_firewall(address: str, port: int, analysis: FirewallAnalysis) -> tuple[str, str]:
    """(code, detail) for a firewall analysis (pure)."""
    target = f"{address}:{port}"
    if analysis.kind == "blocked":
        v = analysis.blocked[0]
        return NET_FIREWALL_BLOCKS, f"New connections to {target} are {_VERDICT_WORDS[v.verdict]} for every user by: {v.decided_by}"
    if analysis.kind == "owner_restricted":
        allowed = ", ".join(v.label for v in analysis.allowed)
        blocked = ", ".join(f"{v.label} ({v.verdict})" for v in analysis.blocked)
        rule = analysis.blocked[0].decided_by
        return NET_FIREWALL_SOME_USERS, f"Only {allowed} may connect to {target}; blocked: {blocked} - by: {rule}"
    if analysis.kind == "redirected":
        r = analysis.redirects[0]
        return NET_FIREWALL_REDIRECTS, (f"Connections to {target} are redirected to {r.to or 'a local port'} "
                                f"(chain {r.chain}, applies to {r.applies_to}): {r.text}")
    if analysis.kind == "conditional":
        return NET_FIREWALL_MAYBE, (f"A rule may block {target} depending on conditions this check cannot see: "
                                f"{analysis.conditional[0]}")
    if analysis.rule_count == 0:
        return NET_FIREWALL_OK, _no_rules(target)
    mentioned = f"; {len(analysis.mentions)} rule(s) mention {address} and allow it" if analysis.mentions else ""
    return NET_FIREWALL_OK, f"No firewall rule blocks or redirects {target} ({analysis.rule_count} rules read{mentioned})."


def _no_rules(target: str) -> str:
    # Tables with nothing in them (left by an earlier iptables call) and no output at all
    # read the same: either way nothing is loaded that could block.
    return f"No firewall rules are loaded: nothing blocks or redirects {target}."


def check_firewall(address: str = IMDS_ADDRESS, port: int = 80, *, machine: Any, source: str | None = None,
                   out_interface: str | None = None) -> CheckResult:
    """Rules that drop, reject, restrict by user, or redirect new TCP connections to
    ``address:port``. ``source``/``out_interface`` (from the route) sharpen rules that match
    on them. Linux only; elsewhere, or without permission to read rules, the result is SKIP."""
    os_name = machine.os_name
    commands = _firewall_commands(address)
    if os_name != "linux":
        return finding("network.firewall", NET_FIREWALL_UNREADABLE,
                       f"Firewall rules are read on Linux only; on {os_name} check them by hand (see commands).",
                       evidence={"os": os_name}, commands=commands)
    rulesets, evidence = read_rulesets(machine.run)
    usable = [r for r in rulesets if r.kind in ("rules", "empty")]
    if not usable and any(isinstance(v, dict) and v.get("empty") for v in evidence.values()):
        return finding("network.firewall", NET_FIREWALL_OK, _no_rules(f"{address}:{port}"),
                       evidence=evidence, commands=commands)
    if not usable:
        reasons = "; ".join(f"{k}: {v['error']}" for k, v in evidence.items() if isinstance(v, dict) and v.get("error"))
        return finding("network.firewall", NET_FIREWALL_UNREADABLE,
                       f"No firewall rules could be read ({reasons or 'no iptables or nft output'}); reading "
                       "them usually needs root.", evidence=evidence, commands=commands)
    if out_interface is None and is_loopback_host(address):
        out_interface = "lo"
    from imds_helpers.parsers.firewall import Packet, analyze

    packet = Packet(address=address, port=port, source=source, out_interface=out_interface)
    analysis = analyze(usable, packet, uid_names=_uid_names(usable, machine))
    code, detail = assess_firewall(address, port, analysis)
    uid = machine.euid
    if code == NET_FIREWALL_SOME_USERS and uid is not None:
        mine = next((v for v in analysis.verdicts if v.uid == str(uid)), None) or analysis.verdicts[-1]
        detail += f". This tool runs as uid {uid}: {'allowed' if mine.verdict == 'accept' else 'blocked'}"
    evidence.update({"packet": {"address": address, "port": port, "source": source, "out_interface": out_interface},
                     "analysis": analysis.to_dict()})
    if uid is not None:
        evidence["this_process_uid"] = uid
    return finding("network.firewall", code, detail, evidence=evidence, commands=commands)


# --- all three -------------------------------------------------------------------------------

def endpoint_host_port(endpoint_url: str) -> tuple[str, int]:
    parts = urlsplit(endpoint_url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 80
    return host, port


def network_checks(endpoint_url: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT, machine: Any) -> tuple[CheckResult, ...]:
    """Route, TCP connect and firewall for the endpoint's host and port, in that order.

    For a loopback endpoint (Arc's ``localhost:40342``, an emulator on 127.0.0.1) the route
    is trivially loopback and no route command is run.
    """
    os_name = machine.os_name
    host, port = endpoint_host_port(endpoint_url)
    if is_loopback_host(host):
        route = _loopback_route(host)
        address = "127.0.0.1" if host.lower() == "localhost" else host.strip("[]")
        source, iface = address, ("lo" if os_name == "linux" else None)
    else:
        address = host
        facts, evidence = _route_facts(address, machine)
        route = finding("network.route", facts.code, facts.detail, evidence=evidence,
                        commands=_route_commands(address))
        source, iface = facts.source, facts.interface
    tcp = check_tcp(host, port, timeout=timeout, machine=machine)
    firewall = check_firewall(address, port, machine=machine, source=source, out_interface=iface)
    return route, tcp, firewall


__all__ = [
    "IMDS_ADDRESS", "RouteFacts", "assess_firewall", "assess_route", "check_firewall", "check_route",
    "check_tcp", "endpoint_host_port", "network_checks", "read_leases", "read_rulesets",
    "route_commands",
]
