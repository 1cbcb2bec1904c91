"""Nothing from outside reaches a terminal raw, a spreadsheet as a formula or markdown as HTML.

Metadata values, headers, ``error_description`` and sidecars are outside input. Every human
rendering - the ``check`` listing, ``run``'s progress lines and summary, ``report`` as a table,
markdown and CSV, and the runbooks' text tables - shows control characters as visible escapes
and keeps one finding on one line; ``--json`` keeps the original strings.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from imds_helpers.cli.check import render_text
from imds_helpers.model.findings import CheckResult, Commands, Report, Status
from imds_helpers.runbooks.tables import ResultTable
from imds_helpers.model.textsafe import csv_safe, json_safe, markdown_safe, terminal_safe

from loopback_server import ThreadedAcceptLoop, read_request_head

REPO = Path(__file__).resolve().parents[2]

RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Bidi embeddings / overrides / isolates and the Unicode line separators: invisible reorderers.
RAW_INVISIBLE = re.compile("[\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Clear screen, BEL, C1 CSI, CR and LF (a forged finding line), bidi override, HTML, markdown
# pipe, a spreadsheet formula.
EVIL = ("\x1b[2J\x07\x9b31m\r\nOK    IMDS-FAKE-000 forged\u202e<script>alert(1)</script>|x|"
        '=HYPERLINK("http://evil.invalid","click")')
FORMULA = '=HYPERLINK("http://evil.invalid","click")'


def assert_terminal_safe(text: str) -> None:
    assert not RAW_CONTROL.findall(text), sorted({hex(ord(c)) for c in RAW_CONTROL.findall(text)})
    assert not RAW_INVISIBLE.findall(text), sorted({hex(ord(c)) for c in RAW_INVISIBLE.findall(text)})


# --- the one function ---------------------------------------------------------------------------

@pytest.mark.parametrize("char, shown", [
    ("\x1b", "\\x1b"), ("\x07", "\\x07"), ("\x00", "\\x00"), ("\x7f", "\\x7f"), ("\x9b", "\\x9b"),
    ("\x85", "\\x85"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"), ("\u202e", "\\u202e"), ("\u2066", "\\u2066"), ("\u2069", "\\u2069"),
    ("\u200f", "\\u200f"), ("\ud800", "\\ud800"),
])
def test_terminal_safe_shows_each_control_as_an_escape(char, shown):
    assert terminal_safe(f"a{char}b") == f"a{shown}b"


def test_terminal_safe_keeps_printable_text_as_it_is():
    for text in ("", "plain ascii", r"C:\Windows\System32", "Zürich – 東京 \u00a0nbsp", "100 % <ok> & |"):
        assert terminal_safe(text) == text
    plain = "x" * 1000
    assert terminal_safe(plain) is plain          # the fast path: no copy for printable text


def test_escaped_text_can_be_written_to_a_strict_utf8_stream():
    # A lone surrogate (JSON "\ud800") would make writing to stdout raise.
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    stream.write(terminal_safe("name \ud800 end"))
    stream.flush()


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-x", "'-x"), ("@SUM(A1)", "'@SUM(A1)"), (FORMULA, "'" + FORMULA),
    ("\t=1+1", "\\t=1+1"), ("\r=1+1", "\\r=1+1"),    # a leading tab / CR is an escape, not a cell start
    ("-3.5", "-3.5"), ("+2", "+2"), ("-1e5", "-1e5"),  # numbers stay numbers
    ("-", "-"),                                        # the "no code" mark: no formula
    ("web-01", "web-01"), ("IMDS-NET-011", "IMDS-NET-011"), ("", ""), (3, 3), (-3.5, -3.5), (None, None),
])
def test_csv_safe_neutralises_formulas_only(value, expected):
    assert csv_safe(value) == expected


def test_markdown_safe_escapes_html_pipes_links_and_line_breaks():
    assert markdown_safe("<script>a</script> & b|c [x](javascript:y) d\ne") == (
        "&lt;script&gt;a&lt;/script&gt; &amp; b\\|c \\[x](javascript:y) d\\\\ne")


# --- `check`: the listing -----------------------------------------------------------------------

def _hostile_report() -> Report:
    checks = (
        CheckResult(id="metadata.instance", code="IMDS-META-001", status=Status.WARN, title="Instance metadata",
                    detail=f"name={EVIL}", fix="fix " + EVIL, commands=Commands(curl="curl " + EVIL)),
        CheckResult(id="token.system", code="IMDS-TOKEN-004", status=Status.FAIL, title="Token " + EVIL,
                    detail=f"error_description: {EVIL}", fix="f"),
        CheckResult(id="network.tcp", code="IMDS-NET-010", status=Status.OK, title="TCP", detail="ok"),
    )
    return Report(target="vm", endpoint="http://127.0.0.1:9/" + EVIL, checks=checks,
                  platform={"reason": "chosen because " + EVIL})


def test_check_listing_is_terminal_safe_one_line_per_finding():
    text = render_text(_hostile_report(), 12.0)
    assert_terminal_safe(text)
    lines = text.splitlines()
    # header, reason, 3 checks, fix + try under the warn, fix under the fail, verdict
    assert len(lines) == 9, lines
    assert [ln.split()[0] for ln in lines if re.match(r"(OK|WARN|FAIL|SKIP) ", ln)] == ["WARN", "FAIL", "OK"]
    assert "\\x1b[2J\\x07\\x9b31m\\r\\nOK    IMDS-FAKE-000 forged\\u202e" in lines[2]


def test_check_listing_redacts_before_escaping():
    # "Basic<TAB>secret" is a credential; once the tab is an escape the pattern could not see it.
    report = Report(target="vm", endpoint="http://127.0.0.1:9", checks=(
        CheckResult(id="x", code="IMDS-ARC-001", status=Status.FAIL, title="t", detail="d",
                    fix="sent Authorization: Basic\tsupersecretvalue123"),))
    text = render_text(report, 1.0)
    assert "supersecretvalue123" not in text and "<redacted>" in text


class _HostileIMDS(ThreadedAcceptLoop):
    """IMDS's headers with a hostile instance document; an OAuth error with a hostile
    ``error_description`` for tokens; a versions answer that is not IMDS's (so its hostile
    ``Server`` and ``Content-Type`` headers are quoted)."""

    def __init__(self, instance: bytes, token_error: bytes) -> None:
        super().__init__()
        self.instance, self.token_error = instance, token_error

    def serve(self, conn: socket.socket) -> None:
        target = read_request_head(conn).split(b"\r\n", 1)[0]
        head = b"Server: IMDS/150.870.65.1\r\nContent-Type: application/json; charset=utf-8\r\n"
        if b"/oauth2/token" in target:
            status, body = b"400 Bad Request", self.token_error
        elif b"/metadata/versions" in target:
            status, body = b"200 OK", b"<html>\x1b[2J</html>"
            head = b"Server: evil\x1b]0;title\x07\r\nContent-Type: text/html\x9b2J\r\n"
        else:
            status, body = b"200 OK", self.instance
        conn.sendall(b"HTTP/1.1 " + status + b"\r\n" + head + b"Content-Length: " + str(len(body)).encode()
                     + b"\r\nConnection: close\r\n\r\n" + body)


def _cli(args: list[str], endpoint: str) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items()
            if not re.match(r"(?i)^(.*_proxy|IMDS_.*|IDENTITY_.*|MSI_.*)$", k)}
    env = dict(keep, IMDS_RUNBOOK_ENDPOINT=endpoint, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "imds_helpers", *args], capture_output=True, env=env,
                          cwd=REPO, timeout=120)


@pytest.fixture
def hostile_imds():
    compute = {k: EVIL for k in ("vmId", "name", "location", "osType", "resourceId", "subscriptionId",
                                 "resourceGroupName", "vmSize", "azEnvironment")}
    compute["tagsList"] = [{"name": EVIL, "value": FORMULA}]
    instance = json.dumps({"compute": compute, "network": {"interface": []}})
    # (A lone surrogate, "\ud800", is refused where the JSON is parsed: tests/core/test_http.py.)
    token_error = json.dumps({"error": "invalid_request" + EVIL, "error_description": EVIL})
    server = _HostileIMDS(instance.encode(), token_error.encode()).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def test_check_cli_listing_of_a_hostile_answer_is_terminal_safe(hostile_imds):
    run = _cli(["check", "--target", "vm", "--timeout", "2"], hostile_imds)
    out, err = run.stdout.decode("utf-8"), run.stderr.decode("utf-8")
    assert run.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    # The payloads reached the listing (error_description, the versions answer's headers), escaped.
    assert "\\x1b[2J\\x07\\x9b31m\\r\\nOK    IMDS-FAKE-000 forged\\u202e" in out, out
    assert "Server: evil\\x1b]0;title\\x07" in out, out
    assert_terminal_safe(out + err)
    status_lines = [ln for ln in out.splitlines() if re.match(r"(OK|WARN|FAIL|SKIP) ", ln)]
    tally = re.search(r"Verdict: \w+ - (\d+) ok, (\d+) warn, (\d+) fail, (\d+) skipped", out)
    assert tally and len(status_lines) == sum(int(n) for n in tally.groups()), out
    assert not any(ln.startswith("OK    IMDS-FAKE-000") for ln in out.splitlines())


def test_check_cli_json_keeps_the_original_strings(hostile_imds):
    run = _cli(["check", "--target", "vm", "--timeout", "2", "--json"], hostile_imds)
    assert run.returncode == 1 and b"Traceback" not in run.stderr, run.stderr[-2000:]
    data = json.loads(run.stdout)
    details = " ".join(c["detail"] for c in data["checks"])
    for raw in ("\x1b[2J", "\x07", "\x9b31m", "\r\n", "\u202e", "<script>", FORMULA):
        assert raw in details, raw                      # the strings as the server sent them
    # json.dumps writes C0 as escapes; C1, bidi and surrogates are written so too.
    assert_terminal_safe(run.stdout.decode("utf-8"))


def test_json_safe_changes_only_what_a_terminal_must_not_get():
    clean = json.dumps({"a": ["Zürich – 東京", "tab\t", "q\"uote", 1.5]}, indent=2, ensure_ascii=False)
    assert json_safe(clean) == clean                    # --json of a healthy run: the same bytes
    value = {"k": "\x1b \x7f \x9b \u202e \u2028 \ud800 é"}
    text = json_safe(json.dumps(value, ensure_ascii=False))
    assert json.loads(text) == value
    assert text == '{"k": "\\u001b \\u007f \\u009b \\u202e \\u2028 \\ud800 é"}'


# --- the runbooks' text tables -------------------------------------------------------------------

def test_result_table_text_is_terminal_safe_one_line_per_row():
    t = ResultTable.from_dicts("t", [{"status": "warn", "code": "IMDS-META-001", "id": "m", "title": EVIL,
                                      "detail": EVIL, "fix": EVIL},
                                     {"status": "ok", "code": "IMDS-NET-010", "id": "n", "title": "TCP",
                                      "detail": "ok", "fix": ""}],
                               ("status", "code", "id", "title", "detail", "fix"), caption="saved " + EVIL)
    text = str(t)
    assert_terminal_safe(text)
    # caption, header, the warn row and its detail and fix, the ok row and its detail
    assert len(text.splitlines()) == 7, text
    assert "\\x1b[2J\\x07\\x9b31m" in text
    # What IPython shows as text/plain is the same text.
    shown = []
    t._repr_pretty_(SimpleNamespace(text=shown.append), False)
    assert shown == [text]


# --- `report` and `run`'s summary ------------------------------------------------------------------

@pytest.fixture
def hostile_results(tmp_path: Path) -> Path:
    from imds_helpers.fleet.sidecar import build_sidecar, write_sidecar

    folder = tmp_path / "results"
    folder.mkdir()
    report = _hostile_report()
    for host in ("web-01", "web-02"):
        sidecar = build_sidecar(report, host=host, notebook="01_azure_vm_imds",
                                parameters={"endpoint": EVIL}, started_at="2026-12-04T00:00:00Z", duration_s=1.0)
        sidecar["run"] = {"status": "failed", "error": "boom " + EVIL, "duration_s": -3.5}
        write_sidecar(folder / f"{host}.json", sidecar)
    # A sidecar someone hands us, its host name hostile too.
    forged = json.loads((folder / "web-01.json").read_text("utf-8"))
    forged["host"] = FORMULA + EVIL
    (folder / "forged.json").write_text(json.dumps(forged), encoding="utf-8")
    return folder


def test_report_text_is_terminal_safe(hostile_results: Path):
    from imds_helpers.fleet import report

    df = report.load_results(hostile_results)
    text = report.render_text_report(df)
    assert_terminal_safe(text)
    hosts = text.split("Top findings:")[0].strip().splitlines()
    assert len(hosts) == 2 + 3, text                     # header, rule, one line per host


def test_report_markdown_escapes_html_and_keeps_rows_whole(hostile_results: Path):
    from imds_helpers.fleet import report

    md = report.render_markdown_report(report.load_results(hostile_results))
    assert_terminal_safe(md)
    assert "<" not in md and "&lt;script&gt;" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert all(ln.endswith(" |") for ln in rows)
    hosts = md.split("## Hosts")[1].split("## Top findings")[0]
    assert len([ln for ln in hosts.splitlines() if ln.startswith("| ")]) == 2 + 3   # header, rule, 3 hosts


def test_report_csv_neutralises_formulas_and_controls(hostile_results: Path):
    from imds_helpers.fleet import report

    text = report.render_csv(report.summary_table(report.load_results(hostile_results)))
    assert_terminal_safe(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3
    for row in rows:
        for name, cell in row.items():
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r") and cell != "-":
                float(cell)                              # only a number may start so
    forged = next(r for r in rows if "HYPERLINK" in r["host"])
    assert forged["host"].startswith("'=HYPERLINK(")
    assert {r["duration_s"] for r in rows} == {"-3.5"}   # a negative number is a number
    assert all(r["error"].startswith("boom \\x1b[2J") for r in rows)


def test_run_progress_lines_are_terminal_safe(capsys):
    from imds_helpers.cli.run import _progress

    tick, close = _progress(2)
    tick(SimpleNamespace(host="web-01", status="failed", error="kernel said " + EVIL, failing_codes=(),
                         duration_s=1.0))
    tick(SimpleNamespace(host="web-02", status="findings", error=None, failing_codes=("IMDS-X" + EVIL,),
                         duration_s=2.0))
    close()
    err = capsys.readouterr().err
    assert_terminal_safe(err)
    assert len(err.splitlines()) == 2 and err.startswith("[1/2] web-01: failed - kernel said \\x1b[2J")


