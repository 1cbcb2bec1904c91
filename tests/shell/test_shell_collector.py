"""imds-collect.sh (the POSIX sh + curl collector) against the Python collector, differentially.

Every row of the fault matrix (every emulator scenario, and the --client-id rows) is collected
twice, each time from a fresh emulator: by the Python collector (``LiveHost``, as `collect` does)
and by the shell script under ``dash``. ``analyze`` must give both bundles the same checks,
statuses and codes - except for the rows of :data:`DIFFERENCES`, which must differ exactly so
(a listed difference that no longer happens fails too). Each shell bundle is valid against the
JSON Schema and ``evidence.check``, answers every question the analysis asks (misses == []), and
holds no canary and no signed token.

``bash --posix`` and ``busybox sh`` run a representative subset (healthy VM and Arc, a retry
after a backoff, a body that is not JSON, an oversized body, a symlinked realm, a rejected
secret): the script's shell-dependent parts (parsing, traps, redirections, the awk engine's
input) are all on those paths, and the whole matrix three times would triple the suite's time.
The rows run in parallel threads; the slow rows (a 10 s budget spent on purpose) bound the time.

Timing differences that do not change a code, kept out of the table because no check differs:
a body that drips (vm-slow-drip) is bounded by the step's budget in curl (10 s), by the read
timeout after the headers in Python (5 s); headers that drip (vm-slow-headers) end after 5 s in
curl (its low-speed check) and at the 10 s budget in Python - both are IMDS-HTTP-006.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest

from imds_helpers.analyze import analyze_with_misses
from imds_helpers.analyze.pipeline import Pipeline, check_options
from imds_helpers.collect import LiveHost, parameters
from imds_helpers.emulator import SCENARIOS, Emulator
from imds_helpers.model import digest, evidence
from imds_helpers.model.evidence_schema import json_schema

from loopback_server import AcceptLoop, ThreadedAcceptLoop, read_request_head
from matrix.fault_matrix import MATRIX, Case

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "imds_helpers" / "collect" / "imds-collect.sh"
SIGNED_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
VALIDATOR = jsonschema.Draft202012Validator(json_schema())
IN_NETNS = os.environ.get("IMDS_RUNBOOK_NETNS") == "1"
SHELLS = {"dash": ("dash",), "bash --posix": ("bash", "--posix"), "busybox sh": ("busybox", "sh")}
SUBSET = ("vm-healthy", "arc-healthy", "vm-token-404-then-ok", "vm-malformed-json", "vm-oversized-body",
          "arc-realm-symlink-out", "arc-wrong-secret")

# case id -> {check id: ((python status, code), (shell status, code))}, with the reason. Empty:
# on every row of the matrix the shell bundle analyzes exactly as the Python bundle.
DIFFERENCES: dict[str, dict[str, tuple[tuple[str, str], tuple[str, str]]]] = {}


def case_id(case: Case) -> str:
    return f"{case.scenario}{'+' + '+'.join(case.args[1::2]) if case.args else ''}"


def _shell(name: str) -> tuple[str, ...]:
    argv = SHELLS[name]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (Debian package {argv[0]})")
    if argv[0] == "busybox" and subprocess.run(["busybox", "sh", "-c", "true"], capture_output=True).returncode:
        pytest.skip("this busybox has no sh applet")
    return argv


def _summary(bundle) -> tuple[list[tuple[str, str, str]], list[str], str]:
    report, misses = analyze_with_misses(bundle)
    data = report.to_dict()
    return [(c["id"], c["status"], c["code"]) for c in data["checks"]], misses, data["verdict"]


def _python_bundle(case: Case) -> dict:
    mode = SCENARIOS[case.scenario].mode
    args = dict(zip(case.args[0::2], case.args[1::2]))
    with Emulator(mode=mode, scenario=case.scenario) as emu:
        opts = check_options(target=mode, endpoint=emu.base_url,
                             client_ids=[args["--client-id"]] if "--client-id" in args else [],
                             tokens_dir=str(emu.key_dir) if mode == "arc" else None)
        host = LiveHost()
        pipeline = Pipeline(opts, host)
        pipeline.run_all()
        return evidence.load(evidence.dumps(host.bundle(parameters(opts, pipeline.tokens_dir))))


def run_script(shell: tuple[str, ...], *args: str, env: dict | None = None, timeout: float = 90,
               **popen) -> subprocess.CompletedProcess:
    return subprocess.run([*shell, str(SCRIPT), *args], capture_output=True, timeout=timeout,
                          env=env if env is not None else dict(os.environ), **popen)


def _shell_run(case: Case, shell: tuple[str, ...]) -> dict:
    mode = SCENARIOS[case.scenario].mode
    with Emulator(mode=mode, scenario=case.scenario) as emu:
        args = ["--target", mode, "--endpoint", emu.base_url, *case.args]
        if mode == "arc":
            args += ["--tokens-dir", str(emu.key_dir)]
        started = time.monotonic()
        done = run_script(shell, *args)
        return {"stdout": done.stdout, "stderr": done.stderr, "rc": done.returncode, "canary": emu.canary,
                "seconds": time.monotonic() - started}


def _both(case: Case) -> dict:
    python = _python_bundle(case)
    shell = _shell_run(case, SHELLS["dash"])
    return {"python": python, **shell}


@pytest.fixture(scope="module")
def matrix_runs():
    if shutil.which("dash") is None:
        pytest.skip("dash is not installed (Debian package dash)")
    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = {case_id(case): pool.submit(_both, case) for case in MATRIX}
        return {name: future.result() for name, future in futures.items()}


def _differences(python, shell) -> dict[str, tuple[tuple[str, str], tuple[str, str]]]:
    py, sh = {c[0]: c[1:] for c in python}, {c[0]: c[1:] for c in shell}
    assert [c[0] for c in python] == [c[0] for c in shell], "the two reports list other checks"
    return {check: (py[check], sh[check]) for check in py if py[check] != sh[check]}


def _clean(run: dict) -> None:
    text = run["stdout"].decode("utf-8", "replace") + run["stderr"].decode("utf-8", "replace")
    assert run["canary"] not in text
    assert not SIGNED_JWT.search(text), "a token kept its signature"


@pytest.mark.parametrize("case", MATRIX, ids=[case_id(c) for c in MATRIX])
def test_shell_bundle_analyzes_like_the_python_bundle(case, matrix_runs):
    run = matrix_runs[case_id(case)]
    assert run["rc"] == 0 and run["stderr"] == b"", run["stderr"][-500:]
    _clean(run)
    VALIDATOR.validate(json.loads(run["stdout"]))
    bundle = evidence.load(run["stdout"])
    assert bundle["collector"]["name"] == "imds-collect.sh"
    shell, misses, verdict = _summary(bundle)
    python, python_misses, python_verdict = _summary(run["python"])
    assert misses == [] and python_misses == []
    assert _differences(python, shell) == DIFFERENCES.get(case_id(case), {})
    assert verdict == python_verdict or case_id(case) in DIFFERENCES


def test_differences_table_names_real_rows():
    assert set(DIFFERENCES) <= {case_id(c) for c in MATRIX}


@pytest.mark.parametrize("shell_name", [n for n in SHELLS if n != "dash"])
def test_other_shells_on_a_representative_subset(shell_name):
    shell = _shell(shell_name)
    cases = [c for c in MATRIX if c.scenario in SUBSET and not c.args]

    def one(case):
        return case, _python_bundle(case), _shell_run(case, shell)

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        results = list(pool.map(one, cases))
    for case, python, run in results:
        assert run["rc"] == 0 and run["stderr"] == b"", (case.scenario, run["stderr"][-500:])
        _clean(run)
        shell_checks, misses, _ = _summary(evidence.load(run["stdout"]))
        assert misses == []
        assert _differences(_summary(python)[0], shell_checks) == DIFFERENCES.get(case_id(case), {}), case.scenario


def test_shellcheck_is_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    done = subprocess.run(["shellcheck", "-s", "sh", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-3000:]


def test_collector_script_command_prints_the_shipped_file():
    done = subprocess.run([os.sys.executable, "-m", "imds_helpers", "collector-script"], capture_output=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0
    assert done.stdout == SCRIPT.read_bytes()


def test_script_version_is_the_package_version():
    from imds_helpers import __version__

    assert re.search(rb"^VERSION=(\S+)$", SCRIPT.read_bytes(), re.M).group(1).decode() == __version__


@pytest.mark.parametrize("args, says", [
    (("--bogus",), "unknown argument '--bogus'"),
    (("--target", "cloud"), "--target: must be one of auto, vm, arc"),
    (("--endpoint", "ftp://x"), "--endpoint: expected http://HOST[:PORT]"),
    (("--endpoint", "http://u:p@127.0.0.1:9"), "--endpoint: no user name or password"),
    (("--endpoint", "http://127.0.0.1:70000"), "--endpoint: port is not a number in 1-65535"),
    (("--timeout", "0"), "--timeout: must be a number of seconds > 0 and <= 3600"),
    (("--client-id", "not-a-guid"), "--client-id: not a GUID"),
    (("--resource",), "--resource needs a value"),
])
def test_bad_usage_is_one_line_and_exit_2(args, says, tmp_path):
    # A closed port for the endpoint, in case the usage were taken: the bad argument comes last (and wins).
    done = run_script(("dash",), "--endpoint", "http://127.0.0.1:9", *args, env={**os.environ, "TMPDIR": str(tmp_path)})
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2 and done.stdout == b"" and list(tmp_path.iterdir()) == []
    assert len(lines) == 1 and lines[0].startswith("imds-collect.sh: ") and says in lines[0], lines
    assert "u:p" not in lines[0]


# --- secrets: never on a command line, never written out -------------------------------------------

def _process_args() -> list[str]:
    if shutil.which("ps"):
        return subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, timeout=10).stdout.splitlines()
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            out.append(cmdline.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
        except OSError:
            continue
    return out


class SlowAuthorised(ThreadedAcceptLoop):
    """A relay in front of the emulator that holds a request carrying Authorization for
    ``hold`` seconds before passing it on: the secret is in flight all that time."""

    def __init__(self, upstream: int, hold: float) -> None:
        super().__init__()
        self.upstream, self.hold = upstream, hold

    def serve(self, conn) -> None:
        import socket

        head = read_request_head(conn)
        if not head:
            return
        if b"\r\nauthorization:" in head.lower():
            self._stop.wait(self.hold)
        with socket.create_connection(("127.0.0.1", self.upstream), timeout=5) as up:
            up.sendall(head)
            while data := up.recv(65536):
                conn.sendall(data)


def test_arc_secret_never_in_the_process_list_output_or_temp_files(tmp_path):
    """The authorised request is held 1.5 s while the process list is sampled all along; the
    folder the script works in is empty afterwards."""
    work = tmp_path / "tmp"
    work.mkdir()
    with Emulator(mode="arc", scenario="arc-healthy") as emu:
        relay = SlowAuthorised(int(emu.base_url.rsplit(":", 1)[1]), 1.5).start()
        try:
            proc = subprocess.Popen(["dash", str(SCRIPT), "--target", "arc", "--endpoint",
                                     f"http://127.0.0.1:{relay.port}", "--tokens-dir", str(emu.key_dir)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(work)})
            samples: list[str] = []
            in_flight = 0
            modes: dict[str, int] = {}         # what other users could read while it runs: nothing
            while proc.poll() is None:
                lines = _process_args()
                samples += lines
                in_flight += any("curl" in line and "oauth2/token" in line and " -H @" in line for line in lines)
                for path in work.rglob("*"):
                    try:
                        modes[str(path.relative_to(work))] = path.lstat().st_mode & 0o777
                    except OSError:              # removed between the listing and the stat
                        pass
                time.sleep(0.02)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            relay.close()
        canary = emu.canary
    assert in_flight >= 10, "the authorised request was hardly seen running: the sampling proves nothing"
    assert not [line for line in samples if canary in line]
    assert canary not in stdout.decode() and canary not in stderr.decode()
    checks, misses, _ = _summary(evidence.load(stdout))
    assert ("arc.token", "ok", "IMDS-ARC-000") in checks and misses == []
    assert list(work.iterdir()) == [], "the temporary folder was left behind"
    folders = {name for name in modes if "/" not in name}
    assert folders and all(modes[name] == 0o700 for name in folders), modes
    assert {mode for name, mode in modes.items() if name not in folders} <= {0o600, 0o700}, modes


def test_temp_folder_removed_when_interrupted(tmp_path):
    """Ctrl-C (SIGINT to the whole process group) while a request hangs: exit 2, nothing left."""
    import signal

    with Emulator(mode="vm", scenario="vm-accept-then-hang") as emu:
        proc = subprocess.Popen(["dash", str(SCRIPT), "--target", "vm", "--endpoint", emu.base_url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(tmp_path)},
                                start_new_session=True)
        deadline = time.monotonic() + 10
        while not any(tmp_path.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert list(tmp_path.iterdir()) == []


# --- hostile answers: any byte in headers and bodies, still valid JSON, stored as Python stores it ---

SIGNED = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA"
HOSTILE_BODIES = {      # path prefix -> body: JSON with raw non-ASCII, bytes that are not UTF-8, control characters
    b"/metadata/instance": ('{"compute": {"name": "caf\u00e9 \u2028 \\\"q\\\\"}, "t": "' + SIGNED + '", '
                            '"a": "Basic c2VjcmV0LXBhc3M="}').encode(),
    b"/metadata/versions": b'{"apiVersions": ["\x00\x01\x1f \xff\xfe not utf-8", "\xc3"], "q": "\\""}\x7f\r\n',
    b"/metadata/identity": ('{"access_token": "' + SIGNED + '", "c": "\u00e9\u2028\x01\x1b[31m", "q": "\\\\\\"", '
                            '"b": "x Basic dXNlcjpwYXNz y"}').encode(),
}


class Hostile(AcceptLoop):
    def handle(self, conn) -> None:
        conn.settimeout(2)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            path = data.split(b" ", 2)[1]
            body = next((b for p, b in HOSTILE_BODIES.items() if path.startswith(p)), b"{}")
            head = (b"HTTP/1.1 200 OK\r\nServer: IMDS/\x01\"quoted\"\\back\r\nContent-Type: application/json\r\n"
                    b"X-Odd: caf\xc3\xa9 \xff\xfe \x7f\r\nX-Token: Bearer " + SIGNED.encode() + b"\r\n"
                    b"X-Auth: Basic c2VjcmV0\r\nX-Odd: second\r\nConnection: close\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            conn.sendall(head + body)
        except OSError:
            pass
        finally:
            conn.close()


def test_hostile_headers_and_bodies_are_stored_as_python_stores_them():
    server = Hostile().start()
    try:
        endpoint = f"http://127.0.0.1:{server.port}"
        opts = check_options(target="vm", endpoint=endpoint)
        host = LiveHost()
        pipeline = Pipeline(opts, host)
        pipeline.run_all()
        python = evidence.load(evidence.dumps(host.bundle(parameters(opts, pipeline.tokens_dir))))
        done = run_script(("dash",), "--target", "vm", "--endpoint", endpoint)
    finally:
        server.close()
    assert done.returncode == 0, done.stderr[-500:]
    text = done.stdout.decode("ascii")            # every non-ASCII character is written as \\u escape
    assert SIGNED not in text and "c2VjcmV0" not in text and "dXNlcjpwYXNz" not in text
    shell = evidence.load(done.stdout)
    assert _summary(shell)[:2] == (_summary(python)[0], [])
    py = {r["request"]["url"]: r for r in python["http"]}
    sh = {r["request"]["url"]: r for r in shell["http"]}
    assert set(sh) >= set(py) and py
    for url, record in py.items():
        for name in ("status", "error", "headers", "body", "body_encoding", "body_bytes", "body_truncated"):
            assert sh[url][name] == record[name], (url, name)
        assert sh[url]["attempts"][0]["headers"] == record["attempts"][0]["headers"]
    assert {r["body_encoding"] for r in py.values()} == {"utf-8", "base64"}


# --- real kernel faults: iptables DROP and REJECT in front of the real IMDS address ----------------

IMDS = "169.254.169.254"


@pytest.mark.skipif(not IN_NETNS, reason="needs tests/isolated.sh's private network namespace (it owns 169.254.169.254)")
@pytest.mark.parametrize("verdict, tcp_code", [("DROP", "IMDS-NET-011"), ("REJECT", "IMDS-NET-012")])
def test_real_iptables_faults(verdict, tcp_code):
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed (Debian package iptables)")
    spec = ["OUTPUT", "-d", IMDS, "-p", "tcp", "--dport", "80", "-j", verdict]
    if verdict == "REJECT":
        spec += ["--reject-with", "tcp-reset"]
    env = {k: v for k, v in os.environ.items() if k != "IMDS_RUNBOOK_ENDPOINT" and not k.lower().endswith("_proxy")}
    with Emulator(mode="vm", scenario="vm-healthy", host=IMDS, port=80):
        subprocess.run(["iptables", "-I", *spec], check=True, capture_output=True, timeout=10)
        try:
            def python():
                opts = check_options(target="vm", env=env)
                host = LiveHost(env=env)
                pipeline = Pipeline(opts, host)
                pipeline.run_all()
                return evidence.load(evidence.dumps(host.bundle(parameters(opts, pipeline.tokens_dir))))

            with ThreadPoolExecutor(max_workers=2) as pool:
                py = pool.submit(python)
                sh = pool.submit(run_script, ("dash",), "--target", "vm", env=env)
                python_bundle, done = py.result(), sh.result()
        finally:
            subprocess.run(["iptables", "-D", *spec], capture_output=True, timeout=10)
    assert done.returncode == 0, done.stderr[-500:]
    checks, misses, _ = _summary(evidence.load(done.stdout))
    assert misses == []
    assert ("network.tcp", "fail", tcp_code) in checks
    assert ("network.firewall", "fail", "IMDS-NET-021") in checks or any(
        c[0] == "network.firewall" and c[2] == "IMDS-NET-021" for c in checks)
    assert checks == _summary(python_bundle)[0]


# --- --digest: the bundle reduced until it fits in Run Command's 4,096 bytes ------------------------

DIGEST_END = re.compile(r"^IMDS-DIGEST 1 END bytes=\d+ cksum=\d+ level=(\d)$", re.M)


def _digest_of(bundle_bytes: bytes, tmp_path: Path, name: str = "bundle.json") -> str:
    path = tmp_path / name
    path.write_bytes(bundle_bytes)
    done = run_script(("dash",), "--digest-of", str(path), timeout=60)
    assert done.returncode == 0 and done.stderr == b"", done.stderr[-500:]
    return done.stdout.decode("ascii")


def _check_digest(text: str, canary: str | None = None) -> tuple[dict, int]:
    """The digest's shape (<= 4,096 ASCII bytes, the level in its END line), no secret; its bundle."""
    assert len(text.encode("ascii")) <= digest.MAX_DIGEST_BYTES and text.endswith("\n")
    assert text.startswith(digest.BEGIN + "\n")
    assert all(len(line) <= digest.LINE_CHARS for line in text.splitlines())
    level = int(DIGEST_END.search(text).group(1))
    payload = gzip.decompress(base64.b64decode("".join(text.splitlines()[1:-1])))
    assert not SIGNED_JWT.search(payload.decode("utf-8")), "a token kept its signature"
    if canary:
        assert canary not in payload.decode("utf-8") and canary not in text
    return digest.decode(text), level


@pytest.mark.parametrize("case", MATRIX, ids=[case_id(c) for c in MATRIX])
def test_shell_digest_analyzes_like_the_shell_bundle(case, matrix_runs, tmp_path):
    """The digest of every row's shell bundle (the same awk engine --digest runs at the end of a
    collection) is complete, at level 0 or 1, and analyzes to the same verdict and checks."""
    run = matrix_runs[case_id(case)]
    decoded, level = _check_digest(_digest_of(run["stdout"], tmp_path), run["canary"])
    assert level in (0, 1)
    shell, _, verdict = _summary(evidence.load(run["stdout"]))
    digest_checks, misses, digest_verdict = _summary(decoded)
    assert (digest_checks, misses, digest_verdict) == (shell, [], verdict)


@pytest.mark.parametrize("shell_name", list(SHELLS))
def test_digest_end_to_end_in_every_shell(shell_name):
    """--digest on a live collection: what the script prints is the digest, nothing else, and it
    analyzes like the Python collector's bundle of the same scenario."""
    shell = _shell(shell_name)
    cases = [c for c in MATRIX if c.scenario in ("vm-healthy", "arc-healthy", "vm-oversized-body") and not c.args]

    def one(case):
        mode = SCENARIOS[case.scenario].mode
        with Emulator(mode=mode, scenario=case.scenario) as emu:
            args = ["--target", mode, "--endpoint", emu.base_url, "--digest"]
            if mode == "arc":
                args += ["--tokens-dir", str(emu.key_dir)]
            return case, _python_bundle(case), run_script(shell, *args), emu.canary

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        results = list(pool.map(one, cases))
    for case, python, done, canary in results:
        assert done.returncode == 0 and done.stderr == b"", (case.scenario, done.stderr[-500:])
        decoded, level = _check_digest(done.stdout.decode("ascii"), canary)
        assert level in (0, 1)
        checks, misses, _ = _summary(decoded)
        assert misses == [] and checks == _summary(python)[0], case.scenario


def test_digest_without_gzip_is_one_line_and_exit_2(tmp_path):
    """A host without gzip: --digest says so before anything is sent."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("curl", "od", "awk", "cksum", "sed", "tr", "cut", "mktemp", "rm", "chmod", "cat", "head"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    done = run_script((shutil.which("dash") or "dash",), "--endpoint", "http://127.0.0.1:9", "--digest",
                      env={"PATH": str(bin_dir), "TMPDIR": str(tmp_path)})
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2 and done.stdout == b"" and len(lines) == 1, lines
    assert "--digest: gzip is needed and was not found" in lines[0]


class HugeJson(ThreadedAcceptLoop):
    """Instance metadata answered with about 1 MB of JSON (thousands of keys, nested, non-ASCII,
    quotes), every answer with 90 long headers (http.client refuses more than 100): the digest still fits, at level 0 or 1 (the
    JSON is projected to the fields the checks read). Other paths answer {} (1 MB each would
    only make the run slower: the same code reads every body)."""

    def __init__(self) -> None:
        super().__init__()
        doc = {"compute": {"vmId": "6d0c9d2b-8c4d-4a43-9e1b-0c3a0a3e2f11", "name": "hostile",
                           "resourceId": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/hostile",
                           "vmSize": "Standard_D2s_v3", "osType": "Linux", "location": "westeurope",
                           "tagsList": [{"name": f"t{i}", "value": "\u00e9\"\\" * 10} for i in range(2000)]}}
        for i in range(6000):
            doc[f"key{i}"] = {"a": [i, "caf\u00e9 \"q\" \\ \u2028", True, None, 1.5e3], "b": "x" * 60}
        self.body = json.dumps(doc, ensure_ascii=False).encode()
        assert 900_000 < len(self.body) < 1_048_576

    def serve(self, conn) -> None:
        head = read_request_head(conn)
        if not head:
            return
        body = self.body if b" /metadata/instance?" in head.split(b"\r\n", 1)[0] else b"{}"
        headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 200) for i in range(90))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + headers +
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)


def test_digest_of_huge_json_answers_fits(tmp_path):
    server = HugeJson().start()
    try:
        endpoint = f"http://127.0.0.1:{server.port}"
        full = run_script(("dash",), "--target", "vm", "--endpoint", endpoint)
        opts = check_options(target="vm", endpoint=endpoint)
        host = LiveHost()
        pipeline = Pipeline(opts, host)
        pipeline.run_all()
        python = evidence.load(evidence.dumps(host.bundle(parameters(opts, pipeline.tokens_dir))))
    finally:
        server.close()
    assert full.returncode == 0 and full.stderr == b"", full.stderr[-500:]
    decoded, level = _check_digest(_digest_of(full.stdout, tmp_path))
    assert level in (0, 1)
    instance = [r for r in decoded["http"] if "/metadata/instance?" in r["request"]["url"]]
    assert instance and all(r["body_bytes"] == len(server.body) and len(r["body"]) < 1000 for r in instance)
    assert json.loads(instance[0]["body"])["compute"]["vmSize"] == "Standard_D2s_v3"
    assert _summary(decoded) == _summary(evidence.load(full.stdout)) == _summary(python)


def test_hostile_bundle_digest_always_fits_at_the_last_level(tmp_path):
    """A bundle as large and incompressible as the collector can write (512 records of each kind,
    random bodies, headers, command outputs, file texts, environment, long parameters): the
    last level fits, and the digest still validates and analyzes."""
    import random

    rng = random.Random(17)

    def noise(n: int) -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \"\\\u00e9\n\x01")
                       for _ in range(n))

    with Emulator(mode="vm", scenario="vm-healthy") as emu:
        base = json.loads(run_script(("dash",), "--target", "vm", "--endpoint", emu.base_url).stdout)
    http = base["http"][0]
    http["headers"] = [[noise(30), noise(200)] for _ in range(10)]
    http["body"], http["body_bytes"] = noise(4000), 4000
    http["attempts"] = [dict(http["attempts"][0], body_excerpt=noise(240)) for _ in range(4)]
    base["http"] = [http] * 512
    command = dict(base["commands"][0], stdout=noise(20_000), stderr=noise(5_000))
    base["commands"] = [command] * 32
    files = dict(op="read", path="/" + noise(100), limit=65536, text=noise(5_000), error=None, kind=None, paths=None)
    base["files"] = [files] * 64
    base["environment"] = {f"HTTP_PROXY_{i}": noise(500) for i in range(30)}
    base["host"]["hostname"] = noise(255)
    base["parameters"]["resources"] = [f"https://{rng.getrandbits(600):x}.example/" for _ in range(8)] + [
        f"https://{rng.getrandbits(400):x}.example/" for _ in range(8)]
    def msi_res_id(name_chars: int) -> str:
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(name_chars))
        return (f"/subscriptions/{uuid.UUID(int=rng.getrandbits(128))}/resourceGroups/rg-{name[:8]}/providers/"
                f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}")

    # too long for the last level (dropped there), then short enough (kept whole: analysis reads them back)
    base["parameters"]["identities"] = [["msi_res_id", msi_res_id(n)] for n in [100] * 8 + [12] * 8]
    base["parameters"]["tokens_dir"] = noise(300)
    data = json.dumps(base, separators=(",", ":")).encode("ascii")
    evidence.load(data)
    assert len(data) > 5_000_000
    started = time.monotonic()
    decoded, level = _check_digest(_digest_of(data, tmp_path))
    assert level == digest.LEVELS[-1] and time.monotonic() - started < 30
    assert all(decoded[kind] == [] for kind in evidence.RECORD_KINDS)
    _summary(decoded)           # it analyzes (everything "not collected")
    assert len(decoded["parameters"]["identities"]) == 4 and len(decoded["parameters"]["resources"]) == 4


def test_cut_digest_is_named_cut_by_analyze(matrix_runs, tmp_path):
    """Run Command keeps the last 4,096 bytes: noise before the digest is dropped and it is read
    whole; output after it pushes its start out, and analyze says cut (exit 2, one line)."""
    text = _digest_of(matrix_runs["vm-healthy"]["stdout"], tmp_path)
    whole = ("noise before the digest\n" * 200 + text)[-4096:]
    cut = (text + "more output after the digest\n" * 40)[-4096:]
    results = {}
    for name, content in (("whole", whole), ("cut", cut)):
        path = tmp_path / f"{name}.txt"
        path.write_text(content)
        results[name] = subprocess.run([os.sys.executable, "-m", "imds_helpers", "analyze", str(path)],
                                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert results["whole"].returncode in (0, 1) and results["whole"].stderr == "", results["whole"].stderr
    lines = results["cut"].stderr.strip().splitlines()
    assert results["cut"].returncode == 2 and len(lines) == 1, results["cut"].stderr
    assert "cut: the first part of the digest is missing" in lines[0]


def test_bad_digest_of_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "other.json").write_text('{"kind": "something else"}')
    for path, says in ((tmp_path / "missing.json", "--digest-of: cannot read"),
                       (tmp_path / "other.json", "--digest-of: not a bundle this script wrote")):
        done = run_script(("dash",), "--digest-of", str(path), env={**os.environ, "TMPDIR": str(tmp_path)})
        lines = done.stderr.decode().splitlines()
        assert done.returncode == 2 and done.stdout == b"" and len(lines) == 1 and says in lines[0], lines
