"""DHCP leases: the classless static routes (option 121) Azure hands out, which normally
include ``169.254.169.254/32 via <gateway>``. A lease that offers the route while the
table lacks it points at the DHCP client or a static network configuration.

Formats: systemd-networkd lease files (``ROUTES=dest/len,gw ...``), ``dhcpcd --dumplease``
(``classless_static_routes='dest/len gw ...'``) and ISC dhclient leases
(``option rfc3442-classless-static-routes 32,169,254,169,254,10,0,0,1;``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from imds_helpers.parsers.routes import is_ip


@dataclass(frozen=True)
class LeaseRoute:
    """A classless static route (option 121) a DHCP lease offers."""

    destination: str     # CIDR
    gateway: str

    def to_dict(self) -> dict[str, str]:
        return {"destination": self.destination, "gateway": self.gateway}


@dataclass(frozen=True)
class DhcpLease:
    """A DHCP lease file: the address, router and the routes it offers."""

    kind: str                        # "lease" | "empty" | "unrecognised"
    format: str                      # "systemd-networkd" | "dhcpcd" | "dhclient" | "unknown"
    address: str | None = None
    router: str | None = None
    server: str | None = None
    routes: tuple[LeaseRoute, ...] = ()

    def routes_to(self, address: str) -> tuple[LeaseRoute, ...]:
        """Offered routes whose destination contains ``address``."""
        try:
            target = ipaddress.ip_address(address)
        except ValueError:
            return ()
        found = []
        for route in self.routes:
            try:
                if target in ipaddress.ip_network(route.destination, strict=False):
                    found.append(route)
            except ValueError:
                continue
        return tuple(found)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "format": self.format, "address": self.address, "router": self.router,
                "server": self.server, "routes": [r.to_dict() for r in self.routes]}


def _route(destination: str, gateway: str) -> LeaseRoute | None:
    try:
        net = ipaddress.IPv4Network(destination, strict=False)
    except ValueError:
        return None
    return LeaseRoute(str(net), gateway) if is_ip(gateway) else None


def _first_ip(value: str | None) -> str | None:
    for word in (value or "").replace(",", " ").split():
        if is_ip(word):
            return word
    return None


def parse_lease(text: str) -> DhcpLease:
    """Any of the three lease formats; the format is recognised from the content."""
    text = text or ""
    if re.search(r"^\s*(lease\s*\{|option\s+[\w-]+\s)", text, re.MULTILINE):
        return _dhclient(text)
    if re.search(r"^[a-z_]+='", text, re.MULTILINE):
        return _dhcpcd(text)
    if re.search(r"^[A-Z][A-Z0-9_]*=", text, re.MULTILINE):
        return _networkd(text)
    return DhcpLease(kind="empty" if not text.strip() else "unrecognised", format="unknown")


def _pairs(text: str, pattern: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for match in re.finditer(pattern, text, re.MULTILINE):
        values.setdefault(match.group(1), match.group(2))
    return values


def _networkd(text: str) -> DhcpLease:
    values = _pairs(text, r"^([A-Z][A-Z0-9_]*)=(.*)$")
    routes = []
    # ROUTES (older systemd) and CLASSLESS_ROUTES/STATIC_ROUTES (newer) share one shape.
    for key in ("CLASSLESS_ROUTES", "ROUTES", "STATIC_ROUTES"):
        for item in values.get(key, "").split():
            dest, _, gateway = item.partition(",")
            route = _route(dest, gateway)
            if route:
                routes.append(route)
    return DhcpLease(kind="lease", format="systemd-networkd", address=_first_ip(values.get("ADDRESS")),
                     router=_first_ip(values.get("ROUTER")), server=_first_ip(values.get("SERVER_ADDRESS")),
                     routes=tuple(dict.fromkeys(routes)))


def _dhcpcd(text: str) -> DhcpLease:
    values = _pairs(text, r"^([a-z_]+)='([^']*)'")
    words = values.get("classless_static_routes", values.get("ms_classless_static_routes", "")).split()
    routes = [r for r in (_route(d, g) for d, g in zip(words[0::2], words[1::2])) if r]
    return DhcpLease(kind="lease", format="dhcpcd", address=_first_ip(values.get("ip_address")),
                     router=_first_ip(values.get("routers")), server=_first_ip(values.get("dhcp_server_identifier")),
                     routes=tuple(routes))


def _dhclient(text: str) -> DhcpLease:
    # A lease file holds every lease ever obtained; the last block is the current one.
    blocks = re.split(r"^\s*lease\s*\{", text, flags=re.MULTILINE)
    block = blocks[-1]
    options = _pairs(block, r"^\s*option\s+([\w-]+)\s+(.*?);?\s*$")
    fixed = re.search(r"^\s*fixed-address\s+([\d.]+)", block, re.MULTILINE)
    return DhcpLease(kind="lease", format="dhclient", address=fixed.group(1) if fixed else None,
                     router=_first_ip(options.get("routers")), server=_first_ip(options.get("dhcp-server-identifier")),
                     routes=_rfc3442(options.get("rfc3442-classless-static-routes", "")))


def _rfc3442(value: str) -> tuple[LeaseRoute, ...]:
    """Decode ``width, significant octets, gateway octets`` groups (RFC 3442)."""
    try:
        octets = [int(x) for x in value.replace(" ", "").rstrip(";").split(",") if x != ""]
    except ValueError:
        return ()
    routes = []
    i = 0
    while i < len(octets):
        width = octets[i]
        significant = (width + 7) // 8
        if width > 32 or i + 1 + significant + 4 > len(octets):
            break
        dest = octets[i + 1:i + 1 + significant] + [0] * (4 - significant)
        gateway = octets[i + 1 + significant:i + 5 + significant]
        if any(o > 255 for o in dest + gateway):
            break
        route = _route(".".join(map(str, dest)) + f"/{width}", ".".join(map(str, gateway)))
        if route:
            routes.append(route)
        i += 5 + significant
    return tuple(routes)
