"""``imds-runbook check``: doctor-style listing or one JSON object.

Exit codes: 0 all ok, 1 any warn or fail, 2 bad usage. Imports stay light (no pandas,
no Jupyter): this is the quick path.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time

from imds_helpers.model.findings import Report, Status
from imds_helpers.model.redact import redact_text, redact_value
from imds_helpers.model.textsafe import json_safe, terminal_safe

LABELS = {Status.OK: "OK", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "SKIP"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="auto", help="auto (detect), vm (IMDS) or arc (HIMDS); default auto")
    parser.add_argument("--endpoint", metavar="URL", help="base URL of the metadata service (wins over detection)")
    parser.add_argument("--resource", metavar="URI", action="append", default=[],
                        help="token audience; repeatable (default: management and monitor)")
    parser.add_argument("--client-id", metavar="ID", action="append", default=[], help="user-assigned identity by client id")
    parser.add_argument("--object-id", metavar="ID", action="append", default=[], help="user-assigned identity by object id")
    parser.add_argument("--msi-res-id", metavar="ID", action="append", default=[], help="user-assigned identity by resource id")
    parser.add_argument("--timeout", metavar="S", help="time budget per step in seconds (default 10; connect 2, read 5)")
    parser.add_argument("--tokens-dir", metavar="DIR", help="Arc key directory (default: the platform's)")
    parser.add_argument("--proxy-comparison", action="store_true",
                        help="also fetch instance metadata THROUGH the configured proxy (never a token)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the listing")
    parser.add_argument("--save-evidence", metavar="FILE",
                        help="also write the evidence bundle this run was judged on (imds-runbook analyze reads it)")


def run(args: argparse.Namespace) -> int:
    # A short run that allocates a lot while importing: the cyclic collector only slows it
    # down (about 5 % of a healthy check). Switched back on for in-process callers.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _run(args)
    finally:
        if collecting:
            gc.enable()


def _run(args: argparse.Namespace) -> int:
    from imds_helpers.collect.hostcmd import CommandPrefetch, evidence_commands

    out = None
    if args.save_evidence:
        from imds_helpers.cli.evidence import output_path

        out = output_path(args.save_evidence, argument="--save-evidence")
    # The host commands every run reads (service state, firewall rules) start now and finish
    # while the HTTP stack is still importing; the steps collect their output later.
    with CommandPrefetch(evidence_commands()) as prefetch:
        from imds_helpers.api import check, check_options

        opts = check_options(
            target=args.target, endpoint=args.endpoint, resources=args.resource, client_ids=args.client_id,
            object_ids=args.object_id, msi_res_ids=args.msi_res_id, timeout=args.timeout,
            proxy_comparison=args.proxy_comparison, tokens_dir=args.tokens_dir, runner=prefetch,
        )
        started = time.monotonic()
        report, bundle = check(opts)       # collect on this machine, then analyze the bundle
        elapsed_ms = (time.monotonic() - started) * 1000
    if out is not None:
        from imds_helpers.cli.evidence import write_bundle

        write_bundle(out, bundle)
    sys.stdout.write(render(report, elapsed_ms, as_json=args.json) + "\n")
    return exit_code(report)


def exit_code(report: Report) -> int:
    return 0 if report.verdict in (Status.OK, Status.SKIP) else 1


def render_json(report: Report, elapsed_ms: float, **extra: str) -> str:
    """One report as one compact JSON line (analyze of many bundles: JSON Lines), ``extra``
    fields first."""
    data = {**extra, **redact_value(report.to_dict()), "elapsed_ms": round(elapsed_ms, 1)}
    return json_safe(json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def render(report: Report, elapsed_ms: float, *, as_json: bool) -> str:
    """What check and analyze print. Last line of defence: whatever a step put into the output,
    no token leaves."""
    if as_json:
        data = redact_value(report.to_dict())
        data["elapsed_ms"] = round(elapsed_ms, 1)
        return json_safe(json.dumps(data, indent=2, ensure_ascii=False))   # C1, bidi, surrogates as \u escapes
    return redact_text(render_text(report, elapsed_ms))


def render_text(report: Report, elapsed_ms: float) -> str:
    """One line per check (status, code, id, reason), the fix under each problem, a tally.

    Details quote what the service answered (metadata values, headers, error_description):
    each line is redacted, then made terminal-safe, so no escape sequence reaches the terminal
    and a line break in a value cannot forge another finding. (Redacted first: the secret
    patterns match raw whitespace, which escaping would hide.)"""
    lines = [f"imds-runbook check: target {report.target}, endpoint {report.endpoint}"]
    reason = report.platform.get("reason") if report.platform else None
    if reason:
        lines.append(f"  ({reason})")
    width = max((len(c.id) for c in report.checks), default=10)
    for check in report.checks:
        lines.append(f"{LABELS[check.status]:<4}  {check.code:<14} {check.id:<{width}}  {check.title}: {check.detail}".rstrip(": "))
        if check.status in (Status.WARN, Status.FAIL) and check.fix:
            lines.append(f"{'':<20}fix: {check.fix}")
            if check.commands.curl:
                lines.append(f"{'':<20}try: {check.commands.curl}")
    tally = report.tally()
    lines.append(
        f"Verdict: {report.verdict.value.upper()} - {tally['ok']} ok, {tally['warn']} warn, "
        f"{tally['fail']} fail, {tally['skip']} skipped ({elapsed_ms / 1000:.1f} s)"
    )
    return "\n".join(terminal_safe(redact_text(line)) for line in lines)
