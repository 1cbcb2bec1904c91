"""Windows ``route print`` (IPv4 part).

Headings are localised ("Active Routes:", "Aktive Routen:"), so rows are recognised by
shape, not by the English text: destination, netmask, gateway (an address or the localised
"On-link"), interface address, metric. Persistent routes have four columns.
"""

from __future__ import annotations

import ipaddress
import re

from imds_helpers.parsers.routes import Route, RouteTable, is_ip

_INTERFACE = re.compile(r"^\s*(\d+)\.{3}((?:[0-9a-fA-F]{2} )*[0-9a-fA-F]{2})?\s*\.+(.*)$")


def _network(dest: str, mask: str) -> str | None:
    try:
        return str(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    except ValueError:
        return None


def parse_route_print(text: str) -> RouteTable:
    routes: list[Route] = []
    interfaces: list[dict[str, str]] = []
    skipped = 0
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        if "IPv6" in line and "=" not in line and len(line.split()) <= 4 and routes:
            break  # the IPv6 table follows; its rows are not IPv4 routes
        match = _INTERFACE.match(line)
        if match:
            interfaces.append({"index": match.group(1), "mac": (match.group(2) or "").replace(" ", "-"),
                               "description": match.group(3).strip()})
            continue
        tokens = line.split()
        route = _active_row(tokens, line) or _persistent_row(tokens, line)
        if route is None:
            skipped += 1
        else:
            routes.append(route)
    if routes:
        kind = "routes"
    elif skipped or interfaces:
        kind = "unrecognised"
    else:
        kind = "empty"
    return RouteTable(kind=kind, format="route-print", routes=tuple(routes), skipped_lines=skipped,
                      interfaces=tuple(interfaces))


def _active_row(tokens: list[str], line: str) -> Route | None:
    # dest mask <gateway words...> interface metric
    if len(tokens) < 5 or not tokens[-1].isdigit() or len(tokens[-1]) > 9:
        return None
    dest, mask, iface = tokens[0], tokens[1], tokens[-2]
    if not (is_ip(dest) and is_ip(mask) and is_ip(iface)) or ":" in dest:
        return None
    network = _network(dest, mask)
    if network is None:
        return None
    gateway_words = tokens[2:-2]
    gateway = gateway_words[0] if len(gateway_words) == 1 and is_ip(gateway_words[0]) else None
    return Route(destination=network, gateway=gateway, interface=iface, metric=int(tokens[-1]), raw=line.strip())


def _persistent_row(tokens: list[str], line: str) -> Route | None:
    # dest mask gateway metric  ("Default" or a number)
    if len(tokens) != 4 or not (tokens[3].isdigit() or tokens[3].isalpha()):
        return None
    dest, mask, gateway = tokens[:3]
    if not (is_ip(dest) and is_ip(mask) and is_ip(gateway)) or ":" in dest:
        return None
    network = _network(dest, mask)
    if network is None:
        return None
    metric = int(tokens[3]) if tokens[3].isdigit() and len(tokens[3]) < 10 else None
    return Route(destination=network, gateway=gateway, metric=metric, persistent=True, raw=line.strip())
