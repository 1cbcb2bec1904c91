"""``imds-runbook fleet``: diagnose every host of an Ansible inventory, a report per host.

    imds-runbook fleet -i INVENTORY [--limit PATTERN] [--forks N] [--out DIR] [-- ANSIBLE-PLAYBOOK OPTIONS]

Runs the playbook that ships with the package (``imds_helpers/fleet/ansible/collect.yml``) with
``ansible-playbook``: on each host the probe (``imds-probe.pyz``, built for the run unless
``--probe`` names one) collects the evidence with that host's inventory variables
(``imds_target``, ``imds_client_ids``, ``imds_resources``, ``imds_timeout``, ...), and the bundle
comes back to ``DIR/<inventory_hostname>/evidence.json``. Then each bundle is read back, checked
against the inventory's ``imds_expect_hostname`` / ``imds_expect_smbios_uuid`` /
``imds_expect_vm_id`` and against the other hosts', and rendered with its runbook as
``imds-runbook run`` does. ``DIR`` gets ``summary.csv``, ``summary.html``, ``summary.md`` and the
executed fleet notebook ``summary.ipynb``; ``DIR/_ansible/`` keeps Ansible's output.

A host that cannot be diagnosed is a row with its status and reason: ``unreachable``,
``auth_failed``, ``no_python``, ``collect_timeout``, ``collect_failed``, ``identity_mismatch``.

Progress goes to stderr (one line per host as it is collected, then as its report is rendered);
the summary table goes to stdout. Exit code: 0 every host ok, 1 any findings or host not
diagnosed, 2 bad usage or an inventory Ansible could not use (nothing rendered).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imds_helpers.cli.run import add_render_options
from imds_helpers.cli.run import default_out_dir as timestamped_dir
from imds_helpers.model.textsafe import terminal_safe


def default_out_dir() -> Path:
    return timestamped_dir("fleet-")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--inventory", required=True, metavar="INVENTORY",
                        help="Ansible inventory (a file, a folder, or 'host1,host2,')")
    parser.add_argument("--limit", default=None, metavar="PATTERN", help="only the hosts matching this pattern")
    parser.add_argument("--forks", type=int, default=None, metavar="N",
                        help="hosts Ansible works on at the same time (default: Ansible's, 5)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default: reports/fleet-<UTC timestamp>/)")
    parser.add_argument("--probe", type=Path, default=None, metavar="PYZ",
                        help="the probe to copy to each host (default: built for this run into DIR/_ansible/)")
    parser.add_argument("--collect-timeout", type=float, default=None, metavar="S",
                        help="limit for one host's whole collection (default: the inventory's "
                             "imds_collect_timeout, else 300)")
    add_render_options(parser, per="report")
    parser.add_argument("--no-notebook", action="store_true", help="do not execute the fleet notebook (summary.ipynb)")
    parser.add_argument("ansible_args", nargs="*", metavar="-- ANSIBLE-PLAYBOOK OPTIONS",
                        help="after '--': passed to ansible-playbook as they are (e.g. -- -u admin -e imds_become=true)")


def run(args: argparse.Namespace) -> int:
    from imds_helpers.fleet import report
    from imds_helpers.fleet.fleet_run import run_fleet
    from imds_helpers.fleet.runner import SUMMARY_FILES

    out_dir: Path = args.out if args.out is not None else default_out_dir()
    summary = run_fleet(
        args.inventory, out_dir=out_dir, limit=args.limit, forks=args.forks, extra_args=args.ansible_args,
        probe=args.probe, collect_timeout=args.collect_timeout, workers=args.workers, host_timeout=args.timeout,
        cell_timeout=args.cell_timeout, kernel_name=args.kernel, notebook=not args.no_notebook,
        progress=_progress(out_dir),
    )
    df = report.load_results([row.sidecar_path for row in summary.hosts])
    out = Path(summary.out_dir)
    report.write_text(out / SUMMARY_FILES["csv"], report.render_csv(report.summary_table(df)))
    report.write_text(out / SUMMARY_FILES["html"], report.render_html(df, title="IMDS fleet", base_dir=out))
    report.write_text(out / SUMMARY_FILES["md"], report.render_markdown_report(df, title="IMDS fleet"))

    sys.stdout.write(report.render_text_report(df))
    rendered = sum(1 for r in summary.hosts if r.html_path)
    lines = [f"\nSummary: {_shown(out / SUMMARY_FILES['html'])} (also {SUMMARY_FILES['csv']}, {SUMMARY_FILES['md']}"
             + (", summary.ipynb)" if summary.notebook_path and not summary.notebook_error else ")"),
             f"Per-host reports: {_shown(out)}/<host>/<host>.html ({rendered} of {len(summary.hosts)} written); "
             f"evidence: <host>/evidence.json; Ansible's output: {_shown(Path(summary.ansible.log_path))}"]
    if summary.notebook_error:
        lines.append(f"The fleet notebook was not executed: {terminal_safe(summary.notebook_error)}")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return summary.exit_code


def _progress(out_dir: Path):
    """One line per host on stderr as it is collected, then as its report is rendered."""
    def line(event) -> None:
        if event.stage == "start":
            text = f"collecting from {event.total} host{'s' if event.total != 1 else ''} with ansible-playbook " \
                   f"(its output: {_shown(out_dir / '_ansible' / 'ansible.log')})"
        else:
            verb = "collect" if event.stage == "collect" else "report"
            detail = f" - {event.detail}" if event.detail else ""
            text = f"[{event.done}/{event.total}] {verb} {event.host}: {event.status}{detail} ({event.seconds:.1f} s)"
        sys.stderr.write(terminal_safe(text) + "\n")
        sys.stderr.flush()

    return line


def _shown(path: Path) -> str:
    try:
        shown = str(path.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        shown = str(path)
    return terminal_safe(shown)
