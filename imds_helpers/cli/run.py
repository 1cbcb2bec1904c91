"""``imds-runbook run``: execute a runbook per host parameter file, then summarise.

    imds-runbook run [PARAM_FILE ...] [--notebook vm|arc|auto] [--out DIR]
                     [--workers N] [--timeout S] [--cell-timeout S]

Per host, ``DIR/<host>/`` gets the executed notebook, an HTML report without code, the
sidecar JSON and a log; ``DIR`` gets ``summary.csv``, ``summary.html`` (with links to the
per-host reports) and ``summary.md``. With no PARAM_FILE the runbook runs once for this
machine with its default parameters. A file naming another machine needs that machine's
evidence (``evidence_path: <host>.json``, written there by ``imds-runbook collect --out``):
without it the run is refused (exit 2), with it the report is rendered from the bundle.

Default ``--out``: ``./reports/<UTC timestamp>/`` (e.g. ``reports/20261126T080000Z``) - runs
never overwrite each other, and ``imds-runbook report reports/`` tabulates them all.

Progress goes to stderr (a bar on a terminal, else one line per finished host); the
summary table goes to stdout. Exit code: 0 every host ok, 1 any findings / failed /
timeout / dead kernel, 2 bad usage (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imds_helpers.model.textsafe import terminal_safe


def default_out_dir(prefix: str = "") -> Path:
    return Path("reports") / (prefix + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))


def add_render_options(parser: argparse.ArgumentParser, *, per: str = "host") -> None:
    """How runbooks are executed: ``run`` renders a host per parameter file, ``fleet`` a report
    per collected host; both through :func:`imds_helpers.fleet.runner.run_hosts`."""
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help=f"{per}s rendered at the same time (default 2)")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help=f"wall-clock limit per {per}, kernel start included (default 300)")
    parser.add_argument("--cell-timeout", type=float, default=60.0, metavar="S",
                        help="limit per notebook cell (default 60)")
    parser.add_argument("--kernel", default="python3", metavar="NAME",
                        help="Jupyter kernel to run the runbooks in (default python3)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("param_files", nargs="*", metavar="PARAM_FILE", type=Path,
                        help="YAML parameter file per host (host name = 'host' key or file name); "
                             "none = run once for this machine")
    parser.add_argument("--notebook", default="auto", choices=("vm", "arc", "auto"),
                        help="runbook: vm, arc, or auto = each file's 'target' key (default vm)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default: reports/<UTC timestamp>/)")
    add_render_options(parser)
    parser.add_argument("--notebooks-dir", type=Path, default=None, metavar="DIR",
                        help=argparse.SUPPRESS)  # tests and benchmarks: stand-in runbooks


def run(args: argparse.Namespace) -> int:
    from imds_helpers.fleet import report
    from imds_helpers.fleet.runner import SUMMARY_FILES, run_hosts

    out_dir: Path = args.out if args.out is not None else default_out_dir()
    total = max(1, len(args.param_files))
    progress, close = _progress(total)
    try:
        summary = run_hosts(
            args.param_files, notebook=args.notebook, out_dir=out_dir, workers=args.workers,
            cell_timeout=args.cell_timeout, host_timeout=args.timeout, kernel_name=args.kernel,
            notebooks_dir=args.notebooks_dir, progress=progress,
        )
    finally:
        close()

    df = report.load_results([row.sidecar_path for row in summary.rows])
    out = Path(summary.out_dir)
    report.write_text(out / SUMMARY_FILES["csv"], report.render_csv(report.summary_table(df)))
    report.write_text(out / SUMMARY_FILES["html"],
                      report.render_html(df, title="IMDS runbook run", base_dir=out))
    report.write_text(out / SUMMARY_FILES["md"],
                      report.render_markdown_report(df, title="IMDS runbook run"))

    sys.stdout.write(report.render_text_report(df))
    sys.stdout.write(f"\nSummary: {_shown(out / SUMMARY_FILES['html'])} "
                     f"(also {SUMMARY_FILES['csv']}, {SUMMARY_FILES['md']})\n"
                     f"Per-host reports: {_shown(out)}/<host>/<host>.html "
                     f"({sum(1 for r in summary.rows if r.html_path)} of {len(summary.rows)} written)\n")
    sys.stdout.flush()
    return summary.exit_code


def _progress(total: int) -> tuple[Any, Any]:
    """A tqdm bar on a terminal, else one plain line per finished host (both to stderr).
    Errors and codes come from the hosts' runs: shown terminal-safe, one line per host."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, file=sys.stderr, unit="host", desc="hosts", leave=True)

        def tick(row: Any) -> None:
            bar.set_postfix_str(terminal_safe(f"{row.host}: {row.status}"), refresh=False)
            bar.update(1)

        return tick, bar.close

    done = [0]

    def line(row: Any) -> None:
        done[0] += 1
        detail = f" - {row.error}" if row.error else (
            f" ({', '.join(row.failing_codes)})" if row.failing_codes else "")
        sys.stderr.write(terminal_safe(f"[{done[0]}/{total}] {row.host}: {row.status}{detail} "
                                       f"in {row.duration_s:.1f} s") + "\n")
        sys.stderr.flush()

    return line, lambda: None


def _shown(path: Path) -> str:
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    return terminal_safe(shown)

