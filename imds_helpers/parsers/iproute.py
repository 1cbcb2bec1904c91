"""Linux iproute2: ``ip route get <address>`` and ``ip route show``.

Captures come with shell prompts, command echoes, other commands' output (``ip addr``,
``nmcli``) and old double-space formatting; only lines shaped like routes are taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from imds_helpers.parsers.routes import Route, RouteTable, is_ip, network_of

ROUTE_TYPES = frozenset({
    "unicast", "local", "broadcast", "multicast", "unreachable", "blackhole", "prohibit",
    "throw", "nat", "anycast",
})
# Keywords followed by one value in ``ip route`` output.
_VALUED = frozenset({
    "via", "dev", "src", "proto", "scope", "metric", "table", "uid", "mtu", "advmss", "hoplimit",
    "realm", "realms", "expires", "pref", "weight", "tos", "dsfield", "initcwnd", "initrwnd",
    "error", "from", "iif", "oif", "mark", "rtt", "rttvar", "nhid",
})
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_.:/<>\\-]+")
# "RTNETLINK answers: <message>" -> how the lookup failed (messages are strerror texts).
_RTNETLINK = {
    "network is unreachable": "unreachable",
    "no route to host": "host_unreachable",
    "permission denied": "prohibited",
    "invalid argument": "blackhole",
}


@dataclass(frozen=True)
class RouteLookup:
    """What ``ip route get`` said for one address."""

    kind: str               # "route" | "local" | "unreachable" | "host_unreachable" | "prohibited"
                            # | "blackhole" | "error" | "empty" | "unrecognised"
    route: Route | None = None
    message: str = ""       # the RTNETLINK / error line, when there was one

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "route": self.route.to_dict() if self.route else None, "message": self.message}


def _metric(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and len(value) < 12 else None


def parse_route_line(line: str) -> Route | None:
    """One ``ip route`` line as a :class:`Route`, or None if it is not shaped like one."""
    tokens = line.split()
    if not tokens:
        return None
    rtype = "unicast"
    if tokens[0] in ROUTE_TYPES and len(tokens) > 1:
        rtype, tokens = tokens[0], tokens[1:]
    head = tokens[0]
    if head == "default":
        destination = "0.0.0.0/0"
    else:
        net = network_of(head)
        if net is None or not (is_ip(head.split("/")[0])):
            return None
        destination = str(net)
    values: dict[str, str] = {}
    rest = tokens[1:]
    i = 0
    while i < len(rest):
        word = rest[i]
        if word in _VALUED and i + 1 < len(rest):
            values.setdefault(word, rest[i + 1])
            i += 2
            continue
        if not _PLAIN_TOKEN.fullmatch(word):
            # Prompt or shell syntax where a keyword belongs: not an ip-route line after all.
            return None
        i += 1
    gateway = values.get("via")
    if gateway is not None and not is_ip(gateway):
        gateway = None
    return Route(
        destination=destination, gateway=gateway, interface=values.get("dev"), source=values.get("src"),
        metric=_metric(values.get("metric")), proto=values.get("proto"), type=rtype, raw=line.strip(),
    )


def parse_ip_route_show(text: str) -> RouteTable:
    """``ip route show`` / ``ip -4 route`` output (multipath ``nexthop`` lines included)."""
    routes: list[Route] = []
    skipped = 0
    for line in (text or "").splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("nexthop") and routes:
            hop = parse_route_line("0.0.0.0/0 " + stripped[len("nexthop"):])
            last = routes[-1]
            if hop is not None and last.gateway is None and last.interface is None:
                # The first next hop stands for the route; the kernel balances across all.
                routes[-1] = Route(last.destination, hop.gateway, hop.interface, last.source, last.metric,
                                   last.proto, last.type, raw=last.raw + " " + stripped)
                continue
        route = parse_route_line(stripped)
        if route is None:
            skipped += 1
        else:
            routes.append(route)
    if routes:
        kind = "routes"
    elif skipped:
        kind = "unrecognised"
    else:
        kind = "empty"
    return RouteTable(kind=kind, format="ip-route", routes=tuple(routes), skipped_lines=skipped)


def parse_ip_route_get(text: str) -> RouteLookup:
    """``ip route get <address>`` output, or its RTNETLINK error (pass stdout + stderr)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if not lines:
        return RouteLookup(kind="empty")
    for line in lines:
        lowered = line.lower()
        if "rtnetlink answers:" in lowered:
            message = line.split(":", 1)[1].strip()
            return RouteLookup(kind=_RTNETLINK.get(message.lower().rstrip("."), "error"), message=line)
        if lowered.startswith("error:"):
            return RouteLookup(kind="error", message=line)
    for line in lines:
        if line.startswith(("ip route", "ip -", "cache")) or "$" in line or "#" in line:
            continue
        route = parse_route_line(line)
        if route is not None:
            kind = "local" if route.type == "local" else "route"
            return RouteLookup(kind=kind, route=route)
    return RouteLookup(kind="unrecognised", message=lines[0][:200])
