"""BSD ``netstat -rn -f inet`` (FreeBSD; macOS prints the same columns).

Destinations may omit the mask: ``default``, host routes (flag H), classful networks, or
macOS's shortened forms such as ``169.254`` or ``10.0.0/24``.
"""

from __future__ import annotations

import ipaddress

from imds_helpers.parsers.routes import Route, RouteTable, is_ip


def _destination(dest: str, flags: str) -> str | None:
    if dest == "default":
        return "0.0.0.0/0"
    address, _, bits = dest.partition("/")
    parts = address.split(".")
    if not 1 <= len(parts) <= 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        return None
    if bits:
        prefix = bits
    elif "H" in flags:
        prefix = "32"
    elif len(parts) < 4:
        prefix = str(8 * len(parts))
    else:
        first = int(parts[0])
        if address == "0.0.0.0":
            prefix = "0"
        else:
            prefix = "8" if first < 128 else "16" if first < 192 else "24" if first < 224 else "32"
    padded = ".".join(parts + ["0"] * (4 - len(parts)))
    try:
        return str(ipaddress.IPv4Network(f"{padded}/{prefix}", strict=False))
    except ValueError:
        return None


def parse_netstat_rn(text: str) -> RouteTable:
    routes: list[Route] = []
    skipped = 0
    columns: list[str] = ["Destination", "Gateway", "Flags", "Netif", "Expire"]
    for line in (text or "").splitlines():
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0] == "Destination":
            columns = tokens
            continue
        row = dict(zip(columns, tokens))
        dest = _destination(row.get("Destination", ""), row.get("Flags", ""))
        flags = row.get("Flags", "")
        if dest is None or len(tokens) < 3 or not flags.isalnum():
            skipped += 1
            continue
        gateway = row.get("Gateway", "")
        # An address in the Gateway column is the next hop (some tables omit the G flag);
        # "link#N", a MAC or 0.0.0.0 means on-link.
        uses_gateway = is_ip(gateway) and gateway != "0.0.0.0"
        routes.append(Route(
            destination=dest,
            gateway=gateway if uses_gateway else None,
            interface=row.get("Netif"),
            type="blackhole" if "B" in flags else "unreachable" if "R" in flags else "unicast",
            raw=line.strip(),
        ))
    kind = "routes" if routes else ("unrecognised" if skipped else "empty")
    return RouteTable(kind=kind, format="netstat-rn", routes=tuple(routes), skipped_lines=skipped)
