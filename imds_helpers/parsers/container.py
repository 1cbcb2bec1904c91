"""Container markers in ``/proc/<pid>/cgroup``.

cgroup v1 paths name the runtime (``/docker/<id>``, ``/kubepods/...``); with cgroup v2 and
a private cgroup namespace a container shows just ``0::/``, which proves nothing either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Path fragment -> runtime name, most specific first.
_RUNTIMES = (
    ("kubepods", "kubernetes"),
    ("libpod", "podman"),
    ("crio", "cri-o"),
    ("cri-containerd", "containerd"),
    ("containerd", "containerd"),
    ("docker", "docker"),
    ("lxc", "lxc"),
    ("garden", "garden"),
    ("ecs", "ecs"),
)


@dataclass(frozen=True)
class CgroupHint:
    """What a cgroup file says about running in a container."""

    kind: str              # "container" | "no_marker" | "empty" | "unrecognised"
    runtime: str = ""
    line: str = ""         # the cgroup line that gave it away

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "runtime": self.runtime, "line": self.line}


def parse_cgroup(text: str) -> CgroupHint:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if not lines:
        return CgroupHint(kind="empty")
    recognised = False
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        recognised = True
        path = parts[2].lower()
        for fragment, runtime in _RUNTIMES:
            if fragment in path:
                return CgroupHint(kind="container", runtime=runtime, line=line[:200])
    return CgroupHint(kind="no_marker" if recognised else "unrecognised")
