"""Results are data: frozen dataclasses with ``to_dict()``, rendered by the caller.

A step returns one or more :class:`CheckResult`; a run collects them in a :class:`Report`
whose verdict is the worst status. Titles, explanations and fixes come from the one
catalogue (:mod:`imds_helpers.model.catalog`), never from strings scattered in the steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

from imds_helpers.model.evidence import Attempt
from imds_helpers.model.redact import redact_text, redact_value

__all__ = ["Attempt", "CheckResult", "Commands", "Report", "Status", "worst"]


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"

    def __str__(self) -> str:
        return self.value

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Status.SKIP: 0, Status.OK: 1, Status.WARN: 2, Status.FAIL: 3}


def worst(statuses) -> Status:
    """The overall verdict: the worst status; SKIP only when nothing else ran."""
    statuses = list(statuses)
    return max(statuses, key=lambda s: s.severity) if statuses else Status.SKIP


@dataclass(frozen=True)
class Commands:
    """How to reproduce a check by hand; secrets are placeholders such as ``<secret>``."""

    curl: str = ""
    powershell: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"curl": self.curl, "powershell": self.powershell}


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: code, status, evidence, fix and the commands to repeat it (redacted)."""

    id: str                      # stable check id, e.g. "network.tcp", "token.system.management"
    code: str                    # catalogue code, e.g. "IMDS-NET-002"
    status: Status
    title: str
    detail: str                  # short reason with the evidence that matters
    explanation: str = ""
    fix: str = ""
    elapsed_ms: float = 0.0
    evidence: Mapping[str, Any] = field(default_factory=dict)
    commands: Commands = field(default_factory=Commands)
    attempts: tuple[Attempt, ...] = ()

    def __post_init__(self) -> None:
        # Details and evidence quote what the service said; a hostile or broken one can echo a
        # token into an error text or a document field. Redact once, here, so that repr(),
        # to_dict() and every sidecar see the same clean values.
        object.__setattr__(self, "detail", redact_text(self.detail))
        object.__setattr__(self, "evidence", redact_value(dict(self.evidence)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "explanation": self.explanation,
            "fix": self.fix,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "evidence": redact_value(dict(self.evidence)),
            "commands": self.commands.to_dict(),
            "attempts": [a.to_dict() for a in self.attempts],
        }


@dataclass(frozen=True)
class Report:
    """Every check of one run, in order; the verdict is the worst status."""

    target: str                  # "vm" | "arc" | "none"
    endpoint: str
    checks: tuple[CheckResult, ...]
    platform: Mapping[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Status:
        return worst(c.status for c in self.checks)

    def tally(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for check in self.checks:
            counts[check.status.value] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "target": self.target,
            "endpoint": self.endpoint,
            "tally": self.tally(),
            "platform": redact_value(dict(self.platform)),
            "checks": [c.to_dict() for c in self.checks],
        }
