"""ResultTable: the per-host runbooks' tables, rendered without pandas."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from imds_helpers.model.findings import CheckResult, Report, Status
from imds_helpers.runbooks.runbook import STEP_COLUMNS, table, verdict_table
from imds_helpers.runbooks.tables import STATUS_COLOURS, ResultTable


def _check(status: Status, code: str = "IMDS-NET-010", detail: str = "ok", **kw) -> CheckResult:
    return CheckResult(id=kw.pop("id", "network.tcp"), code=code, status=status, title="TCP", detail=detail, **kw)


def test_status_cells_get_their_colour_and_nothing_else_does():
    t = ResultTable.from_dicts("t", [{"status": "fail", "code": "ok"}, {"status": "ok", "code": "warn"}],
                               ("status", "code"))
    html = t._repr_html_()
    assert f'<td style="background-color:{STATUS_COLOURS["fail"]}">fail</td><td>ok</td>' in html
    assert f'<td style="background-color:{STATUS_COLOURS["ok"]}">ok</td><td>warn</td>' in html
    assert html.count("background-color") == 2
    assert t.counts() == {"fail": 1, "ok": 1}


def test_values_are_escaped_in_html():
    hostile = '<script>alert(1)</script> & "quotes"'
    t = ResultTable.from_dicts('x"><b', [{"status": "warn", "detail": hostile}], ("status", "detail"),
                               caption="<i>saved</i>")
    html = t._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; &quot;quotes&quot;" in html
    assert 'id="T_x&quot;&gt;&lt;b"' in html and "<caption>&lt;i&gt;saved&lt;/i&gt;</caption>" in html


def test_html_is_one_line_so_notebook_saves_stay_cheap():
    t = ResultTable.from_dicts("t", [{"status": "ok", "detail": "two\nlines"}], ("status", "detail"))
    assert "\n" not in t._repr_html_().replace("two\nlines", "")


def test_empty_table_says_so():
    t = ResultTable.from_dicts("t", [], ("status", "code"))
    assert '<td colspan="2">(no results)</td>' in t._repr_html_()
    assert str(t) == "status  code"


def test_text_is_doctor_style_and_never_clipped():
    long = "x" * 300
    t = ResultTable.from_dicts("t", [{"status": "ok", "code": "IMDS-A-1", "detail": "a\n  b"},
                                     {"status": "fail", "code": "IMDS-BB-22", "detail": long, "fix": ""}],
                               ("status", "code", "detail", "fix"), caption="OK: result written to r.json")
    assert str(t).splitlines() == [
        "OK: result written to r.json",
        "status  code",
        "OK      IMDS-A-1",
        "    detail: a b",
        "FAIL    IMDS-BB-22",
        f"    detail: {long}",          # whole: sanitizers and readers see every value
    ]


def test_ipython_plain_text_is_the_text_table():
    IPython = pytest.importorskip("IPython")
    t = ResultTable.from_dicts("t", [{"status": "ok"}], ("status",))
    formatted, _ = IPython.core.formatters.DisplayFormatter().format(t)
    assert formatted["text/plain"] == str(t)
    assert formatted["text/html"] == t._repr_html_()


def test_to_dict_round_trips_rows():
    t = ResultTable.from_dicts("t", [{"status": "ok", "code": None}], ("status", "code"))
    assert t.to_dict() == {"name": "t", "caption": "", "columns": ["status", "code"],
                           "rows": [{"status": "ok", "code": ""}]}


def test_pandas_views_keep_rows_and_colours():
    pytest.importorskip("pandas")
    t = table([_check(Status.OK), _check(Status.FAIL, code="IMDS-NET-011", id="network.tcp2")])
    df = t.to_frame()
    assert list(df.columns) == list(STEP_COLUMNS) and df["code"].tolist() == ["IMDS-NET-010", "IMDS-NET-011"]
    html = t.style().to_html()
    assert STATUS_COLOURS["fail"] in html and STATUS_COLOURS["ok"] in html


def test_step_and_verdict_tables_show_the_results():
    checks = (_check(Status.OK), _check(Status.WARN, code="IMDS-PROXY-002", id="proxy.env", fix="set NO_PROXY"))
    step = table(checks)
    assert step.columns == STEP_COLUMNS and step.name == "imds-network_tcp-proxy_env"
    assert [r[1] for r in step.rows] == ["IMDS-NET-010", "IMDS-PROXY-002"]
    verdict = verdict_table(Report(target="vm", endpoint="http://169.254.169.254", checks=checks), caption="c")
    assert verdict.columns[-1] == "fix" and verdict.rows[1][-1] == "set NO_PROXY" and verdict.caption == "c"


def test_a_runbook_never_imports_pandas(tmp_path):
    """The per-host runbook's tables are built without pandas (0.45 s per fresh kernel)."""
    code = textwrap.dedent(f"""
        import sys
        from imds_helpers.runbooks import runbook
        rb = runbook.start("vm", {{"emulator_scenario": "vm-healthy", "sidecar_path": {str(tmp_path / 's.json')!r}}})
        shown = [rb.platform(), rb.proxy(), rb.network(), rb.instance(), rb.tokens()]
        rb.save()
        shown.append(rb.verdict())
        html = [t._repr_html_() for t in shown]
        assert all('class="imds-table"' in h for h in html)
        assert "result written to " + {str(tmp_path / 's.json')!r} + ";" in shown[-1].caption, shown[-1].caption
        print(sorted(m for m in ("pandas", "numpy", "jinja2") if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
