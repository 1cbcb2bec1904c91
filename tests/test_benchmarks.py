"""The benchmarks' quick modes still run: a benchmark is a script nobody runs until the day it
is needed, and an API it uses may have moved since. Speed is not judged here (the numbers of a
40-bundle run mean nothing); the scripts themselves stop with a non-zero exit when an answer is
wrong (a verdict count, a non-OK healthy host, the emulator's canary in a bundle)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"[\d,.]+"


def _bench(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return proc.stdout


def test_bench_analyze_quick_mode():
    out = _bench("bench_analyze.py", "--count", "40", "--repeat", "1")
    assert re.search(r"collected 5 bundles from emulators .*vm-healthy ok .*arc-wrong-secret fail", out), out
    assert "wrote 40 bundles" in out, out
    for label in ("analyze (parsed bundles)", "read + check + analyze", "render --json",
                  "imds-runbook analyze PART... --json (CLI)"):
        row = re.search(re.escape(label) + rf"\s+10\s+{NUMBER}\s+{NUMBER}\s+{NUMBER} ms\s+1\.00\n", out)
        assert row, f"no N/4 row for {label!r}:\n{out}"
    # N/4, N/2, N for each of the four ways, and a verdict line for each
    assert len(re.findall(rf"^\s+40\s+{NUMBER}\s+{NUMBER}\s+{NUMBER} ms\s+{NUMBER}$", out, re.M)) == 4, out
    assert len(re.findall(r"linear \(within 25%\): (?:yes|NO); 10,000 bundles: [\d.]+ s \(scaled\), "
                          r"target <= 10 s (?:met|MISSED)", out)) == 4, out


def test_bench_collect_quick_mode():
    out = _bench("bench_collect.py", "--runs", "2")
    assert re.search(r"bundle of a healthy VM: [\d.]+ KB", out), out
    assert re.search(r'python3 -c "import json, http.client"\s+\d+ms\s+\d+ms\n', out), out
    for label in ("imds-runbook collect --out F", "imds-runbook analyze F", "collect --out F && analyze F",
                  "check --json (collect + analyze, 1 process)"):
        assert re.search(re.escape(label) + r".*\s\d+ms\s+\d+ms\s+[\d.]+x \([\d.]+-[\d.]+\)\s+[\d.]+x", out), \
            f"no row for {label!r}:\n{out}"
    assert len(re.findall(r"target <= 1\.3x (?:met|MISSED)", out)) == 2, out
    # The work floor (the same commands and requests in plain standard library) is timed, and
    # collect and check are put against it too
    assert re.search(r"work floor \(3 commands, connect, 5 GETs\)\s+\d+ms\s+\d+ms\s+[\d.]+x", out), out
    against = out.split("against the work floor", 1)[-1]
    for label in ("imds-runbook collect --out F", "collect --out F && analyze F (2 processes)",
                  "check --json (collect + analyze, 1 process)"):
        assert re.search(re.escape(label) + r"\s+[\d.]+x \([\d.]+-[\d.]+\)\s+[\d.]+x\s+[+-]\d+ ms", against), \
            f"no work-floor row for {label!r}:\n{out}"


def test_bench_runbook_one_round():
    """Every placement runs, the evidence one included (rendered from a bundle collected
    before the timed runs), with its ratio to the cells-only notebook and its target line."""
    pytest.importorskip("papermill")
    out = _bench("bench_runbook.py", "--reps", "1")
    assert re.search(r"runbook verdicts: IMDS (?:ok|warn), training ok, evidence ok", out), out
    assert re.search(r"^\s+trivial\s+IMDS\s+training\s+cells only\s+evidence$", out, re.M), out
    assert re.search(r"^x cells only(?:\s+[\d.]+){5}$", out, re.M), out
    assert re.search(r"runbook rendered from evidence / the same notebook with pass cells: [\d.]+x "
                     r"\(quartiles [\d.]+-[\d.]+; target <= 1\.1x: (?:met|MISSED)\)", out), out
    assert re.search(r"runbook / trivial, IMDS in its own process: [\d.]+x \(target <= 1\.3x: (?:met|MISSED)\)",
                     out), out


def test_bench_runner_real_vm_runs():
    """--real-vm's host files are emulated VMs (emulator_scenario), which run accepts; every
    host gets its 5 HTTP answers from its own emulator (the script stops otherwise)."""
    pytest.importorskip("papermill")
    out = _bench("bench_runner.py", "--real-vm", "--hosts", "2", "--rounds", "1")
    assert re.search(r"real VM runbook, emulated VMs \(vm-healthy, .*\): warm-up host ok in [\d.]+ s", out), out
    assert re.search(r"^429s\s+0\s+0$", out, re.M), out
    assert re.search(r"workers=2 vs 1: [\d.]+x \(target >= 1\.6x: (?:met|MISSED)\)", out), out


def _fleet_rig_unavailable() -> str | None:
    """Why the fleet rig cannot run here (None: it can), from tests/fleet/rig.py itself."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_fleet_rig_check", ROOT / "tests" / "fleet" / "rig.py")
    rig = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = rig            # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(rig)
    finally:
        sys.modules.pop(spec.name, None)
    return rig.unavailable(["vm-healthy"], ansible=True) or (
        None if rig.ansible_bin("ansible") else "needs the ansible command (ansible-core)")


def test_bench_fleet_quick_mode():
    """Two namespace VMs, one round: every row of both parts is printed with its numbers and
    verdict (the script itself stops when a host is not pinged, a bundle does not come back or
    carries its emulator's canary, or a report is not rendered)."""
    pytest.importorskip("papermill")
    reason = _fleet_rig_unavailable()
    if reason:
        pytest.skip(f"fleet rig: {reason}")
    out = _bench("bench_fleet.py", "--vms", "2", "--rounds", "1")
    assert re.search(r"fleet rig: 2 healthy namespace VMs \(vm-healthy\) up in [\d.]+ s", out), out
    seconds = r"\s+[\d.]+s\s+[\d.]+-[\d.]+\s+"
    ratio = r"[\d.]+x \([\d.]+-[\d.]+\)"
    assert re.search(r"ansible all -m ping" + seconds + r"1\.00x\n", out), out
    assert re.search(r"collect\.yml as imds-runbook fleet runs it" + seconds + ratio + r"\n", out), out
    assert re.search(r"\+ building the probe .*\s[\d.]+s\s+" + ratio, out), out
    assert re.search(r"collection / ping: [\d.]+x \(target <= 2x: (?:met|MISSED)\)", out), out
    assert re.search(r"the last timed collection, from its start: first play starts [\d.]+ s, collection play "
                     r"[\d.]+ s, records [\d.]+ s \.\. [\d.]+ s \(median [\d.]+ s\), play recap [\d.]+ s, "
                     r"the command returns [\d.]+ s", out), out
    for label in ("ansible all -m ping", "collect.yml"):     # the CPU table: controller, VMs, per host, busy
        assert re.search(rf"^  {re.escape(label)}\s+[\d.]+s\s+[\d.]+s\s+[\d.]+s\s+[\d.]+\s+[\d.]+s$", out, re.M), out
    assert re.search(r"One whole fleet run first \(2 hosts, .*\): [\d.]+ s = collection [\d.]+ s .* reports [\d.]+ s "
                     r"\+ fleet notebook and summaries [\d.]+ s", out), out
    # sizes N/4 and N/2 are both 1 host here: rows for 1 and 2 hosts, each worker count and the speed-up
    for hosts in (1, 2):
        assert re.search(rf"^\s+{hosts}(?:\s+[\d.]+s \(\s*[\d.]+-\s*[\d.]+\)\s+[\d.]+s){{2}}\s+{ratio}$", out, re.M), \
            f"no render row for {hosts} host(s):\n{out}"
    assert re.search(r"time per host, spread across sizes: workers=1 \d+% \(1, 2 hosts\); workers=2 n/a "
                     r"\(needs two sizes of >= 2 hosts\) \(linear, within 25%: (?:met|MISSED)\)", out), out
    assert re.search(r"workers=2 vs 1 at 2 hosts: [\d.]+x \(target > 1\.5x, both cores used: (?:met|MISSED)\)",
                     out), out
