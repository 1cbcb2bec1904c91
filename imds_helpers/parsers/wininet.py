"""WinINet ("Internet Options") proxy settings from the registry values under
``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings``, given as a dict.

They apply per user (the SYSTEM account has its own), and Python's urllib/requests fall
back to them on Windows when no proxy environment variable is set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from imds_helpers.parsers.netsh import split_bypass


@dataclass(frozen=True)
class WinInetProxy:
    """This user's WinINet (Internet Options) proxy settings."""

    kind: str                          # "proxy" | "direct" | "empty" | "unrecognised"
    enabled: bool = False
    servers: Mapping[str, str] = field(default_factory=dict)   # scheme ("*" = all) -> host:port
    bypass_list: tuple[str, ...] = ()
    auto_config_url: str = ""          # PAC script: where requests go is decided by script
    auto_detect: bool | None = None

    def server_for(self, scheme: str) -> str | None:
        return self.servers.get(scheme) or self.servers.get("*")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "enabled": self.enabled, "servers": dict(self.servers),
                "bypass_list": list(self.bypass_list), "auto_config_url": self.auto_config_url,
                "auto_detect": self.auto_detect}


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, (bytes, bytearray)) and value:
        return int.from_bytes(bytes(value[:4]), "little")
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,11}\s*", value):
        return int(value)
    return None


def parse_proxy_server(value: str) -> dict[str, str]:
    """``host:port`` (all schemes) or ``http=host:port;https=host:port``."""
    servers: dict[str, str] = {}
    for part in (value or "").replace(" ", ";").split(";"):
        if not part:
            continue
        scheme, sep, server = part.partition("=")
        if sep:
            if scheme and server:
                servers.setdefault(scheme.lower(), server)
        else:
            servers.setdefault("*", part)
    return servers


def parse_wininet(values: Mapping[str, Any] | None) -> WinInetProxy:
    if not values:
        return WinInetProxy(kind="empty")
    try:
        lowered = {str(k).lower(): v for k, v in values.items()}
    except (AttributeError, TypeError):
        return WinInetProxy(kind="unrecognised")
    enable = _as_int(lowered.get("proxyenable"))
    server = lowered.get("proxyserver")
    override = lowered.get("proxyoverride")
    pac = lowered.get("autoconfigurl")
    detect = _as_int(lowered.get("autodetect"))
    if enable is None and not isinstance(server, str) and not isinstance(pac, str):
        return WinInetProxy(kind="unrecognised")
    servers = parse_proxy_server(server) if isinstance(server, str) else {}
    enabled = bool(enable) and bool(servers)
    return WinInetProxy(
        kind="proxy" if enabled else "direct",
        enabled=enabled,
        servers=servers,
        bypass_list=split_bypass(override) if isinstance(override, str) else (),
        auto_config_url=pac if isinstance(pac, str) else "",
        auto_detect=bool(detect) if detect is not None else None,
    )
