"""Tabulate sidecar results (one JSON per host run) with pandas; render them as text,
CSV, markdown or HTML.

:func:`load_results` returns one tidy DataFrame, **one row per host x check** (a host with no
checks - e.g. a run that timed out - has one row with empty check columns). Host columns
repeat on each of its rows::

    host, run_status, verdict, target, notebook, started_at, duration_s (run's if known),
    ok, warn, fail, skip, failing_codes, error, path, html,      <- per sidecar
    check_index, check_id, status, code, title, fix, elapsed_ms  <- per check

``run_status`` is the runner's (``ok | findings | failed | timeout | dead_kernel``, or one of
``imds-runbook fleet``'s for a host it could not diagnose: ``unreachable | auth_failed |
no_python | collect_timeout | collect_failed | identity_mismatch``), derived
from the verdict when a notebook ran without the runner, or ``unreadable`` for a file that
looks like a sidecar but cannot be read (bad JSON, wrong shape) - reported, never a crash.
JSON files that are not sidecars (no ``schema`` field, or another schema) are skipped.

The tables: :func:`summary_table` (one row per sidecar), :func:`status_matrix` (host x
check id -> status), :func:`top_findings` (code, status, title, count, fix) and
:func:`latency_table` (check id -> median, p95 elapsed ms, n). The renderers return strings;
:func:`write_text` writes one atomically. HTML tables are built directly, with fixed ids
(``T_imds_<table>``), so the same results always give the same bytes.

Colours: ok green, warn amber, fail red, skip grey (run status: findings amber;
failed / timeout / dead_kernel / unreadable and the fleet's undiagnosed statuses red).
"""

from __future__ import annotations

import html as html_lib
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from imds_helpers.fleet.fleet_read import COLUMNS, Columns, read_columns
from imds_helpers.fleet.sidecar import FLEET_STATUSES, atomic_write_text
from imds_helpers.model.textsafe import csv_safe, markdown_safe, terminal_safe

SUMMARY_COLUMNS = ["host", "run_status", "verdict", "ok", "warn", "fail", "skip",
                   "failing_codes", "duration_s", "error", "html", "path"]
# What fits a terminal / a markdown page.
BRIEF_COLUMNS = ["host", "run_status", "verdict", "ok", "warn", "fail", "skip",
                 "failing_codes", "duration_s", "error"]
RUN_STATUS_ORDER = ["ok", "findings", "failed", "timeout", "dead_kernel", *FLEET_STATUSES, "unreadable"]

_CLASS = {
    "ok": "imds-ok", "warn": "imds-warn", "fail": "imds-fail", "skip": "imds-skip",
    "findings": "imds-warn", "failed": "imds-fail", "timeout": "imds-fail",
    "dead_kernel": "imds-fail", "unreadable": "imds-fail",
    **{status: "imds-fail" for status in FLEET_STATUSES},
}
_CSS = """\
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #d0d0d0; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.imds-ok { background: #d8f0d8; color: #1e5e1e; }
td.imds-warn { background: #fde9c4; color: #7a4b00; }
td.imds-fail { background: #f8d3d3; color: #8b1a1a; }
td.imds-skip { background: #e6e6e6; color: #555; }
"""


# --------------------------------------------------------------------------- loading


def load_results(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | Columns) -> pd.DataFrame:
    """Read sidecars into the tidy DataFrame described in the module docstring.

    ``source`` is a folder (searched recursively for ``*.json``; symlinked folders are not
    followed), an iterable of files - named files are always reported, as ``unreadable``
    when they are not sidecars - or columns already read by
    :func:`imds_helpers.fleet.fleet_read.read_columns`. Rows are ordered by host, start time, file
    and check order. Large folders are read by one worker per CPU.
    """
    cols = source if isinstance(source, dict) else read_columns(source)
    df = pd.DataFrame(cols, columns=COLUMNS)
    for col in ("duration_s", "elapsed_ms"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in ("ok", "warn", "fail", "skip"):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64")
    df["check_index"] = pd.to_numeric(df["check_index"], errors="coerce").astype("Int64")
    if len(df):
        df = df.sort_values(["host", "started_at", "path", "check_index"], kind="stable",
                            na_position="first").reset_index(drop=True)
    return df


# --------------------------------------------------------------------------- tables


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per sidecar: host, run status, verdict, counts, failing codes, duration, ..."""
    out = df.drop_duplicates("path", keep="first")[SUMMARY_COLUMNS]
    return out.reset_index(drop=True)


def brief_summary(df: pd.DataFrame) -> pd.DataFrame:
    """The summary without file paths: what a person reads (and what stays the same when the
    results folder moves)."""
    return summary_table(df)[BRIEF_COLUMNS]


def run_counts(df: pd.DataFrame) -> dict[str, int]:
    """Number of sidecars per run status (every status of a run listed, zeros included; the
    fleet's statuses for hosts that could not be diagnosed only when some host has one)."""
    counts = df.drop_duplicates("path")["run_status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in RUN_STATUS_ORDER
            if s not in FLEET_STATUSES or counts.get(s, 0)}


def status_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Host x check id -> status (the newest sidecar per host); columns in check order."""
    checks = df[df["check_id"].notna()]
    if checks.empty:
        return pd.DataFrame(index=pd.Index([], name="host"))
    newest = (checks.sort_values(["started_at", "path"], kind="stable", na_position="first")
              .drop_duplicates(["host", "check_id"], keep="last"))
    matrix = newest.pivot(index="host", columns="check_id", values="status")
    matrix = matrix.reindex(columns=_check_order(checks)).sort_index()
    matrix.columns.name = None
    return matrix


def top_findings(df: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` most frequent warn / fail codes: code, status, title, count (sidecars), fix."""
    bad = df[df["status"].isin(["warn", "fail"])]
    cols = ["code", "status", "title", "count", "fix"]
    if bad.empty:
        return pd.DataFrame(columns=cols)
    bad = bad.assign(code=bad["code"].fillna(bad["check_id"]),
                     severity=bad["status"].map({"warn": 1, "fail": 2}))
    grouped = bad.groupby("code", sort=True).agg(
        severity=("severity", "max"), title=("title", "first"),
        count=("path", "nunique"), fix=("fix", "first"))
    grouped["status"] = grouped["severity"].map({1: "warn", 2: "fail"})
    grouped = grouped.reset_index().sort_values(["count", "severity", "code"],
                                                ascending=[False, False, True], kind="stable")
    return grouped[cols].head(n).reset_index(drop=True)


def latency_table(df: pd.DataFrame) -> pd.DataFrame:
    """Check id (index, in check order) -> median and 95th percentile of ``elapsed_ms``, n."""
    checks = df[df["check_id"].notna() & df["elapsed_ms"].notna()]
    cols = ["median_ms", "p95_ms", "n"]
    if checks.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="check_id"))
    grouped = checks.groupby("check_id", sort=False)["elapsed_ms"]
    out = pd.DataFrame({
        "median_ms": grouped.median().round(1),
        "p95_ms": grouped.quantile(0.95).round(1),
        "n": grouped.size(),
    })
    return out.reindex(_check_order(checks)).rename_axis("check_id")[cols]


def latency_chart(latency: pd.DataFrame) -> str | None:
    """Median and 95th percentile per step as bars; when no host was diagnosed (every host
    unreachable or refused, say) there is nothing to plot, and a line says so."""
    numbers = latency.select_dtypes("number").iloc[:, :2]
    if numbers.empty:
        return "no step timings to plot: no host in this folder was diagnosed"
    numbers.plot.barh(figsize=(7, 4), xlabel="ms")   # shown by the notebook's inline backend
    return None


# --------------------------------------------------------------------------- renderers


def render_csv(table: pd.DataFrame) -> str:
    """CSV with a header row, no index, ``\\n`` line ends.

    Text cells come from result files (outside input): a cell a spreadsheet would run as a
    formula (``=HYPERLINK(...)``, ``+``, ``-``, ``@``) gets a leading ``'`` and control
    characters show as escapes (:func:`imds_helpers.model.textsafe.csv_safe`); numeric columns, and
    text that is just a number, are left as they are."""
    safe = table.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(csv_safe, na_action="ignore")
    safe.columns = [csv_safe(str(c)) for c in safe.columns]
    return safe.to_csv(index=False, lineterminator="\n")


def render_text(table: pd.DataFrame, *, max_cell: int = 48) -> str:
    """A plain, aligned terminal table (no colours); long cells are shortened with '...'.
    Control characters in cells show as escapes (``\\x1b``): one row stays one line."""
    headers = [terminal_safe(str(c)) for c in table.columns]
    columns = [_column_text(table[c], max_cell) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    widths = [max([len(h)] + [len(v) for v in col]) for h, col in zip(headers, columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w)
                         for c, w, num in zip(cells, widths, numeric)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(cells) for cells in zip(*columns))
    return "\n".join(out) + "\n"


def render_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (numbers right-aligned). Cells are
    :func:`imds_helpers.model.textsafe.markdown_safe`: HTML as entities, pipes escaped, control
    characters and line breaks as visible escapes."""
    headers = [markdown_safe(str(c)) for c in table.columns]
    align = ["---:" if pd.api.types.is_numeric_dtype(table[c]) else "---" for c in table.columns]
    columns = [[markdown_safe(v) for v in _column_text(table[c], 0)] for c in table.columns]
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    out.extend("| " + " | ".join(cells) + " |" for cells in zip(*columns))
    return "\n".join(out) + "\n"


def render_markdown_report(df: pd.DataFrame, *, title: str = "IMDS runbook results") -> str:
    """Counts line, summary table and top findings as one markdown document."""
    parts = [f"# {title}", "", _counts_line(df), "", "## Hosts", "",
             render_markdown(_display(summary_table(df)[BRIEF_COLUMNS]))]
    findings = top_findings(df)
    if len(findings):
        parts += ["## Top findings", "", render_markdown(findings)]
    return "\n".join(parts)


def render_text_report(df: pd.DataFrame) -> str:
    """What ``imds-runbook report`` prints on a terminal."""
    parts = [render_text(_display(summary_table(df)[BRIEF_COLUMNS]))]
    findings = top_findings(df)
    if len(findings):
        parts += ["Top findings:", render_text(findings[["code", "status", "count", "title"]])]
    parts.append(_counts_line(df) + "\n")
    return "\n".join(parts)


def render_html(df: pd.DataFrame, *, title: str = "IMDS runbook results",
                base_dir: str | os.PathLike[str] | None = None) -> str:
    """One self-contained HTML page: counts, hosts, top findings, status matrix (hosts with
    a warn or fail only: on a big fleet the all-ok rows are noise), latency.

    Per-host report links are relative to ``base_dir`` (the folder the page is written
    to) when given, else absolute. Output is deterministic for the same ``df``.
    """
    summary = summary_table(df).drop(columns=["path"])
    matrix = status_matrix(df)
    matrix = matrix[matrix.isin(["warn", "fail"]).any(axis=1)]   # the hosts that need a look
    sections = [
        ("Hosts", _html_table(summary, "summary", status_cols=["run_status", "verdict"],
                              link_col="html", base_dir=base_dir)),
        ("Top findings", _html_table(top_findings(df), "findings", status_cols=["status"])),
        ("Status by check (hosts with a warn or fail)",
         _html_table(matrix.reset_index(), "matrix", status_cols=list(matrix.columns))),
        ("Check latency (ms)", _html_table(latency_table(df).reset_index(), "latency", status_cols=[])),
    ]
    body = [f"<h1>{html_lib.escape(title)}</h1>", f"<p>{html_lib.escape(_counts_line(df))}</p>"]
    for heading, table_html in sections:
        body.append(f"<h2>{html_lib.escape(heading)}</h2>\n{table_html}")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html_lib.escape(title)}</title>\n<style>\n{_CSS}</style>\n</head>\n"
            "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write a rendered report atomically (temporary sibling + rename)."""
    target = Path(path)
    atomic_write_text(target, text)
    return target


# --------------------------------------------------------------------------- helpers


def _html_table(table: pd.DataFrame, name: str, *, status_cols: list[str],
                link_col: str | None = None, base_dir: str | os.PathLike[str] | None = None) -> str:
    """An HTML table: escaped values, floats to one decimal, status cells classed for colour.

    Built directly, not with pandas' Styler: its templates took about 4 s for 10,000 hosts.
    """
    if table.empty:
        return "<p>(none)</p>"
    columns = [str(c) for c in table.columns]
    # Whole columns to Python objects at once: tolist() on a string column fetches element
    # by element (0.1 s per 100,000 cells). Missing values become None, as _shown shows them.
    values = [table[c].to_numpy(dtype=object, na_value=None).tolist() for c in table.columns]
    classed = [c in status_cols for c in table.columns]
    links = [c == link_col for c in table.columns]
    esc = html_lib.escape
    rows = []
    for row in zip(*values):
        cells = []
        for value, is_status, is_link in zip(row, classed, links):
            text = terminal_safe(_shown(value) or "")     # the page may go to stdout
            css = _CLASS.get(text, "") if is_status else ""
            if is_link:
                target = _rel(value, base_dir)
                inner = f'<a href="{esc(terminal_safe(target))}">report</a>' if target else ""
            else:
                inner = esc(text)
            cells.append(f'<td class="{css}">{inner}</td>' if css else f"<td>{inner}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{esc(terminal_safe(c))}</th>" for c in columns)
    return (f'<table id="T_imds_{esc(name)}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody>\n</table>")


def _check_order(checks: pd.DataFrame) -> list[str]:
    """Check ids in pipeline order (by their index in a sidecar, then first seen); vectorised,
    because iterating a string column of 100,000 rows one by one takes a tenth of a second."""
    return checks.sort_values("check_index", kind="stable")["check_id"].drop_duplicates().tolist()


def _shown(value: Any) -> str | None:
    """A cell as text: None when missing, floats with one decimal (HTML and text tables)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _display(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    if "duration_s" in out.columns:
        out["duration_s"] = out["duration_s"].round(1)
    return out


def _counts_line(df: pd.DataFrame) -> str:
    counts = run_counts(df)
    total = sum(counts.values())
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    return f"{total} host result{'s' if total != 1 else ''}: " + (", ".join(parts) or "none")


def _rel(value: Any, base_dir: str | os.PathLike[str] | None) -> Any:
    if not isinstance(value, str) or not value:
        return None
    if base_dir is None:
        return value
    try:
        return os.path.relpath(value, base_dir).replace(os.sep, "/")
    except ValueError:  # another drive (Windows)
        return value


def _column_text(series: pd.Series, limit: int) -> list[str]:
    """Display strings for one column: '-' for missing, floats with one decimal."""
    values = series.tolist()
    if pd.api.types.is_float_dtype(series):
        return ["-" if v != v else f"{v:.1f}" for v in values]
    if pd.api.types.is_integer_dtype(series) and not series.hasnans:
        return [str(v) for v in values]
    return [_cell(v, limit) for v in values]


def _cell(value: Any, limit: int) -> str:
    text = _shown(value)
    if text is None:
        return "-"
    if "\n" in text or "\t" in text or "\r" in text:
        text = " ".join(text.split())
    text = terminal_safe(text)
    if limit and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


__all__ = [
    "COLUMNS", "SUMMARY_COLUMNS", "BRIEF_COLUMNS", "RUN_STATUS_ORDER", "load_results",
    "summary_table", "run_counts", "status_matrix", "top_findings", "latency_table", "latency_chart",
    "render_csv", "render_text", "render_markdown", "render_markdown_report",
    "render_text_report", "render_html", "write_text",
]
