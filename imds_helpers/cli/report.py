"""``imds-runbook report``: tabulate any folder of sidecar results.

    imds-runbook report DIR [--format table|csv|html|markdown] [--output FILE]

Reads every ``*.json`` under DIR (recursively) whose ``schema`` is the sidecar schema;
files that look like sidecars but cannot be read are listed as ``unreadable``, and so is a
``*.json`` that is a symlink (not followed, like symlinked folders), a FIFO or a device.
``--output`` may not be a symlink. Formats:

table     hosts, top findings and counts as plain text (default)
csv       one row per result file (host, run status, verdict, counts, failing codes, ...)
html      one page: hosts (linked to per-host reports), top findings, status matrix, latency
markdown  hosts and top findings

Without --output the report goes to stdout. Exit code: 0 every host ok, 1 anything else
(findings, failed, timeout, dead kernel, unreadable), 2 bad usage (nothing written).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from imds_helpers.model.errors import UsageError

FORMATS = ("table", "csv", "html", "markdown")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="DIR", help="folder of sidecar results")
    parser.add_argument("--format", default="table", choices=FORMATS,
                        help="output format (default table)")
    parser.add_argument("--output", type=Path, default=None, metavar="FILE",
                        help="write the report to FILE (atomically) instead of stdout")


def run(args: argparse.Namespace) -> int:
    folder: Path = args.folder
    if not folder.exists():
        raise UsageError("folder not found", argument=str(folder))
    if not folder.is_dir():
        raise UsageError("not a folder", argument=str(folder))
    if args.format not in FORMATS:
        raise UsageError(f"unknown format {args.format!r} (choose {', '.join(FORMATS)})",
                         argument="--format")
    if args.output is not None:
        check_output_file(args.output)

    import importlib

    from imds_helpers.fleet.fleet_read import read_columns

    # The workers parse the sidecars while this process imports pandas (about half a second).
    columns = read_columns(folder, meanwhile=lambda: importlib.import_module("imds_helpers.fleet.report"))
    from imds_helpers.fleet import report

    df = report.load_results(columns)
    if df.empty:
        raise UsageError("no sidecar results (*.json with the imds-runbook schema) found",
                         argument=str(folder))
    base = args.output.parent if args.output is not None else Path.cwd()
    if args.format == "table":
        text = report.render_text_report(df)
    elif args.format == "csv":
        text = report.render_csv(report.summary_table(df))
    elif args.format == "html":
        text = report.render_html(df, base_dir=base.resolve())
    else:
        text = report.render_markdown_report(df)

    if args.output is not None:
        report.write_text(args.output, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    counts = report.run_counts(df)
    return 0 if counts["ok"] == sum(counts.values()) else 1


def check_output_file(path: Path) -> None:
    """The report file must be creatable: its folder exists and is writable; a symbolic link
    in its place is refused, not followed (nor silently replaced)."""
    if path.is_symlink():
        raise UsageError("is a symbolic link; not followed (name the real file)", argument="--output")
    if path.is_dir():
        raise UsageError("is a folder, expected a file name", argument="--output")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        problem = "is not a folder" if parent.exists() else "does not exist"
        raise UsageError(f"folder {parent} {problem}", argument="--output")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"folder {parent} is not writable", argument="--output")
