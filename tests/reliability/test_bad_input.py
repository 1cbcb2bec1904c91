"""Bad input, across every entry point: exactly one line on stderr naming the problem, exit
code 2, no traceback, nothing written (the output folder is not created, the working folder
is left as it was).

One table of cases; each builds its inputs in a fresh working folder and gives the command
line. ``imds-runbook check / run / report`` run in-process through ``imds_helpers.cli.main``
(what the console script calls); ``imds-runbook emulator`` cases - which would serve forever
if accepted - and one case per command run as real subprocesses. Runbook parameters are
checked through ``imds_helpers.runbook.start``, the call a runbook's first cell makes.

Safety: every ``check`` case names a loopback endpoint that refuses at once, every ``run`` case
names a kernel that does not exist (an accepted file stops there, before anything is written
or started), and $IMDS_RUNBOOK_ENDPOINT points at loopback too.
"""

from __future__ import annotations

import io
import math
import os
import stat
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from imds_helpers import cli as cli_module
from imds_helpers import runbook
from imds_helpers.errors import UsageError
from imds_helpers.findings import CheckResult, Report, Status
from imds_helpers.sidecar import build_sidecar, write_sidecar

from .conftest import clean_env, cli

SAFE_ENDPOINT = "http://127.0.0.1:9"          # discard port on loopback: refused at once
NO_KERNEL = "imds-reliability-no-such-kernel"
GUID = "4a5b6c7d-1111-2222-3333-444455556666"
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], list[str]]      # creates inputs under the working folder, returns argv
    needle: str                             # the one stderr line must contain this (names the problem)
    subprocess: bool = False                # run as a real process (else in-process cli.main)
    skip_reason: str | None = None


def _check(*args: str) -> Callable[[Path], list[str]]:
    return lambda work: ["check", "--endpoint", SAFE_ENDPOINT, *args] if "--endpoint" not in args else ["check", *args]


def _emulator(*args: str) -> Callable[[Path], list[str]]:
    return lambda work: ["emulator", *args]


def _yaml(text: str | bytes, name: str = "web-01.yaml", *extra: str) -> Callable[[Path], list[str]]:
    def build(work: Path) -> list[str]:
        path = work / "params" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["run", str(path), "--out", str(work / "out"), "--kernel", NO_KERNEL, *extra]
    return build


def _run(build_files: Callable[[Path], list[str]], *args: str) -> Callable[[Path], list[str]]:
    def build(work: Path) -> list[str]:
        files = build_files(work)
        return ["run", *files, "--out", str(work / "out"), "--kernel", NO_KERNEL, *args]
    return build


def _two_files_same_host(work: Path) -> list[str]:
    folder = work / "params"
    folder.mkdir()
    (folder / "a.yaml").write_text("host: web-01\n")
    (folder / "b.yaml").write_text("host: WEB-01\n")
    return [str(folder / "a.yaml"), str(folder / "b.yaml")]


def _a_directory(work: Path) -> list[str]:
    (work / "params.yaml").mkdir()
    return [str(work / "params.yaml")]


def _no_permission(work: Path) -> list[str]:
    path = work / "secret.yaml"
    path.write_text("timeout_s: 5\n")
    path.chmod(0)
    return [str(path)]


def _good_file(work: Path) -> list[str]:
    path = work / "web-01.yaml"
    path.write_text("timeout_s: 5\n")
    return [str(path)]


def _unwritable_out(work: Path) -> list[str]:
    # As root every permission bit is ignored; a read-only file system still refuses.
    if ROOT:
        target = Path("/proc/sys/imds-reliability-out")
    else:
        locked = work / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        target = locked / "out"
    return ["run", *_good_file(work), "--out", str(target), "--kernel", NO_KERNEL]


def _out_under_a_file(work: Path) -> list[str]:
    (work / "plain.txt").write_text("x")
    return ["run", *_good_file(work), "--out", str(work / "plain.txt" / "out"), "--kernel", NO_KERNEL]


def _results(work: Path) -> Path:
    folder = work / "results"
    report = Report(target="vm", endpoint=SAFE_ENDPOINT,
                    checks=(CheckResult(id="network.tcp", code="IMDS-NET-010", status=Status.OK, title="t", detail="d"),))
    (folder / "web-01").mkdir(parents=True)
    write_sidecar(folder / "web-01" / "web-01.json", build_sidecar(
        report, host="web-01", notebook="01_azure_vm_imds", parameters={}, started_at="2026-11-26T08:00:00Z",
        duration_s=1.0))
    return folder


CASES: tuple[Case, ...] = (
    # --- imds-runbook check
    Case("check-timeout-zero", _check("--timeout", "0"), "--timeout: must be > 0"),
    Case("check-timeout-negative", _check("--timeout", "-5"), "--timeout: must be > 0"),
    Case("check-timeout-nan", _check("--timeout", "nan"), "--timeout: must be > 0"),
    Case("check-timeout-huge", _check("--timeout", "1e9"), "--timeout: must be > 0 and <= 300"),
    Case("check-timeout-not-a-number", _check("--timeout", "ten"), "--timeout: not a number"),
    Case("check-endpoint-with-path", _check("--endpoint", "http://127.0.0.1:9/metadata/instance"),
         "--endpoint: malformed URL"),
    Case("check-endpoint-bad-port", _check("--endpoint", "http://127.0.0.1:99999"), "--endpoint: malformed URL"),
    Case("check-endpoint-not-http", _check("--endpoint", "ftp://127.0.0.1"), "--endpoint: malformed URL"),
    Case("check-unknown-target", _check("--target", "windows"), "--target: must be one of auto, vm, arc"),
    Case("check-client-id-not-guid", _check("--client-id", "my-identity"), "--client-id: not a GUID"),
    Case("check-malformed-msi-res-id", _check("--msi-res-id", "/subscriptions/x/resourceGroups/rg"),
         "--msi-res-id: malformed resource id"),
    Case("check-conflicting-selectors", _check("--client-id", GUID, "--object-id", GUID.upper()),
         "as both client_id and object_id"),
    Case("check-scope-not-resource", _check("--resource", "https://management.azure.com/.default"),
         "--resource: 'https://management.azure.com/.default' is a scope"),
    Case("check-unknown-option", _check("--endpiont", SAFE_ENDPOINT), "unrecognized arguments", subprocess=True),
    # --- imds-runbook emulator (subprocesses: an accepted case would serve until killed)
    Case("emulator-non-loopback-host", _emulator("--host", "10.1.2.3"), "--host:", subprocess=True),
    Case("emulator-host-name", _emulator("--host", "example.com"), "--host: 'example.com' is not an IP address",
         subprocess=True),
    Case("emulator-port-out-of-range", _emulator("--port", "70000"), "--port: port out of range", subprocess=True),
    Case("emulator-scenario-of-other-mode", _emulator("--mode", "arc", "--scenario", "vm-healthy"),
         "--scenario: scenario 'vm-healthy' is for vm mode", subprocess=True),
    Case("emulator-unknown-scenario", _emulator("--scenario", "vm-healty"), "did you mean vm-healthy",
         subprocess=True),
    Case("emulator-unknown-param", _emulator("--param", "nonsense=1"), "--param: unknown scenario setting",
         subprocess=True),
    Case("emulator-short-canary", _emulator("--canary", "x"), "--canary: canary must be 8-128 characters",
         subprocess=True),
    Case("emulator-missing-key-dir", _emulator("--mode", "arc", "--key-dir", "/nonexistent/imds-keys"),
         "--key-dir: key directory", subprocess=True),
    # --- imds-runbook run: parameter files
    Case("run-unknown-key", _yaml("endpont: http://127.0.0.1:9\n"), "unknown parameter 'endpont'", subprocess=True),
    Case("run-wrong-type", _yaml("timeout_s: ten\n"), "timeout_s: must be a number, got str 'ten'"),
    Case("run-malformed-url", _yaml("endpoint: ftp//127.0.0.1\n"), "endpoint: malformed URL"),
    Case("run-malformed-msi-res-id", _yaml("msi_res_ids: [/subscriptions/x]\n"), "msi_res_ids: malformed resource id"),
    Case("run-conflicting-selectors", _yaml(f"client_ids: [{GUID}]\nobject_ids: [{GUID}]\n"),
         "as both client_id and object_id"),
    Case("run-timeout-zero", _yaml("timeout_s: 0\n"), "timeout_s: must be > 0"),
    Case("run-timeout-negative", _yaml("timeout_s: -3\n"), "timeout_s: must be > 0"),
    Case("run-timeout-nan", _yaml("timeout_s: .nan\n"), "timeout_s: must be > 0"),
    Case("run-timeout-huge", _yaml("timeout_s: 1.0e+12\n"), "timeout_s: must be > 0 and <= 300"),
    Case("run-invalid-yaml", _yaml("endpoint: [http://127.0.0.1:9\n"), "invalid YAML at line"),
    Case("run-not-utf8", _yaml(b"endpoint: \xff\xfe\n"), "cannot read parameter file"),
    Case("run-yaml-list", _yaml("- endpoint: http://127.0.0.1:9\n"), "expected a mapping of parameter names"),
    Case("run-yaml-scalar", _yaml("just words\n"), "expected a mapping of parameter names"),
    Case("run-emulator-scenario-of-other-runbook", _yaml("emulator_scenario: arc-healthy\n"),
         "emulator_scenario: scenario 'arc-healthy' is for the arc runbook"),
    Case("run-target-conflicts-with-notebook", _yaml("target: arc\n", "web-01.yaml", "--notebook", "vm"),
         "target is 'arc' but --notebook is 'vm'"),
    Case("run-sidecar-path-in-file", _yaml("sidecar_path: /tmp/x.json\n"), "is set by the runner"),
    Case("run-param-file-is-a-directory", _run(_a_directory), "parameter file is not a regular file"),
    Case("run-param-file-missing", lambda work: ["run", str(work / "nope.yaml"), "--out", str(work / "out"),
                                                 "--kernel", NO_KERNEL], "parameter file not found"),
    Case("run-param-file-unreadable", _run(_no_permission), "Permission denied",
         skip_reason="root reads any file: permission bits cannot make it unreadable" if ROOT else None),
    Case("run-duplicate-hosts", _run(_two_files_same_host), "appears twice"),
    Case("run-unwritable-out", _unwritable_out, "--out:"),
    Case("run-out-under-a-file", _out_under_a_file, "--out:"),
    Case("run-workers-zero", _run(_good_file, "--workers", "0"), "--workers: must be a whole number"),
    Case("run-cell-timeout-nan", _run(_good_file, "--cell-timeout", "nan"), "--cell-timeout: must be more than 0"),
    Case("run-host-timeout-negative", _run(_good_file, "--timeout", "-1"), "--timeout: must be more than 0"),
    # --- imds-runbook report
    Case("report-no-folder", lambda work: ["report"], "the following arguments are required: DIR"),
    Case("report-folder-is-a-file", lambda work: ["report", str(_results(work) / "web-01" / "web-01.json")],
         "not a folder"),
    Case("report-output-under-a-file", lambda work: ["report", str(_results(work)), "--output",
                                                     str(work / "results" / "web-01" / "web-01.json" / "x.csv")],
         "is not a folder"),   # its parent is a file
    Case("report-unknown-format", lambda work: ["report", str(_results(work)), "--format", "pdf"], "invalid choice",
         subprocess=True),
)


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for path in sorted(folder.rglob("*")):
        try:
            st = path.lstat()
        except OSError:
            continue
        found[str(path.relative_to(folder))] = (st.st_mode, 0 if path.is_dir() else st.st_size)
    return found


def _in_process(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli_module.main(argv)
        except SystemExit as exc:       # argparse's own errors
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(case, tmp_path, monkeypatch, reliability_counts):
    if case.skip_reason:
        pytest.skip(case.skip_reason)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("IMDS_RUNBOOK_ENDPOINT", SAFE_ENDPOINT)
    argv = case.build(work)
    before = _tree(work)
    if case.subprocess:
        done = cli(argv, env=clean_env({"IMDS_RUNBOOK_ENDPOINT": SAFE_ENDPOINT}), cwd=work, timeout=30)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        code, stdout, stderr = _in_process(argv)
    lines = stderr.strip().splitlines()
    assert code == 2, (code, stderr, stdout[:300])
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert case.needle in lines[0], lines[0]
    assert lines[0].startswith("imds-runbook"), lines[0]
    assert stdout == ""
    assert _tree(work) == before, "bad input wrote something"
    assert not (work / "out").exists() and not (work / "reports").exists()
    reliability_counts.add("bad_inputs")


# --- runbook parameters, as a runbook's first cell validates them ---------------------------

RUNBOOK_CASES = [
    ("vm", {"endpont": ""}, "parameters: unknown parameter 'endpont' (did you mean 'endpoint'?)"),
    ("arc", {"client_ids": [GUID]}, "parameters: unknown parameter 'client_ids'"),
    ("vm", {"timeout_s": "10"}, "timeout_s: must be a number"),
    ("vm", {"timeout_s": math.nan}, "timeout_s: must be > 0"),
    ("vm", {"timeout_s": -1}, "timeout_s: must be > 0"),
    ("vm", {"timeout_s": 10**9}, "timeout_s: must be > 0 and <= 300"),
    ("vm", {"timeout_s": True}, "timeout_s: must be a number"),
    ("vm", {"resources": "https://management.azure.com/"}, "resources: must be a list"),
    ("vm", {"resources": ["management"]}, "resources: not a resource URI"),
    ("vm", {"endpoint": "http://169.254.169.254/metadata"}, "endpoint: malformed URL"),
    ("vm", {"msi_res_ids": ["/subscriptions/x"]}, "msi_res_ids: malformed resource id"),
    ("vm", {"client_ids": [GUID, GUID]}, "client_ids: identity"),
    ("vm", {"emulator_scenario": "vm-healty"}, "emulator_scenario: unknown scenario 'vm-healty'"),
    ("arc", {"emulator_scenario": "vm-healthy"}, "emulator_scenario: scenario 'vm-healthy' is for the vm runbook"),
    ("vm", {"proxy_comparison": "yes"}, "proxy_comparison: must be true/false"),
    ("vm", {"target": "windows"}, "target: must be vm or arc"),
]


@pytest.mark.parametrize("kind,params,needle", RUNBOOK_CASES, ids=[f"{k}-{n.split(':')[0]}-{i}"
                                                                 for i, (k, _, n) in enumerate(RUNBOOK_CASES)])
def test_runbook_parameters_stop_with_one_line(kind, params, needle, tmp_path, monkeypatch, reliability_counts):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as caught:
        runbook.start(kind, params)
    message = str(caught.value)
    assert "\n" not in message and needle in message, message
    assert caught.value._render_traceback_() == [f"UsageError: {message}"]   # what the notebook shows
    assert list(tmp_path.iterdir()) == [], "a bad parameter wrote something"
    reliability_counts.add("bad_inputs")


def test_empty_parameter_file_means_defaults(tmp_path):
    """Not bad input: an empty (or comments-only) file is a host with the runbook's defaults."""
    from imds_helpers.runner import plan_hosts

    for text in ("", "# nothing here\n"):
        path = tmp_path / "web-02.yaml"
        path.write_text(text)
        plans = plan_hosts([path], notebook="vm", out_dir=tmp_path / "out")
        assert [p.host for p in plans] == ["web-02"] and not (tmp_path / "out").exists()
