"""Service state: ``systemctl show <unit> -p LoadState,ActiveState,SubState`` (Linux) and
``sc query <service>`` (Windows).

``sc`` labels are fixed identifiers in every locale (``STATE``), and the state is read from
its number, so localised words after it do not matter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SC_STATES = {
    1: "stopped", 2: "start_pending", 3: "stop_pending", 4: "running",
    5: "continue_pending", 6: "pause_pending", 7: "paused",
}


@dataclass(frozen=True)
class ServiceState:
    """A service's state from ``systemctl show`` or ``sc query``."""

    kind: str            # "running" | "stopped" | "failed" | "transitioning" | "not_found" | "no_systemd"
                         # | "empty" | "unrecognised"
    state: str = ""      # the raw state word (ActiveState/SubState or sc's state name)
    detail: str = ""

    @property
    def running(self) -> bool:
        return self.kind == "running"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "state": self.state, "detail": self.detail}


def parse_systemctl_show(text: str) -> ServiceState:
    text = text or ""
    if not text.strip():
        return ServiceState(kind="empty")
    lowered = text.lower()
    if "not been booted with systemd" in lowered or "failed to connect to bus" in lowered:
        return ServiceState(kind="no_systemd", detail=text.strip()[:200])
    values = dict(re.findall(r"^(LoadState|ActiveState|SubState)=(\S*)\s*$", text, re.MULTILINE))
    if not values:
        return ServiceState(kind="unrecognised", detail=text.strip()[:200])
    active, sub = values.get("ActiveState", ""), values.get("SubState", "")
    state = f"{active}/{sub}" if sub else active
    if values.get("LoadState") == "not-found":
        return ServiceState(kind="not_found", state=state)
    kind = {"active": "running", "inactive": "stopped", "failed": "failed",
            "activating": "transitioning", "deactivating": "transitioning",
            "reloading": "running"}.get(active, "unrecognised")
    return ServiceState(kind=kind, state=state)


def parse_sc_query(text: str) -> ServiceState:
    text = text or ""
    if not text.strip():
        return ServiceState(kind="empty")
    # "[SC] EnumQueryServicesStatus:OpenService FAILED 1060:" - the service is not installed.
    if re.search(r"FAILED\s+1060\b", text):
        return ServiceState(kind="not_found", detail="1060")
    match = re.search(r"^\s*STATE\s*:\s*(\d+)\s*(\S*)", text, re.MULTILINE)
    if not match:
        return ServiceState(kind="unrecognised", detail=text.strip()[:200])
    code = int(match.group(1)) if len(match.group(1)) < 6 else 0
    name = _SC_STATES.get(code, match.group(2).lower() or str(code))
    kind = {"running": "running", "stopped": "stopped"}.get(name, "transitioning" if code in _SC_STATES else "unrecognised")
    return ServiceState(kind=kind, state=name)
