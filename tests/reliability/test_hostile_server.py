"""A hostile look-alike of IMDS on loopback, and the whole tool run against it.

Each row of ``CASES`` is one way something answering on 169.254.169.254 can misbehave:
nested JSON, huge integers, half a UTF-16 pair, slow headers, slow and endless bodies, huge and many headers, a
lying Content-Length, a compression bomb, and answers that IMDS would give but with control
characters and HTML / markdown / CSV payloads in every field that reaches a report. For each
row ``imds-runbook check`` runs as a user runs it (a fresh process, ``--timeout`` per step),
and the test asserts:

* it ends with exit 0 or 1 (findings), never 2, a signal or a traceback;
* its wall time is within the sum of the step budgets (each HTTP step and the TCP connect
  ``--timeout`` seconds), plus a fixed allowance for the interpreter's start;
* its peak memory (the child's own VmHWM) stays under a bound;
* its human listing holds no raw control character and one line per check;
* no secret the server issued (a canary inside every token) appears anywhere.

The payload rows then go further: their results become sidecars, and ``imds-runbook report``
renders them as a table, markdown, CSV and HTML; one row is run through ``imds-runbook run``
(papermill, the executed notebook, its HTML and the summary files).
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
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from imds_helpers.emulator.tokens import make_jwt
from imds_helpers.fleet.sidecar import build_sidecar, local_host_name, write_sidecar

from loopback_server import ThreadedAcceptLoop, read_request_head
from .conftest import REPO, clean_env

CANARY = "imdsrbhostilecanary0a1b2c3d4e5f"
TIMEOUT_S = 1.0                  # `check --timeout`: every step's budget
START_ALLOWANCE_S = 4.0          # interpreter start, imports, host commands, process exit
MAX_RSS_MB = 150                 # a check peaks near 20-40 MB; the bomb alone is 256 MB unpacked

# Control characters that must never reach a terminal raw: C0 (but \t and \n), DEL, C1.
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What an attacker would put into a field: terminal escapes (clear screen, set title, C1 CSI),
# a line break that forges a finding, bidi override, HTML, markdown and a spreadsheet formula.
EVIL = ("\x1b[2J\x1b]0;owned\x07\x9b31m\r\nOK    IMDS-FAKE-000 forged line\u202e"
        "<script>alert(1)</script><img src=x onerror=alert(2)>|col|[x](javascript:alert(3))")
FORMULA = '=HYPERLINK("http://evil.invalid","click")'
SERVER_HEADER = "IMDS/150.870.65.1"


# --- the hostile server -----------------------------------------------------------------------

Handler = Callable[[socket.socket, str, threading.Event], None]


class HostileIMDS(ThreadedAcceptLoop):
    """Answers each request with the handler ``route(path)`` picks (instance, versions, token);
    slow handlers stop when the client leaves or the server closes."""

    def __init__(self, route: Callable[[str], Handler]) -> None:
        super().__init__()
        self._route = route

    def serve(self, conn: socket.socket) -> None:
        request = read_request_head(conn)
        if request:
            parts = request.split(b" ", 2)
            path = parts[1].decode("latin-1") if len(parts) == 3 else "/"
            self._route(path)(conn, path, self._stop)


def head(status: str = "200 OK", headers: tuple[tuple[str, str], ...] = (), *, json_ct: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Server: {SERVER_HEADER}"]
    if json_ct:
        lines.append("Content-Type: application/json; charset=utf-8")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def answer(body: bytes | str, status: str = "200 OK", *, extra: tuple[tuple[str, str], ...] = (),
           json_ct: bool = True) -> Handler:
    data = body.encode() if isinstance(body, str) else body

    def send(conn: socket.socket, path: str, halt: threading.Event) -> None:
        conn.sendall(head(status, (("Content-Length", str(len(data))), ("Connection", "close"), *extra),
                          json_ct=json_ct) + b"\r\n" + data)
    return send


def drip(prefix: bytes, piece: bytes, interval: float) -> Handler:
    """``prefix`` at once, then ``piece`` every ``interval`` seconds until the client leaves."""
    def send(conn: socket.socket, path: str, halt: threading.Event) -> None:
        conn.sendall(prefix)
        deadline = time.monotonic() + 120
        while not halt.is_set() and time.monotonic() < deadline:
            time.sleep(interval)
            conn.sendall(piece)
    return send


def endless_chunks(conn: socket.socket, path: str, halt: threading.Event) -> None:
    conn.sendall(head(headers=(("Transfer-Encoding", "chunked"),)) + b"\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"[" * 65536)
    deadline = time.monotonic() + 60
    while not halt.is_set() and time.monotonic() < deadline:
        conn.sendall(chunk)


def lie_then_hang(conn: socket.socket, path: str, halt: threading.Event) -> None:
    conn.sendall(head(headers=(("Content-Length", "100000"),)) + b"\r\n" + b'{"compute": {')
    halt.wait(60)


def _gzip_bomb(size: int = 256 * 1024 * 1024) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1024 * 1024)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + compressor.flush()


def token_body(claims: dict) -> str:
    return json.dumps({"access_token": make_jwt(claims, CANARY), "expires_in": "86399", "expires_on": "1999999999",
                       "ext_expires_in": "86399", "not_before": "1700000000", "resource": "https://management.azure.com/",
                       "token_type": "Bearer", "client_id": EVIL})


def instance_document(value: str) -> str:
    compute = {"vmId": value, "name": value, "location": value, "osType": value, "resourceId": value,
               "azEnvironment": value, "subscriptionId": value, "resourceGroupName": value, "vmSize": value,
               "tagsList": [{"name": value, "value": FORMULA}]}
    return json.dumps({"compute": compute, "network": {"interface": []}})


def by_path(instance: Handler, token: Handler | None = None, versions: Handler | None = None) -> Callable[[str], Handler]:
    def route(path: str) -> Handler:
        if "/oauth2/token" in path:
            return token or instance
        if path.startswith("/metadata/versions"):
            return versions or instance
        return instance
    return route


def everywhere(handler: Handler) -> Callable[[str], Handler]:
    return lambda path: handler


# --- the cases ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    route: Callable[[], Callable[[str], Handler]]     # built lazily: a bomb is not built at import
    payload: bool = False                             # its fields are meant to reach the reports


NESTED_ARRAY = "[" * 300_000
NESTED_OBJECT = '{"a":' * 60_000 + "1" + "}" * 60_000
HUGE_INT = "9" * 5_000

CASES = (
    Case("nested-array", lambda: everywhere(answer(NESTED_ARRAY))),
    Case("nested-object", lambda: everywhere(answer(NESTED_OBJECT))),
    Case("huge-integer", lambda: by_path(answer('{"compute": {"vmId": %s, "name": 1}}' % HUGE_INT),
                                         token=answer('{"access_token": "x", "expires_in": %s}' % HUGE_INT))),
    Case("lone-surrogate", lambda: by_path(answer('{"compute": {"name": "\\ud800", "vmId": "x"}}'),
                                           token=answer('{"error": "x", "error_description": "\\udfff"}',
                                                        "400 Bad Request"))),
    Case("slow-headers", lambda: everywhere(drip(b"HTTP/1.1 200 OK\r\nServer: IMDS/1\r\nX-Slow: ", b"a", 0.2))),
    Case("slow-body", lambda: everywhere(drip(head(headers=(("Content-Length", "5000"),)) + b"\r\n", b" ", 0.2))),
    Case("endless-body", lambda: everywhere(endless_chunks)),
    Case("huge-header", lambda: everywhere(answer("{}", extra=(("X-Huge", "h" * 2_000_000),)))),
    Case("many-headers", lambda: everywhere(answer("{}", extra=tuple((f"X-H{i}", "v") for i in range(20_000))))),
    Case("lying-length-short", lambda: everywhere(answer(b'{"compute": {"name": "x"}}',
                                                         extra=(("Content-Length", "9"),)))),
    Case("lying-length-hang", lambda: everywhere(lie_then_hang)),
    Case("gzip-bomb", lambda: everywhere(answer(_gzip_bomb(), extra=(("Content-Encoding", "gzip"),)))),
    # Answers IMDS would give, with hostile text in every field: the instance document, the
    # versions answer's headers (not IMDS: its Server and Content-Type are quoted), a token
    # error's error / error_description and Retry-After.
    Case("payload-errors", lambda: by_path(
        answer(instance_document(EVIL)),
        token=answer(json.dumps({"error": "invalid_request" + EVIL, "error_description": EVIL + FORMULA}),
                     "400 Bad Request"),
        versions=answer(b"<html>" + EVIL.encode() + b"</html>", json_ct=False,
                        extra=(("Content-Type", "text/html\x1b[31m\x07"), ("Server", "evil\x1b]0;t\x07")))),
         payload=True),
    # A token that is issued, with hostile claims (and the canary, which must never show).
    Case("payload-token", lambda: by_path(
        answer(instance_document(FORMULA)),
        token=answer(token_body({"aud": EVIL, "iss": FORMULA, "oid": EVIL, "xms_mirid": EVIL, "appid": FORMULA,
                                 "exp": 1999999999, "iat": 1700000000}))),
         payload=True),
)


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def hostile(request):
    case: Case = request.param
    server = HostileIMDS(case.route()).start()
    try:
        yield case, f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


# --- running the tool ------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    wall_s: float
    max_rss_mb: float


# ``python -m imds_helpers`` that writes, as it exits, the peak memory of its own image:
# VmHWM starts afresh with exec, where ru_maxrss (wait4, getrusage) keeps the high-water mark
# of the forked copy of this test process, hundreds of MB late in the suite.
PEAK_PROBE = """\
import atexit, runpy, sys
peak_file = sys.argv.pop(1)
def peak():
    with open("/proc/self/status") as status, open(peak_file, "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(peak)
runpy.run_module("imds_helpers", run_name="__main__", alter_sys=True)
"""


def run_cli(args: list[str], endpoint: str, *, timeout: float = 120, cwd: Path | None = None) -> Run:
    """``python -m imds_helpers ARGS`` with the endpoint override: its output, wall time and
    peak memory."""
    env = clean_env({"IMDS_RUNBOOK_ENDPOINT": endpoint, "PYTHONDONTWRITEBYTECODE": "1"})
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = os.path.join(scratch, "peak")
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-c", PEAK_PROBE, peak_file, *args], capture_output=True,
                                  env=env, cwd=cwd or REPO, timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{args[0]} still running after {timeout:g} s")
        wall = time.monotonic() - started
        with open(peak_file, encoding="ascii") as handle:
            peak_kb = int(handle.read())
    return Run(done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"),
               wall, peak_kb / 1024)


def check_args(*extra: str) -> list[str]:
    return ["check", "--target", "vm", "--timeout", f"{TIMEOUT_S:g}", *extra]


def budget_s(report: dict) -> float:
    """The sum of the step budgets of this run: the TCP connect and every step that sent HTTP."""
    http_steps = sum(1 for c in report["checks"] if c.get("attempts"))
    return START_ALLOWANCE_S + TIMEOUT_S * (1 + http_steps)


def assert_sane(run: Run, what: str) -> None:
    assert run.code in (0, 1), f"{what}: exit {run.code}\n{run.stderr[-2000:]}"
    assert "Traceback" not in run.stderr + run.stdout, f"{what}: traceback\n{run.stderr[-2000:]}"
    assert run.max_rss_mb < MAX_RSS_MB, f"{what}: {run.max_rss_mb:.0f} MB"
    assert CANARY not in run.stdout + run.stderr, f"{what}: a token reached the output"


def assert_terminal_safe(text: str, what: str) -> None:
    bad = sorted({hex(ord(c)) for c in RAW_CONTROL.findall(text)})
    assert not bad, f"{what}: raw control characters {bad} reach the terminal"
    assert "\u202e" not in text, f"{what}: a bidi override reaches the terminal"


# --- the tests ---------------------------------------------------------------------------------

def test_check_holds_against_a_hostile_look_alike(hostile) -> None:
    case, endpoint = hostile
    as_json = run_cli(check_args("--json"), endpoint)
    assert_sane(as_json, f"{case.name} --json")
    report = json.loads(as_json.stdout)            # strict JSON, whatever the server sent
    assert report["verdict"] in ("warn", "fail"), f"{case.name}: a hostile answer was judged healthy"
    assert as_json.wall_s <= budget_s(report), (
        f"{case.name}: {as_json.wall_s:.1f} s, over the step budgets' sum {budget_s(report):.1f} s")

    listing = run_cli(check_args(), endpoint)
    assert_sane(listing, case.name)
    assert listing.wall_s <= budget_s(report), f"{case.name}: listing took {listing.wall_s:.1f} s"
    assert_terminal_safe(listing.stdout + listing.stderr, case.name)
    # One line per check: the status lines add up to the tally, and none was forged.
    status_lines = [ln for ln in listing.stdout.splitlines() if re.match(r"(OK|WARN|FAIL|SKIP) ", ln)]
    tally = re.search(r"Verdict: \w+ - (\d+) ok, (\d+) warn, (\d+) fail, (\d+) skipped", listing.stdout)
    assert tally, listing.stdout[-500:]
    assert len(status_lines) == sum(int(n) for n in tally.groups()), listing.stdout
    assert "IMDS-FAKE-000" not in "".join(ln[:30] for ln in status_lines)


HOSTILE_CASES = {c.name: c for c in CASES if c.payload}


def _sidecars_from_hostile_runs(folder: Path) -> list[dict]:
    """One sidecar per payload case from `check --json` against it, and one whose host and
    parameters are hostile too (a sidecar is outside input for `report`)."""
    sidecars = []
    for name, case in HOSTILE_CASES.items():
        server = HostileIMDS(case.route()).start()
        try:
            run = run_cli(check_args("--json"), f"http://127.0.0.1:{server.port}")
        finally:
            server.close()
        assert_sane(run, name)
        sidecar = build_sidecar(json.loads(run.stdout), host=name, notebook="01_azure_vm_imds",
                                parameters={"endpoint": EVIL, "note": FORMULA}, started_at="2026-12-04T00:00:00Z",
                                duration_s=run.wall_s)
        write_sidecar(folder / f"{name}.json", sidecar)
        sidecars.append(sidecar)
    forged = dict(sidecars[0], host="evil" + EVIL, notebook=FORMULA)
    (folder / "forged.json").write_text(json.dumps(forged), encoding="utf-8")
    return sidecars


def test_report_renders_hostile_results_safely(tmp_path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    sidecars = _sidecars_from_hostile_runs(folder)
    # The payloads did reach the results (or this test would prove nothing).
    assert any(EVIL in c["detail"] for s in sidecars for c in s["checks"])

    outputs = {}
    for fmt in ("table", "markdown", "csv", "html"):
        run = run_cli(["report", str(folder), "--format", fmt], "http://127.0.0.1:9", timeout=60)
        assert run.code in (0, 1), f"report --format {fmt}: exit {run.code}\n{run.stderr[-1500:]}"
        assert "Traceback" not in run.stderr and CANARY not in run.stdout + run.stderr
        assert run.max_rss_mb < MAX_RSS_MB
        outputs[fmt] = run.stdout

    assert_terminal_safe(outputs["table"], "report table")
    assert_terminal_safe(outputs["markdown"], "report markdown")
    assert "<script" not in outputs["markdown"] and "<img" not in outputs["markdown"]
    assert "<script" not in outputs["html"] and "<img src=x" not in outputs["html"]
    rows = list(csv.reader(io.StringIO(outputs["csv"])))
    assert len(rows) >= 2
    for row in rows[1:]:
        for cell in row:
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r") and cell != "-":
                float(cell)             # only a number (or the "no code" mark) may start so


@pytest.mark.skipif(os.environ.get("IMDS_RUNBOOK_NETNS") != "1",
                    reason="needs tests/isolated.sh's private namespace: papermill's kernel runs the real checks")
def test_run_renders_hostile_results_safely(tmp_path) -> None:
    """One payload case through `imds-runbook run`: papermill, the executed notebook's text
    output, its HTML, the summary files and the progress lines."""
    case = HOSTILE_CASES["payload-errors"]
    server = HostileIMDS(case.route()).start()
    host = local_host_name()   # a live run is about this machine: `run` refuses another machine's name
    params = tmp_path / f"{host}.yaml"
    try:
        params.write_text(f"target: vm\nhost_name: {host}\nendpoint: http://127.0.0.1:{server.port}\n"
                          f"timeout_s: {TIMEOUT_S:g}\n", encoding="utf-8")
        out = tmp_path / "out"
        run = run_cli(["run", str(params), "--out", str(out)], f"http://127.0.0.1:{server.port}", timeout=240)
    finally:
        server.close()
    assert run.code == 1, f"run: exit {run.code}\n{run.stdout[-1500:]}\n{run.stderr[-1500:]}"
    assert "Traceback" not in run.stderr
    assert_terminal_safe(run.stdout + run.stderr, "run")
    everything = ""
    for path in sorted(out.rglob("*")):
        if path.is_file():
            text = path.read_text("utf-8", "replace")
            everything += text
            assert CANARY not in text, path
            if path.suffix in (".html", ".md"):
                assert "<script>alert" not in text and "<img src=x" not in text, path
            if path.suffix == ".csv":
                for row in list(csv.reader(io.StringIO(text)))[1:]:
                    assert not any(cell[:1] in ("=", "+", "@", "\t", "\r") for cell in row), (path, row)
    notebook = json.loads((out / host / f"{host}.ipynb").read_text("utf-8"))
    texts = ["".join(o.get("data", {}).get("text/plain", "")) + "".join(o.get("text", ""))
             for cell in notebook["cells"] for o in cell.get("outputs", [])]
    assert any("IMDS-" in t for t in texts), "the notebook shows no findings"
    assert_terminal_safe("\n".join(texts), "notebook text output")
