"""`make probe`: dist/imds-probe.pyz, the standard-library core as one file.

Built with the same code the Makefile runs (tools/build_probe.py) and run as issue 14 asks,
``python3 -S -I imds-probe.pyz ...``: no site-packages, no PYTHON* variables, so requests,
PyYAML and the Jupyter stack cannot be imported. The endpoint is always loopback (an emulator
here, or a closed port); ``-I`` ignores PYTHON* variables but not IMDS_RUNBOOK_ENDPOINT.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from imds_helpers.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
DEAD = "http://127.0.0.1:9"   # discard port: nothing listens there


def _builder():
    spec = importlib.util.spec_from_file_location("build_probe", ROOT / "tools" / "build_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return _builder().build_probe(tmp_path_factory.mktemp("probe") / "imds-probe.pyz")


def _run(probe: Path, *args: str, endpoint: str = DEAD, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-S", "-I", str(probe), *args], capture_output=True, text=True,
                          timeout=60, cwd=probe.parent,
                          env={"PATH": "/usr/bin:/bin", "IMDS_RUNBOOK_ENDPOINT": endpoint, **env})
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _check(probe: Path, endpoint: str, **env: str) -> tuple[int, dict]:
    proc = _run(probe, "check", "--json", "--target", "vm", "--timeout", "1", endpoint=endpoint, **env)
    return proc.returncode, json.loads(proc.stdout)


def test_third_party_packages_are_really_out_of_reach():
    # What makes the other tests mean something: this interpreter, run so, has no requests.
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", "import requests"], capture_output=True, timeout=60)
    assert proc.returncode == 1 and b"ModuleNotFoundError" in proc.stderr


def test_archive_holds_the_package_sources_and_a_main(probe):
    with zipfile.ZipFile(probe) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        main = archive.read("__main__.py").decode()
    assert {"__main__.py", "imds_helpers/cli/__init__.py", "imds_helpers/analyze/proxy.py", "imds_helpers/cli/check.py",
            "imds_helpers/emulator/server.py", "imds_helpers/parsers/iptables.py"} <= set(names)
    assert all(n.endswith(".py") and "__pycache__" not in n for n in names), names
    assert "SystemExit(code)" in main and probe.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_healthy_emulator_verdict_ok_exit_0(probe):
    with Emulator(mode="vm", scenario="vm-healthy") as emu:
        code, report = _check(probe, emu.base_url)
    assert report["verdict"] == "ok" and code == 0, report
    assert report["endpoint"] == emu.base_url
    assert {c["id"]: c["status"] for c in report["checks"]}["metadata.instance"] == "ok"


def test_closed_port_exit_1(probe):
    code, report = _check(probe, DEAD)
    assert code == 1 and report["verdict"] == "fail"
    assert any(c["code"] == "IMDS-NET-012" for c in report["checks"])   # connection refused


@pytest.mark.parametrize("variable,finding", [("HTTPS_PROXY", "IMDS-PROXY-001"),   # not for http://
                                              ("http_proxy", "IMDS-PROXY-002")])   # would be proxied
def test_proxy_variable_without_requests(probe, variable, finding):
    code, report = _check(probe, DEAD, **{variable: "http://127.0.0.1:9"})
    proxy = next(c for c in report["checks"] if c["id"] == "proxy.env")
    assert proxy["code"] == finding and code == 1, proxy
    assert proxy["evidence"]["variables"] == {variable: "http://127.0.0.1:9"}


def test_help_exit_0(probe):
    top = _run(probe, "--help")
    assert top.returncode == 0 and "check" in top.stdout and "emulator" in top.stdout
    sub = _run(probe, "check", "--help")
    assert sub.returncode == 0 and "--target" in sub.stdout


@pytest.mark.parametrize("args", [("bogus",), ("check", "--timeout", "soon"), ("check", "--target", "mars"), ()])
def test_bad_usage_one_line_exit_2(probe, args):
    proc = _run(probe, *args)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "error" in proc.stderr, proc.stderr


def test_command_outside_the_core_names_what_it_needs(probe, tmp_path):
    # The same line as an installed core without the extra (imds_helpers.cli.missing_extras).
    proc = _run(probe, "report", str(tmp_path))
    assert proc.returncode == 2 and re.fullmatch(
        r"imds-runbook report: needs the 'notebooks' extra: pip install 'imds-runbook\[notebooks\]' "
        r"\(missing: [\w, ]*pandas[\w, ]*\)\n", proc.stderr), proc.stderr


def test_collector_script_is_not_in_the_probe_and_says_so(probe):
    proc = _run(probe, "collector-script")
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "does not carry imds-collect.sh" in proc.stderr


def test_probe_digest_is_a_digest(probe, tmp_path):
    """collect --digest on a bare Python: the marker lines, and analyze reads it."""
    out = tmp_path / "d.txt"
    proc = _run(probe, "collect", "--digest", "--timeout", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("IMDS-DIGEST 1 BEGIN\n") and len(text.encode()) <= 4096
    assert _run(probe, "analyze", str(out)).returncode in (0, 1)


def test_make_probe_runs_this_builder():
    recipe = re.search(r"^probe:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe and "tools/build_probe.py dist/imds-probe.pyz" in recipe.group(1)
    assert "/dist/" in (ROOT / ".gitignore").read_text().split()
    assert "make probe" in (ROOT / "README.md").read_text()


def test_collect_then_analyze_on_a_bare_python(probe, tmp_path):
    """The support-bundle path on a machine with nothing installed: collect writes a bundle and
    exits 0 whatever it shows; analyze (here the probe too) judges it as check would."""
    with Emulator(mode="vm", scenario="vm-no-identity") as emu:
        collected = _run(probe, "collect", "--target", "vm", "--out", str(tmp_path / "web-01.json"),
                         endpoint=emu.base_url)
        checked_run = _run(probe, "check", "--json", "--target", "vm", "--save-evidence", str(tmp_path / "kept.json"),
                           endpoint=emu.base_url)
        canary = emu.canary
    code, checked = checked_run.returncode, json.loads(checked_run.stdout)
    assert collected.returncode == 0 and collected.stdout == "", collected.stderr
    assert "analyze it anywhere" in collected.stderr
    bundle_text = (tmp_path / "web-01.json").read_text()
    assert canary not in bundle_text and json.loads(bundle_text)["host"]["vmId"]
    analyzed = _run(probe, "analyze", "--json", str(tmp_path / "web-01.json"))
    report = json.loads(analyzed.stdout)
    assert analyzed.returncode == 1 and any(c["code"] == "IMDS-TOKEN-001" for c in report["checks"])  # no identity
    # check's own evidence, analyzed apart, gives check's report (all but the wall-clock total)
    kept = json.loads(_run(probe, "analyze", "--json", str(tmp_path / "kept.json")).stdout)
    assert code == 1 and kept["checks"] == checked["checks"] and kept["verdict"] == checked["verdict"]


def test_collect_to_stdout_exits_0_even_when_nothing_answers(probe):
    proc = _run(probe, "collect", "--target", "vm", "--timeout", "1", "--out", "-", HTTPS_PROXY="http://u:pw@10.0.0.1:3128")
    bundle = json.loads(proc.stdout)
    assert proc.returncode == 0 and bundle["tcp"][0]["attempts"][0]["error_kind"] == "connect_refused"
    assert bundle["environment"]["HTTPS_PROXY"] == "http://<credentials>@10.0.0.1:3128" and "pw@" not in proc.stdout
