"""The route model shared by the route-table parsers, and longest-prefix lookup."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable

# Route types that make the kernel refuse the packet instead of sending it.
REFUSING_TYPES = frozenset({"unreachable", "blackhole", "prohibit", "throw"})


@dataclass(frozen=True)
class Route:
    """One route, whatever table format it came from."""

    destination: str                 # CIDR, e.g. "169.254.169.254/32", "0.0.0.0/0"
    gateway: str | None = None       # None = on-link
    interface: str | None = None     # device name (Linux/BSD) or interface address (Windows)
    source: str | None = None        # preferred source address, when the table says
    metric: int | None = None
    proto: str | None = None         # dhcp, kernel, static, ...
    type: str = "unicast"            # unicast | local | broadcast | unreachable | blackhole | ...
    persistent: bool = False         # Windows "Persistent Routes" (configuration, not active)
    raw: str = ""

    @property
    def is_default(self) -> bool:
        return self.destination in ("0.0.0.0/0", "::/0")

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination, "gateway": self.gateway, "interface": self.interface,
            "source": self.source, "metric": self.metric, "proto": self.proto, "type": self.type,
            "persistent": self.persistent, "raw": self.raw,
        }


@dataclass(frozen=True)
class RouteTable:
    """A parsed routing table."""

    kind: str                        # "routes" | "empty" | "unrecognised"
    format: str                      # "ip-route" | "proc-net-route" | "route-print" | "netstat-rn"
    routes: tuple[Route, ...] = ()
    skipped_lines: int = 0           # lines that were not routes (prompts, headers, other output)
    interfaces: tuple[dict[str, str], ...] = field(default=())   # Windows "Interface List"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "format": self.format, "skipped_lines": self.skipped_lines,
            "routes": [r.to_dict() for r in self.routes], "interfaces": [dict(i) for i in self.interfaces],
        }


def network_of(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``text`` as a network (host addresses become /32 or /128), or None if it is not one."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except (ValueError, TypeError):
        return None


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except (ValueError, TypeError):
        return False
    return True


def lookup(routes: Iterable[Route], address: str) -> Route | None:
    """The route the kernel would pick for ``address`` from one table: the longest prefix,
    then the lowest metric. Persistent (inactive) Windows routes are ignored."""
    try:
        target = ipaddress.ip_address(address)
    except ValueError:
        return None
    best: tuple[int, int, Route] | None = None
    for route in routes:
        net = network_of(route.destination)
        if route.persistent or net is None or net.version != target.version or target not in net:
            continue
        key = (net.prefixlen, -(route.metric if route.metric is not None else 0), route)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


def default_route(routes: Iterable[Route]) -> Route | None:
    """The active default route with the lowest metric: its interface is the primary NIC."""
    candidates = [r for r in routes if r.is_default and not r.persistent and r.type == "unicast"]
    if not candidates:
        return None
    return min(candidates, key=lambda r: r.metric if r.metric is not None else 0)
