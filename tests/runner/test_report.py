from __future__ import annotations

import csv as csv_module
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from imds_helpers.fleet import report
from imds_helpers.model.textsafe import terminal_safe

from .conftest import make_report, write_host


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Good sidecars, one truncated, one of the right schema but wrong shape, a foreign JSON."""
    folder = tmp_path / "results"
    write_host(folder, "web-01", make_report(("network.tcp", "IMDS-NET-000", "ok", 1.0),
                                             ("token.system", "IMDS-TOKEN-000", "ok", 40.0)),
               run={"status": "ok", "error": None, "duration_s": 3.5})
    write_host(folder, "web-02", make_report(("network.tcp", "IMDS-NET-000", "ok", 3.0),
                                             ("token.system", "IMDS-TOKEN-004", "fail", 60.0)))
    write_host(folder, "web|03", make_report(("network.tcp", "IMDS-NET-002", "warn", 5.0),
                                             ("token.system", "IMDS-TOKEN-004", "fail", 80.0)))
    write_host(folder, "db-01", make_report(),
               run={"status": "timeout", "error": "host run exceeded the host timeout of 3 s"})
    (folder / "db-01" / "db-01.html").write_text("<html>report</html>")
    (folder / "broken").mkdir()
    (folder / "broken" / "broken.json").write_text('{"schema": "imds-runbook/result@1", "host": ')
    (folder / "shape.json").write_text('{"schema": "imds-runbook/result@1", "host": "x"}')
    (folder / "other.json").write_text('{"name": "not a sidecar"}')
    (folder / "list.json").write_text("[1, 2, 3]")
    return folder


def test_load_results_tidy_frame(mixed: Path):
    df = report.load_results(mixed)
    assert list(df.columns) == report.COLUMNS
    # 3 hosts x 2 checks, db-01 without checks (1 row), 2 unreadable rows
    assert len(df) == 3 * 2 + 1 + 2
    per_file = df.drop_duplicates("path").set_index("host")
    assert per_file.loc["web-01", "run_status"] == "ok"
    assert per_file.loc["web-01", "duration_s"] == 3.5           # the runner's wall time
    assert per_file.loc["web-02", "run_status"] == "findings"    # no run: from the verdict
    assert per_file.loc["db-01", "run_status"] == "timeout"
    assert per_file.loc["db-01", "html"].endswith("db-01/db-01.html")
    assert pd.isna(per_file.loc["web-01", "html"])
    assert per_file.loc["broken", "run_status"] == "unreadable"
    assert "not JSON" in per_file.loc["broken", "error"]
    assert per_file.loc["shape", "run_status"] == "unreadable"
    assert "field 'notebook'" in per_file.loc["shape", "error"]
    assert "other" not in per_file.index and "list" not in per_file.index
    assert df["elapsed_ms"].dtype == "float64" and df["ok"].dtype == "int64"


def test_parallel_read_gives_the_same_columns_as_one_process(mixed: Path, monkeypatch):
    # Large folders are split across forked workers; lower the threshold so this small one is.
    from imds_helpers.fleet import fleet_read

    calls = []
    serial = fleet_read.read_columns(mixed, meanwhile=lambda: calls.append("serial"))
    monkeypatch.setattr(fleet_read, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(fleet_read.os, "cpu_count", lambda: 3)
    monkeypatch.setattr("threading.active_count", lambda: 1)   # pytest may run helper threads
    parallel = fleet_read.read_columns(mixed, meanwhile=lambda: calls.append("parallel"))
    assert parallel == serial and len(serial["host"]) == 3 * 2 + 1 + 2
    assert calls == ["serial", "parallel"]   # what runs meanwhile runs once either way
    assert report.load_results(parallel).equals(report.load_results(mixed))


def test_a_multithreaded_process_reads_without_forking(mixed: Path, monkeypatch):
    import concurrent.futures
    import threading

    from imds_helpers.fleet import fleet_read

    def no_pool(*args, **kwargs):
        raise AssertionError("forked from a multi-threaded process")

    monkeypatch.setattr(fleet_read, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(fleet_read.os, "cpu_count", lambda: 3)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert len(fleet_read.read_columns(mixed)["host"]) == 3 * 2 + 1 + 2
    finally:
        stop.set()
        worker.join()


def test_load_results_from_explicit_files(mixed: Path, tmp_path: Path):
    files = [mixed / "web-01" / "web-01.json", tmp_path / "missing.json", mixed / "other.json"]
    df = report.load_results(files)
    statuses = dict(zip(df.drop_duplicates("path")["host"], df.drop_duplicates("path")["run_status"]))
    # named explicitly, a file that is not a sidecar is reported, not skipped
    assert statuses == {"web-01": "ok", "missing": "unreadable", "other": "unreadable"}


def test_load_results_empty_folder(tmp_path: Path):
    df = report.load_results(tmp_path)
    assert df.empty and list(df.columns) == report.COLUMNS
    assert report.summary_table(df).empty and report.status_matrix(df).empty
    assert report.top_findings(df).empty and report.latency_table(df).empty
    # the fleet notebook's chart cell: a folder where no host was diagnosed has nothing to plot
    assert report.latency_chart(report.latency_table(df)).startswith("no step timings to plot")


def test_summary_table(mixed: Path):
    summary = report.summary_table(report.load_results(mixed))
    assert list(summary.columns) == report.SUMMARY_COLUMNS
    assert list(summary["host"]) == ["broken", "db-01", "shape", "web-01", "web-02", "web|03"]
    row = summary.set_index("host").loc["web|03"]
    assert (row["run_status"], row["verdict"], row["ok"], row["warn"], row["fail"]) == \
        ("findings", "fail", 0, 1, 1)
    assert row["failing_codes"] == "IMDS-NET-002, IMDS-TOKEN-004"
    assert report.run_counts(report.load_results(mixed)) == {
        "ok": 1, "findings": 2, "failed": 0, "timeout": 1, "dead_kernel": 0, "unreadable": 2}


def test_status_matrix_top_findings_latency(mixed: Path):
    df = report.load_results(mixed)
    matrix = report.status_matrix(df)
    assert list(matrix.columns) == ["network.tcp", "token.system"]
    assert matrix.loc["web-02", "token.system"] == "fail"
    assert matrix.loc["web|03", "network.tcp"] == "warn"
    assert "db-01" not in matrix.index

    top = report.top_findings(df, 5)
    assert list(top.columns) == ["code", "status", "title", "count", "fix"]
    assert list(top["code"]) == ["IMDS-TOKEN-004", "IMDS-NET-002"]
    assert list(top["count"]) == [2, 1]
    assert top.loc[0, "fix"] == "fix for IMDS-TOKEN-004"
    assert len(report.top_findings(df, 1)) == 1

    latency = report.latency_table(df)
    assert list(latency.index) == ["network.tcp", "token.system"]
    assert list(latency.columns) == ["median_ms", "p95_ms", "n"]
    assert latency.loc["token.system", "n"] == 3
    assert latency.loc["token.system", "median_ms"] == 60.0
    assert latency.loc["token.system", "p95_ms"] == 78.0      # numpy linear interpolation
    assert latency.loc["network.tcp", "median_ms"] == 3.0


def test_newest_result_wins_in_the_matrix(tmp_path: Path):
    write_host(tmp_path / "run1", "web-01", make_report(("net", "A", "fail", 1.0)),
               started_at="2026-11-01T00:00:00Z")
    write_host(tmp_path / "run2", "web-01", make_report(("net", "A", "ok", 1.0)),
               started_at="2026-11-02T00:00:00Z")
    df = report.load_results(tmp_path)
    assert len(report.summary_table(df)) == 2                 # every result file is listed
    assert report.status_matrix(df).loc["web-01", "net"] == "ok"


def test_csv_markdown_text(mixed: Path):
    df = report.load_results(mixed)
    csv = report.render_csv(report.summary_table(df))
    back = pd.read_csv(io.StringIO(csv))
    assert list(back["host"]) == ["broken", "db-01", "shape", "web-01", "web-02", "web|03"]
    assert "web-02,findings,fail,1,0,1,0,IMDS-TOKEN-004" in csv

    md = report.render_markdown_report(df)
    assert "| host | run_status | verdict |" in md
    assert "| web\\|03 | findings | fail | 0 | 1 | 1 | 0 | IMDS-NET-002, IMDS-TOKEN-004 |" in md
    assert "| IMDS-TOKEN-004 | fail | title of IMDS-TOKEN-004 | 2 | fix for IMDS-TOKEN-004 |" in md
    table_lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert all(line.endswith(" |") for line in table_lines)

    text = report.render_text_report(df)
    assert "web-02" in text and "findings" in text and "Top findings:" in text
    assert "6 host results: 1 ok, 2 findings, 1 timeout, 2 unreadable" in text
    header, rule = text.splitlines()[:2]
    assert header.startswith("host") and set(rule) <= {"-", " "}


def test_html_is_styled_escaped_and_deterministic(mixed: Path, tmp_path: Path):
    html = report.render_html(report.load_results(mixed), base_dir=mixed)
    again = report.render_html(report.load_results(mixed), base_dir=mixed)
    assert html.encode() == again.encode()                    # identical bytes
    assert 'id="T_imds_summary"' in html and 'id="T_imds_matrix"' in html
    assert "td.imds-ok { background: #d8f0d8" in html         # ok green
    assert "td.imds-warn { background: #fde9c4" in html       # warn amber
    assert "td.imds-fail { background: #f8d3d3" in html       # fail red
    assert "td.imds-skip { background: #e6e6e6" in html       # skip grey
    assert '<td class="imds-ok">ok</td>' in html and '<td class="imds-fail">fail</td>' in html
    assert '<td class="imds-fail">timeout</td>' in html and '<td class="imds-warn">findings</td>' in html
    assert '<a href="db-01/db-01.html">report</a>' in html
    assert "web|03" in html and "IMDS-TOKEN-004" in html


def test_html_escapes_hostile_values(tmp_path: Path):
    write_host(tmp_path, "evil", make_report(("net", "<script>x</script>", "fail", 1.0)))
    html = report.render_html(report.load_results(tmp_path))
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


def test_write_text_is_atomic(tmp_path: Path):
    target = report.write_text(tmp_path / "summary.md", "hello\n")
    assert target.read_text() == "hello\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]


HOSTILE = "\x1b]0;owned\x07\x9b2J\r\n<img src=x onerror=alert(1)>|\u202e"


def test_hostile_sidecar_values_are_escaped_in_every_format(tmp_path: Path):
    """A result folder is outside input: host names, codes, titles, fixes and errors from it
    reach a terminal, a spreadsheet, a markdown page and a browser only escaped."""
    bad = ("net", "=cmd|' /C calc'!A0", "fail", 1.0)
    write_host(tmp_path, "evil", make_report(bad), run={"status": "failed", "error": "@SUM(1)" + HOSTILE,
                                                         "duration_s": -2.5})
    forged = json.loads((tmp_path / "evil" / "evil.json").read_text("utf-8"))
    forged["host"] = "+evil" + HOSTILE                                # a file someone hands us
    (tmp_path / "forged.json").write_text(json.dumps(forged), encoding="utf-8")
    df = report.load_results(tmp_path)
    # The payload is in the data, its control characters as visible escapes already: the fleet
    # notebook shows these frames as they are, and their text form reaches a terminal.
    assert terminal_safe(HOSTILE) in set(df["host"].map(lambda h: h[5:]))
    assert not df.select_dtypes(exclude="number").map(lambda v: isinstance(v, str) and not v.isprintable()).any().any()

    raw = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]")
    text, md = report.render_text_report(df), report.render_markdown_report(df)
    csv_text, html = report.render_csv(report.summary_table(df)), report.render_html(df)
    for name, out in (("text", text), ("markdown", md), ("csv", csv_text), ("html", html)):
        assert not raw.search(out), name
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    rows = list(csv_module.DictReader(io.StringIO(csv_text)))
    assert sorted(r["host"][:6] for r in rows) == ["'+evil", "evil"]
    assert {r["error"][:8] for r in rows} == {"'@SUM(1)"}
    assert {r["failing_codes"] for r in rows} == {"'=cmd|' /C calc'!A0"}
    assert {r["duration_s"] for r in rows} == {"-2.5"}                # numbers are left alone
