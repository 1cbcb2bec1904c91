"""THE fault matrix: every emulator scenario and what the diagnosis must say about it.

One row per scenario; a new scenario is one new row (a test fails until it has one). Each row
names the check ids that must carry the given codes and whether the verdict must be FAIL.
Checks that depend on the machine running the tests (container markers, Arc environment
variables) are not asserted here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNATTACHED_CLIENT_ID = "11111111-2222-3333-4444-555555555555"
RETRIED = "IMDS-HTTP-017"      # the step succeeded only after retries


@dataclass(frozen=True)
class Case:
    scenario: str
    expect: dict[str, str]                 # check id -> finding code
    fails: bool                            # verdict must be FAIL (else: must not be FAIL)
    args: tuple[str, ...] = field(default=())   # extra `imds-runbook check` arguments
    cli_timeout: float = 2.0               # `--timeout` for the CLI run (the API runs with defaults)


def _vm_ok(**extra: str) -> dict[str, str]:
    return {"metadata.instance": "IMDS-META-000", "token.system.management": "IMDS-TOKEN-000",
            "token.system.monitor": "IMDS-TOKEN-000", **extra}


def _all_http(code: str) -> dict[str, str]:
    return {"metadata.instance": code, "token": "-"}


def _arc(step: str, code: str) -> dict[str, str]:
    return {"metadata.instance": "IMDS-META-000", step: code}


MATRIX: tuple[Case, ...] = (
    Case("vm-healthy", _vm_ok(**{"metadata.newest": "IMDS-META-005"}), False),
    Case("vm-no-identity", {"token.system.management": "IMDS-TOKEN-001", "token.system.monitor": "IMDS-TOKEN-001"}, True),
    Case("vm-user-assigned-only", _vm_ok(), False),
    Case("vm-multiple-user-assigned", {"token.system.management": "IMDS-TOKEN-003"}, True),
    Case("vm-unknown-resource", {"token.system.management": "IMDS-TOKEN-004", "token.system.monitor": "IMDS-TOKEN-004"}, True),
    Case("vm-throttled", {"metadata.instance": "IMDS-HTTP-011", "token.system.management": "IMDS-HTTP-011"}, False),
    # Answered only after retries: a warning (IMDS-HTTP-017) where the retries got through.
    Case("vm-updating", _vm_ok(**{"metadata.instance": RETRIED}), False,
         cli_timeout=6.0),   # 410 for 3 s: the retries must outlast it
    Case("vm-transient-5xx", _vm_ok(**{"metadata.instance": RETRIED, "metadata.newest": RETRIED,
                                       "token.system.management": RETRIED}), False),
    Case("vm-token-404-then-ok", _vm_ok(**{"token.system.management": RETRIED}), False),
    Case("vm-identity-propagating", {"token.system.management": "IMDS-TOKEN-001"}, True),
    Case("vm-forwarded-rejected", _all_http("IMDS-HTTP-010"), True),
    Case("vm-malformed-json", _all_http("IMDS-HTTP-007"), True),
    Case("vm-truncated-body", _all_http("IMDS-HTTP-007"), True),
    Case("vm-oversized-body", _all_http("IMDS-HTTP-008"), True),
    Case("vm-not-imds-html", _all_http("IMDS-HTTP-009"), True),
    Case("vm-docker-desktop-403", _all_http("IMDS-HTTP-009"), True),
    Case("vm-connection-reset", _all_http("IMDS-HTTP-005"), True),
    Case("vm-firewalled", {"network.tcp": "IMDS-NET-011", "metadata.instance": "-", "token": "-"}, True),
    Case("vm-accept-then-hang", _all_http("IMDS-HTTP-004"), True),
    Case("vm-slow-drip", _all_http("IMDS-HTTP-006"), True),
    Case("vm-slow-headers", _all_http("IMDS-HTTP-006"), True),   # a byte per 0.5 s: only a deadline ends it
    Case("vm-old-api-versions", {"metadata.instance": "IMDS-META-002", "token.system.management": "IMDS-TOKEN-000"}, False),
    Case("vm-persistent-5xx", {"metadata.instance": "IMDS-META-000", "token.system.management": "IMDS-HTTP-013"}, True),
    Case("vm-no-loadbalancer", _vm_ok(), False),
    Case("vm-scheduled-maintenance", _vm_ok(), False),
    Case("arc-healthy", {**_arc("arc.token", "IMDS-ARC-000"), "arc.challenge": "IMDS-ARC-001",
                         "arc.realm": "IMDS-ARC-002", "arc.keyfile": "IMDS-ARC-003"}, False),
    Case("arc-no-challenge-header", _arc("arc.challenge", "IMDS-ARC-013"), True),
    Case("arc-realm-outside-tokens-dir", _arc("arc.realm", "IMDS-ARC-021"), True),
    Case("arc-realm-not-key", _arc("arc.realm", "IMDS-ARC-022"), True),
    Case("arc-realm-traversal", _arc("arc.realm", "IMDS-ARC-021"), True),
    Case("arc-realm-symlink-out", _arc("arc.realm", "IMDS-ARC-021"), True),
    Case("arc-realm-fifo", _arc("arc.realm", "IMDS-ARC-024"), True),
    Case("arc-realm-dev-zero", _arc("arc.realm", "IMDS-ARC-021"), True),
    Case("arc-realm-directory", _arc("arc.realm", "IMDS-ARC-024"), True),
    Case("arc-realm-huge-file", _arc("arc.realm", "IMDS-ARC-025"), True),
    Case("arc-realm-with-equals", _arc("arc.challenge", "IMDS-ARC-014"), True),
    Case("arc-key-too-large", _arc("arc.realm", "IMDS-ARC-025"), True),
    # Root reads a mode-0000 file (and is warned for the himds group); anyone else is refused.
    Case("arc-key-unreadable", _arc("arc.realm", "IMDS-ARC-029|IMDS-ARC-026"), False),
    Case("arc-wrong-secret", _arc("arc.token", "IMDS-ARC-030"), True),
    Case("arc-agent-disconnected", _arc("arc.token", "IMDS-ARC-031"), True),
    Case("arc-unknown-resource", _arc("arc.token", "IMDS-TOKEN-004"), True),
    Case("arc-legacy-agent", _arc("arc.token", "IMDS-ARC-000"), False),
    # The same scenarios asked for more than the defaults.
    Case("vm-healthy", {"token.client_id:11111111.management": "IMDS-TOKEN-002"}, True,
         ("--client-id", UNATTACHED_CLIENT_ID)),
    Case("vm-multiple-user-assigned", {"token.system.management": "IMDS-TOKEN-003"}, True,
         ("--client-id", UNATTACHED_CLIENT_ID)),
)


def matches(expected: str, code: str) -> bool:
    return code in expected.split("|")


def problems(case: Case, report: dict) -> list[str]:
    """What in a report (``Report.to_dict()`` or a sidecar) contradicts the row; [] if none."""
    found: dict[str, list[str]] = {}
    for check in report["checks"]:
        found.setdefault(check["id"], []).append(check["code"])
    out = []
    for check_id, code in case.expect.items():
        codes = found.get(check_id, [])
        if not any(matches(code, c) for c in codes):
            out.append(f"{check_id}: expected {code}, got {codes or 'no such check'}")
    failed = report["verdict"] == "fail"
    if failed != case.fails:
        out.append(f"verdict {report['verdict']} (expected {'fail' if case.fails else 'not fail'})")
    return out
