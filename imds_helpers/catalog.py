"""The one table of finding codes: code, default status, title, explanation, fix.

Adding a finding is adding a row. Steps refer to codes only; :func:`finding` fills in the
words from this table. Docs and tests list the codes from ``CATALOG``.

Code scheme ``IMDS-<AREA>-<NNN>``; NNN = 000 is the area's "all good" row.
  PLAT  platform detection         PROXY proxy configuration      NET   route / TCP / firewall
  META  instance metadata          TOKEN managed-identity tokens  ARC   Arc HIMDS challenge
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from imds_helpers.findings import Attempt, CheckResult, Commands, Status


@dataclass(frozen=True)
class FindingSpec:
    code: str
    status: Status
    title: str
    explanation: str
    fix: str


def _rows(*rows: tuple[str, str, str, str, str]) -> dict[str, FindingSpec]:
    return {code: FindingSpec(code, Status(status), title, explanation, fix)
            for code, status, title, explanation, fix in rows}


CATALOG: dict[str, FindingSpec] = {}

# --- PLAT / PROXY / NET (platform, proxy, network path) ------------------------------------
CATALOG.update(_rows(
))

# --- META / TOKEN (instance metadata, managed-identity tokens) -----------------------------
CATALOG.update(_rows(
))

# --- ARC (HIMDS challenge: 401 -> realm -> key file -> Basic -> token) ----------------------
CATALOG.update(_rows(
))


def finding(
    check_id: str,
    code: str,
    detail: str,
    *,
    status: Status | None = None,
    elapsed_ms: float = 0.0,
    evidence: Mapping[str, Any] | None = None,
    commands: Commands | None = None,
    attempts: tuple[Attempt, ...] = (),
) -> CheckResult:
    """Build a :class:`CheckResult` whose words come from the catalogue row ``code``."""
    spec = CATALOG[code]
    return CheckResult(
        id=check_id,
        code=code,
        status=status or spec.status,
        title=spec.title,
        detail=detail,
        explanation=spec.explanation,
        fix=spec.fix,
        elapsed_ms=elapsed_ms,
        evidence=dict(evidence or {}),
        commands=commands or Commands(),
        attempts=attempts,
    )
