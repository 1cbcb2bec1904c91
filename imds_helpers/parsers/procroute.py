"""Linux ``/proc/net/route``: the IPv4 main table in little-endian hex, readable without
iproute2 (minimal images, containers)."""

from __future__ import annotations

import ipaddress
import socket
import struct

from imds_helpers.parsers.routes import Route, RouteTable

_RTF_UP = 0x0001
_RTF_GATEWAY = 0x0002
_RTF_REJECT = 0x0200


def _hex_ip(value: str) -> str | None:
    if len(value) != 8:
        return None
    try:
        return socket.inet_ntoa(struct.pack("<I", int(value, 16)))
    except (ValueError, struct.error, OSError):
        return None


def parse_proc_net_route(text: str) -> RouteTable:
    routes: list[Route] = []
    skipped = 0
    for line in (text or "").splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "Iface" or len(fields) < 8:
            skipped += 1
            continue
        iface, dest_hex, gw_hex, flags_hex, _refcnt, _use, metric, mask_hex = fields[:8]
        dest, gateway, mask = _hex_ip(dest_hex), _hex_ip(gw_hex), _hex_ip(mask_hex)
        try:
            flags = int(flags_hex, 16)
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen if mask else None
            network = str(ipaddress.IPv4Network(f"{dest}/{prefix}", strict=False)) if dest and prefix is not None else None
        except ValueError:
            network = None
            flags = 0
        if network is None:
            skipped += 1
            continue
        if not flags & _RTF_UP:
            continue  # a route that is down is not used
        routes.append(Route(
            destination=network,
            gateway=gateway if flags & _RTF_GATEWAY else None,
            interface=iface,
            metric=int(metric) if metric.isdigit() and len(metric) < 12 else None,
            type="unreachable" if flags & _RTF_REJECT else "unicast",
            raw=line.strip(),
        ))
    kind = "routes" if routes else ("unrecognised" if skipped and not _only_header(text) else "empty")
    return RouteTable(kind=kind, format="proc-net-route", routes=tuple(routes), skipped_lines=skipped)


def _only_header(text: str) -> bool:
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].split()[:1] == ["Iface"]
