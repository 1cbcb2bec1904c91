"""Bad input, across every entry point: exactly one line on stderr naming the problem, exit
code 2, no traceback, nothing written (the output folder is not created, the working folder
is left as it was).

One table of cases; each builds its inputs in a fresh working folder and gives the command
line. ``imds-runbook check / run / report`` run in-process through ``imds_helpers.cli.main``
(what the console script calls); ``imds-runbook emulator`` cases - which would serve forever
if accepted - and one case per command run as real subprocesses. Runbook parameters are
checked through ``imds_helpers.runbooks.runbook.start``, the call a runbook's first cell makes.

Safety: every ``check`` case names a loopback endpoint that refuses at once, every ``run`` case
names a kernel that does not exist (an accepted file stops there, before anything is written
or started), and $IMDS_RUNBOOK_ENDPOINT points at loopback too.

Hostile parameter files (a "billion laughs", a 1 MiB list) are also run in a child process
with its address space capped, asserting the refusal's wall time and peak memory; and a
password typed into a URL (always ``s3cret`` here) never appears in any message.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
import subprocess
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from imds_helpers import cli as cli_module
from imds_helpers.runbooks import runbook
from imds_helpers.model.errors import UsageError
from imds_helpers.model.findings import CheckResult, Report, Status
from imds_helpers.fleet.sidecar import build_sidecar, write_sidecar

from .conftest import clean_env, cli

SAFE_ENDPOINT = "http://127.0.0.1:9"          # discard port on loopback: refused at once
PASSWORD = "s3cret"                           # typed into URLs; must never be shown
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
    env: tuple[tuple[str, str], ...] = ()   # environment for this case (after the safe defaults)


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


HOSTILE_RUNBOOKS = {
    "deeply-nested": ("[" * 300_000, "JSON nested too deeply"),
    "not-json": ("{cells", "cannot read runbook"),
    "a-list": ("[1, 2]", "not a notebook (no list of cells)"),
    "cells-not-a-list": ('{"cells": "x"}', "not a notebook (no list of cells)"),
}


def _hostile_runbook(text: str) -> Callable[[Path], list[str]]:
    def build(work: Path) -> list[str]:
        runbooks = work / "runbooks"
        runbooks.mkdir(exist_ok=True)
        (runbooks / "01_azure_vm_imds.ipynb").write_text(text, encoding="utf-8")
        return [*_yaml("target: vm\n")(work), "--notebooks-dir", str(runbooks)]
    return build


def _billion_laughs() -> str:
    """Ten levels of nine aliases each: 10**9 "lol"s once expanded, 1 KB on disk."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [{', '.join(f'*{previous}' for _ in range(9))}]")
    return "\n".join(lines) + "\n"


# What no parameter file needs; each is refused before it can cost time or memory.
HOSTILE_YAML = {
    "billion-laughs": (_billion_laughs(), "alias *a: aliases are not allowed"),
    "deep-nesting": ("resources: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper than"),
    "many-values": ("resources: [" + "1," * 400_000 + "]\n", "more than 10000 values"),
    "over-1-MiB": ("# padding\n" * 120_000, "larger than 1024 KiB"),
    "5000-digit-integer": ("timeout_s: " + "9" * 5000 + "\n", "number of 5000 characters"),
    "huge-binary-integer": ("timeout_s: 0b" + "1" * 20_000 + "\n", "number of 20002 characters"),
}


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
    # malformed values: urlsplit itself raises on an unclosed IPv6 bracket; Python refuses to
    # convert a 5,000-digit number; a password in a URL is never echoed
    Case("check-endpoint-unclosed-ipv6", _check("--endpoint", "http://[::1"),
         "--endpoint: malformed URL 'http://[::1'", subprocess=True),
    Case("check-endpoint-bad-ipv6", _check("--endpoint", "http://[not-an-address]:80"), "--endpoint: malformed URL"),
    Case("check-resource-unclosed-ipv6", _check("--resource", "http://[::1"),
         "--resource: not a resource URI: 'http://[::1'"),
    Case("check-resource-bad-port", _check("--resource", "https://management.azure.com:x/"),
         "--resource: not a resource URI"),
    Case("check-timeout-5000-digits", _check("--timeout", "9" * 5000), "--timeout: must be > 0 and <= 300"),
    Case("check-timeout-1e400", _check("--timeout", "1e400"), "--timeout: must be > 0 and <= 300"),
    Case("check-endpoint-with-password", _check("--endpoint", f"http://user:{PASSWORD}@127.0.0.1:9/x"),
         "--endpoint: malformed URL 'http://<credentials>@127.0.0.1:9/x': no user name or password",
         subprocess=True),
    Case("check-endpoint-password-with-slash", _check("--endpoint", f"http://user:{PASSWORD}/x@127.0.0.1:9"),
         "--endpoint: malformed URL 'http://<credentials>@127.0.0.1:9'"),
    Case("check-resource-with-password", _check("--resource", f"https://user:{PASSWORD}@management.azure.com/"),
         "--resource: not a resource URI: 'https://<credentials>@management.azure.com/'"),
    Case("check-password-in-unknown-argument", lambda work: ["check", f"http://user:{PASSWORD}@127.0.0.1:9"],
         "unrecognized arguments: http://<credentials>@127.0.0.1:9", subprocess=True),
    Case("check-env-override-unclosed-ipv6", lambda work: ["check"],
         "IMDS_RUNBOOK_ENDPOINT: malformed URL 'http://[::1'", subprocess=True,
         env=(("IMDS_RUNBOOK_ENDPOINT", "http://[::1"),)),
    Case("check-env-override-with-password", lambda work: ["check"],
         "IMDS_RUNBOOK_ENDPOINT: malformed URL 'http://<credentials>@127.0.0.1:9'",
         env=(("IMDS_RUNBOOK_ENDPOINT", f"http://user:{PASSWORD}@127.0.0.1:9"),)),
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
    *(Case(f"run-yaml-{name}", _yaml(text), needle, subprocess=name == "billion-laughs")
      for name, (text, needle) in HOSTILE_YAML.items()),
    Case("run-yaml-duplicate-key", _yaml(f"endpoint: {SAFE_ENDPOINT}\ntimeout_s: 5\nendpoint: http://127.0.0.1:8\n"),
         "invalid YAML at line 3: duplicate key 'endpoint'", subprocess=True),
    Case("run-yaml-duplicate-environment-key", _yaml("environment:\n  NO_PROXY: a\n  NO_PROXY: b\n"),
         "duplicate key 'NO_PROXY'"),
    Case("run-yaml-impossible-date", _yaml("timeout_s: 2024-13-01\n"), "invalid YAML value: ValueError: month"),
    Case("run-yaml-timeout-1e400", _yaml("timeout_s: 1.0e+400\n"), "timeout_s: must be > 0 and <= 300 seconds, got inf"),
    Case("run-yaml-endpoint-unclosed-ipv6", _yaml("endpoint: 'http://[::1'\n"), "endpoint: malformed URL 'http://[::1'"),
    Case("run-yaml-resource-unclosed-ipv6", _yaml("resources: ['http://[::1']\n"), "resources: not a resource URI"),
    Case("run-yaml-endpoint-with-password", _yaml(f"endpoint: 'http://user:{PASSWORD}@127.0.0.1:9'\n"),
         "endpoint: malformed URL 'http://<credentials>@127.0.0.1:9'"),
    Case("run-yaml-nul-in-text", _yaml('tokens_dir: "/var/opt/\\0x"\ntarget: arc\n'), "tokens_dir: must be at most"),
    # environment: only the variables the diagnosis reads; anything else could run code
    *(Case(f"run-environment-{name}", _yaml(f"environment:\n  {name}: /tmp/x\n"),
           f"environment variable '{name}' is not accepted", subprocess=name == "PYTHONPATH")
      for name in ("PYTHONPATH", "PYTHONSTARTUP", "LD_PRELOAD", "PATH", "BASH_ENV", "Http_Proxy")),
    Case("run-environment-nul", _yaml('environment:\n  NO_PROXY: "a\\0b"\n'),
         "environment variable NO_PROXY: must be at most 4096 characters without NUL"),
    Case("run-environment-not-text", _yaml("environment:\n  NO_PROXY: [a, b]\n"),
         "environment variable NO_PROXY: must be a string"),
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
    Case("run-workers-5000-digits", _run(_good_file, "--workers", "9" * 5000), "--workers: invalid int value",
         subprocess=True),
    # --notebooks-dir names a folder whose runbooks are read before anything runs
    *(Case(f"run-runbook-{name}", _hostile_runbook(text), needle) for name, (text, needle) in HOSTILE_RUNBOOKS.items()),
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
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    argv = case.build(work)
    before = _tree(work)
    if case.subprocess:
        done = cli(argv, env=clean_env({"IMDS_RUNBOOK_ENDPOINT": SAFE_ENDPOINT, **dict(case.env)}), cwd=work,
                   timeout=30)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        code, stdout, stderr = _in_process(argv)
    lines = stderr.strip().splitlines()
    assert code == 2, (code, stderr[:2000], stdout[:300])
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[:2000]
    assert case.needle in lines[0], lines[0][:2000]
    assert len(lines[0]) <= 1100 and lines[0].isprintable(), "a usage error is one short printable line"
    assert PASSWORD not in stderr, "a password from a URL was echoed"
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
    # malformed values as plain papermill passes them (no YAML in between)
    ("vm", {"endpoint": "http://[::1"}, "endpoint: malformed URL 'http://[::1'"),
    ("vm", {"endpoint": f"http://user:{PASSWORD}@127.0.0.1:9"}, "endpoint: malformed URL 'http://<credentials>@"),
    ("vm", {"resources": ["http://[::1"]}, "resources: not a resource URI"),
    ("vm", {"resources": [f"https://u:{PASSWORD}@management.azure.com/"]}, "resources: not a resource URI"),
    ("vm", {"timeout_s": 10**5000}, "timeout_s: must be > 0 and <= 300 seconds, got a 5001-digit number"),
    ("vm", {"timeout_s": -(10**5000)}, "timeout_s: must be > 0"),
    ("vm", {"timeout_s": math.inf}, "timeout_s: must be > 0 and <= 300 seconds, got inf"),
    ("vm", {"endpoint": 10**5000}, "endpoint: must be a string, got int a 5001-digit number"),
    ("vm", {"client_ids": ["x" * 1_000_000]}, "client_ids: must be at most 4096 characters"),
    ("vm", {"resources": ["https://management.azure.com/"] * 1000}, "resources: at most 100 entries"),
    ("arc", {"tokens_dir": "/var/opt/azcmagent/tokens\x00"}, "tokens_dir: must be at most 4096 characters without NUL"),
    ("vm", {"target": "vm\n\x1b[2J"}, "target: must be vm or arc, got 'vm\\n\\x1b[2J'"),
]


@pytest.mark.parametrize("kind,params,needle", RUNBOOK_CASES, ids=[f"{k}-{n.split(':')[0]}-{i}"
                                                                 for i, (k, _, n) in enumerate(RUNBOOK_CASES)])
def test_runbook_parameters_stop_with_one_line(kind, params, needle, tmp_path, monkeypatch, reliability_counts):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as caught:
        runbook.start(kind, params)
    message = str(caught.value)
    assert "\n" not in message and needle in message, message[:2000]
    assert len(message) <= 1100 and message.isprintable() and PASSWORD not in message, message[:2000]
    assert caught.value._render_traceback_() == [f"UsageError: {message}"]   # what the notebook shows
    assert list(tmp_path.iterdir()) == [], "a bad parameter wrote something"
    reliability_counts.add("bad_inputs")


def test_empty_parameter_file_means_defaults(tmp_path):
    """Not bad input: an empty (or comments-only) file is a host with the runbook's defaults."""
    from imds_helpers.fleet.runner import plan_hosts
    from imds_helpers.fleet.sidecar import local_host_name

    here = local_host_name()       # a file naming another machine needs its evidence (test_runbook_evidence)
    for text in ("", "# nothing here\n"):
        path = tmp_path / f"{here}.yaml"
        path.write_text(text)
        plans = plan_hosts([path], notebook="vm", out_dir=tmp_path / "out")
        assert [p.host for p in plans] == [here] and not (tmp_path / "out").exists()


# --- hostile parameter files: refused fast, in bounded memory --------------------------------

_BOUNDED_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))   # a bomb dies here, not the machine
    from imds_helpers import cli
    started = time.monotonic()
    code = cli.main(sys.argv[1:])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:   # Linux carries ru_maxrss over fork and exec (a big pytest makes a big child): VmHWM is this process's
        with open("/proc/self/status") as status:
            peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        pass
    print(json.dumps({"seconds": time.monotonic() - started, "max_rss_kb": peak}))
    sys.exit(code)
""")


@pytest.mark.parametrize("name", sorted(HOSTILE_YAML))
def test_hostile_parameter_file_is_refused_fast_in_bounded_memory(name, tmp_path):
    """Before: the billion laughs ran past 60 s and 4.9 GB; a 1 MiB flow list took 14 s; a
    5,000-digit integer was a ValueError traceback. Now each is refused within a second (the
    interpreter's start not counted), the child's address space capped at 1 GiB."""
    text, needle = HOSTILE_YAML[name]
    path = tmp_path / "web-01.yaml"
    path.write_text(text)
    argv = ["run", str(path), "--out", str(tmp_path / "out"), "--kernel", NO_KERNEL]
    done = subprocess.run([sys.executable, "-c", _BOUNDED_CHILD, *argv], capture_output=True, text=True,
                          env=clean_env({"IMDS_RUNBOOK_ENDPOINT": SAFE_ENDPOINT}), cwd=tmp_path, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert needle in lines[0], lines[0]
    spent = json.loads(done.stdout)
    assert spent["seconds"] < 1.0, spent
    assert spent["max_rss_kb"] < 400 * 1024, spent
    assert not (tmp_path / "out").exists()


# --- a proxy variable that does not parse is a finding, not a crash --------------------------

@pytest.mark.parametrize("proxy", [
    "http://[::1",                                   # urlsplit raises ValueError
    f"http://user:{PASSWORD}@127.0.0.1:99999",       # port out of range
    f"http://user:{PASSWORD}@[::1",
    f"http://user:{PASSWORD}/x@127.0.0.1:3128",      # a "/" in the password
])
@pytest.mark.parametrize("output", ["listing", "json"])
def test_unparsable_proxy_variable_is_a_finding(proxy, output, tmp_path):
    """``check`` names the variable (IMDS-PROXY-008) and goes on; the opt-in comparison sends
    nothing through it; the password is shown nowhere. Loopback only: the endpoint is a closed
    port and no request goes through the proxy."""
    env = clean_env({"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "http_proxy": proxy})
    argv = ["check", "--endpoint", SAFE_ENDPOINT, "--target", "vm", "--proxy-comparison"]
    done = cli(argv + (["--json"] if output == "json" else []), env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 1 and done.stderr == "", done.stderr[-2000:]
    assert PASSWORD not in done.stdout
    if output == "json":
        checks = {c["id"]: c for c in json.loads(done.stdout)["checks"]}
        assert checks["proxy.env"]["code"] == "IMDS-PROXY-008", checks["proxy.env"]
        assert set(checks["proxy.env"]["evidence"]["invalid"]) == {"HTTPS_PROXY", "HTTP_PROXY", "http_proxy"}
        assert checks["proxy.comparison"]["code"] == "IMDS-PROXY-008"
        assert checks["proxy.comparison"]["status"] == "skip" and not checks["proxy.comparison"]["attempts"]
    else:
        assert "IMDS-PROXY-008 proxy.env" in done.stdout and "Verdict:" in done.stdout, done.stdout


def test_unparsable_endpoint_variables_are_findings_without_passwords(tmp_path):
    """IMDS_ENDPOINT / IDENTITY_ENDPOINT that do not parse: platform detection falls back to
    HIMDS's fixed address and says why; the Arc environment check names them; no password."""
    from imds_helpers.analyze.arc import check_arc_environment
    from imds_helpers.collect import LiveHost
    from imds_helpers.collect.hostcmd import CommandOutput
    from imds_helpers.analyze.platform import detect_platform

    def not_installed(argv, timeout):
        return CommandOutput(tuple(argv), None, error="not_found")

    env = {"IMDS_ENDPOINT": f"http://user:{PASSWORD}@[::1", "IDENTITY_ENDPOINT": "http://[::1/x",
           "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"https://u:{PASSWORD}@[::1"}
    host = LiveHost(env=env, root=str(tmp_path), run=not_installed, os_name="linux")
    result = detect_platform("arc", None, host=host)
    assert result.endpoint == "http://localhost:40342" and "is not a URL" in result.reason
    arc = check_arc_environment(host.env, host=host, dropin_path="/none", himds_binary="/none")
    assert arc.code == "IMDS-ARC-052", arc
    shown = json.dumps([result.to_dict(), arc.to_dict()])
    assert PASSWORD not in shown and "<credentials>" in shown


# --- environment: exactly the variables the checks read ----------------------------------

# Read somewhere in the package, yet no diagnosis input: Windows install paths and the user
# name (where to look for files), urllib's CGI guard, and the runner's own worker setting.
_NOT_DIAGNOSIS = {"ProgramFiles", "PROGRAMFILES", "programdata", "USERNAME", "REQUEST_METHOD",
                  "PYDEVD_DISABLE_FILE_VALIDATION"}
_ENV_READ = re.compile(r"""(?:env|environ|view)(?:\.get\(|\[)\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
                       r"""|["']([A-Za-z_][A-Za-z0-9_]*)["']\s+in\s+env\b""")
# Reads through imds_helpers.model.endpoints' names (env.get(IMDS_ENDPOINT_ENV), env[OVERRIDE_ENV]).
_ENV_READ_BY_NAME = re.compile(r"""(?:env|environ|view)(?:\.get\(|\[)\s*([A-Z][A-Z0-9_]*_ENV)\b""")


def _env_reads(text: str) -> set[str]:
    from imds_helpers.model import endpoints

    literal = {name for match in _ENV_READ.finditer(text) for name in match.groups() if name}
    return literal | {getattr(endpoints, m.group(1)) for m in _ENV_READ_BY_NAME.finditer(text)
                      if isinstance(getattr(endpoints, m.group(1), None), str)}


def test_environment_allow_list_covers_every_variable_the_checks_read():
    """A variable a check starts reading must be settable from a parameter file (or be listed
    above as no diagnosis input); the allow-list is derived, this catches a literal read."""
    from imds_helpers.fleet.runner import kernel_environment

    package = Path(__file__).resolve().parents[2] / "imds_helpers"
    read = {name for path in package.rglob("*.py") if "emulator" not in path.parts
            for name in _env_reads(path.read_text(encoding="utf-8"))}
    assert {"IMDS_ENDPOINT", "no_proxy", "container"} <= read, read     # the scan sees reads
    assert read - _NOT_DIAGNOSIS <= set(kernel_environment()), read - set(kernel_environment())


def test_environment_allow_list_is_the_readme_list():
    from imds_helpers.fleet.runner import kernel_environment

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    paragraph = readme.split("only the variables the checks read are accepted", 1)[1].split(
        "(`imds_helpers.fleet.runner.kernel_environment`)", 1)[0]
    assert re.findall(r"`([^`]+)`", paragraph) == list(kernel_environment())


def test_environment_with_allowed_variables_reaches_the_kernel(tmp_path):
    """Not bad input: every allowed variable, proxies in both spellings, a malformed proxy
    value too (reproducing it is the point: the check reports it as IMDS-PROXY-008)."""
    from imds_helpers.fleet.runner import kernel_environment, plan_hosts
    from imds_helpers.fleet.sidecar import local_host_name

    values = {name: f"value-{i}" for i, name in enumerate(kernel_environment())}
    values["HTTPS_PROXY"] = "http://[::1"
    path = tmp_path / f"{local_host_name()}.yaml"
    path.write_text("environment:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in values.items()))
    [plan] = plan_hosts([path], notebook="vm", out_dir=tmp_path / "out")
    assert dict(plan.environment) == values and "environment" not in plan.parameters
    assert {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
            "NO_PROXY", "IDENTITY_ENDPOINT", "IMDS_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT",
            "MSI_SECRET"} <= set(plan.environment)
