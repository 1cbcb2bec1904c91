"""Result tables that render themselves: HTML with pass/fail colours in Jupyter and in the
HTML reports, doctor-style plain text in a terminal or a papermill log.

A per-host runbook shows six of these. They used to be pandas Stylers; importing pandas and
its Styler cost about 0.45 s in every fresh kernel, as much as the whole rest of the runbook,
and a fleet run pays it once per host. So the per-host tables are rendered here (html.escape
and a few string joins); ``to_frame()`` and ``style()`` still hand a pandas DataFrame / Styler
to anyone who wants one. The fleet report, which really tabulates, keeps pandas.

The HTML is one line: papermill rewrites the whole notebook at every cell's start and end,
and a stored output split into hundreds of lines makes each of those writes slower.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from imds_helpers.model.textsafe import terminal_safe

STATUS_COLOURS = {"ok": "#d4edda", "warn": "#fff3cd", "fail": "#f8d7da", "skip": "#e2e3e5"}
STATUS_COLUMN = "status"
HEAD_COLUMNS = ("status", "code", "id", "title")     # short: one aligned line per row in text
# `table.imds-table td` outranks JupyterLab's `.jp-RenderedHTMLCommon td` (right-aligned, nowrap).
_CSS = ("table.imds-table{border-collapse:collapse}table.imds-table caption{text-align:left;font-weight:bold}"
        "table.imds-table th,table.imds-table td{text-align:left;vertical-align:top;white-space:pre-wrap;"
        "padding:2px 8px;border-bottom:1px solid #ddd}")


@dataclass(frozen=True)
class ResultTable:
    """Rows of text under named columns; the ``status`` column is coloured (ok/warn/fail/skip).

    Built from already-redacted ``to_dict()`` values, so it holds no secret.
    """

    name: str                                   # stable id for the HTML (diff-friendly outputs)
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""                           # one line above the table

    @classmethod
    def from_dicts(cls, name: str, dicts: Iterable[Mapping[str, Any]], columns: Iterable[str],
                   caption: str = "") -> "ResultTable":
        columns = tuple(columns)
        rows = tuple(tuple(_text(d.get(c)) for c in columns) for d in dicts)
        return cls(name=name, columns=columns, rows=rows, caption=caption)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "caption": self.caption, "columns": list(self.columns),
                "rows": [dict(zip(self.columns, row)) for row in self.rows]}

    def counts(self) -> dict[str, int]:
        """How many rows per status (empty when the table has no status column)."""
        if STATUS_COLUMN not in self.columns:
            return {}
        at = self.columns.index(STATUS_COLUMN)
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row[at]] = counts.get(row[at], 0) + 1
        return counts

    def _repr_html_(self) -> str:
        status_at = self.columns.index(STATUS_COLUMN) if STATUS_COLUMN in self.columns else -1
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = []
        for row in self.rows:
            cells = []
            for i, value in enumerate(row):
                colour = STATUS_COLOURS.get(value) if i == status_at else None
                style = f' style="background-color:{colour}"' if colour else ""
                cells.append(f"<td{style}>{html.escape(value)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        if not self.rows:
            body.append(f'<tr><td colspan="{len(self.columns)}">(no results)</td></tr>')
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return (f'<style>{_CSS}</style><table class="imds-table" id="T_{html.escape(self.name)}">{caption}'
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def __str__(self) -> str:
        """Doctor-style text (terminals, papermill logs): the short columns aligned on one line
        per row, each longer one on its own indented line. Nothing is clipped, so the text
        holds every value whole (and output sanitizers can match them). Runs of whitespace
        fold to one space and control characters show as escapes (``\\x1b``): the values
        quote what a metadata service answered, and this text goes to terminals."""
        head = [i for i, c in enumerate(self.columns) if c in HEAD_COLUMNS]
        rest = [i for i in range(len(self.columns)) if i not in head]

        def cell(i: int, value: str) -> str:
            text = _one_line(value)
            return text.upper() if self.columns[i] == STATUS_COLUMN else text

        shown = [[self.columns[i] for i in head]] + [[cell(i, row[i]) for i in head] for row in self.rows]
        widths = [max(len(r[k]) for r in shown) for k in range(len(head))]
        lines = [terminal_safe(self.caption)] if self.caption else []
        lines.append("  ".join(v.ljust(w) for v, w in zip(shown[0], widths)).rstrip())
        for row, cells in zip(self.rows, shown[1:]):
            lines.append("  ".join(v.ljust(w) for v, w in zip(cells, widths)).rstrip())
            lines.extend(f"    {self.columns[i]}: {_one_line(row[i])}" for i in rest if row[i])
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:   # IPython's text/plain
        printer.text(str(self) if not cycle else "ResultTable(...)")

    def to_frame(self):
        """The rows as a pandas DataFrame (imports pandas)."""
        import pandas as pd

        return pd.DataFrame(list(self.rows), columns=list(self.columns))

    def style(self):
        """A pandas Styler with the same colours, for further styling or export (imports pandas)."""
        colour = lambda v: f"background-color: {STATUS_COLOURS.get(v, '')}"  # noqa: E731
        styler = self.to_frame().style.set_uuid(self.name).hide(axis="index")
        if STATUS_COLUMN in self.columns:
            styler = styler.map(colour, subset=[STATUS_COLUMN])
        return styler.set_properties(**{"text-align": "left", "white-space": "pre-wrap"})


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _one_line(value: str) -> str:
    return terminal_safe(" ".join(value.split()))
