"""``imds-runbook analyze`` on what ``az`` prints for a Run Command (the documented shapes in
tests/fixtures/runcommand/, sources in its README), and ``collect --digest``: the real CLI in a
process, against the emulator; bad input is one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imds_helpers.analyze import analyze
from imds_helpers.emulator import Emulator
from imds_helpers.model import digest, evidence
from imds_helpers.model.runcommand import unwrap
from tests.matrix.fault_matrix import MATRIX
from tests.matrix.test_evidence_matrix import _collect

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runcommand"
SHAPES = sorted(p.name for p in FIXTURES.glob("*.json"))
TAIL = 4096          # what the action form (invoke) keeps of a script's output


def fill(name: str, stdout: str, stderr: str = "") -> str:
    template = (FIXTURES / name).read_text(encoding="utf-8")
    return (template.replace("@STDOUT@", json.dumps(stdout)[1:-1])
            .replace("@STDERR@", json.dumps(stderr)[1:-1]))


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imds_helpers", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, IMDS_RUNBOOK_ENDPOINT="http://127.0.0.1:9"))


def triples(report: dict) -> tuple[str, list[tuple[str, str, str]]]:
    return report["verdict"], [(c["id"], c["status"], c["code"]) for c in report["checks"]]


@pytest.fixture(scope="module")
def collected() -> tuple[dict, str]:
    with Emulator(mode="arc", scenario="arc-healthy") as emu:
        case = next(c for c in MATRIX if c.scenario == "arc-healthy")
        bundle = _collect(case, emu)[1]
        return evidence.load(evidence.dumps(bundle)), emu.canary


@pytest.mark.parametrize("shape", SHAPES)
def test_analyze_reads_the_digest_inside_each_shape(shape, collected, tmp_path):
    bundle, canary = collected
    text = digest.encode(bundle)
    stdout = ("collector progress line\n" * 10 + text)[-TAIL:]
    path = tmp_path / shape
    path.write_text(fill(shape, stdout, "curl: (7) one stderr line\n"), encoding="utf-8")
    run = cli("analyze", "--json", str(path))
    assert run.returncode in (0, 1), run.stderr
    assert triples(json.loads(run.stdout)) == triples(analyze(bundle).to_dict())
    assert canary not in run.stdout + run.stderr


def test_a_whole_bundle_in_a_managed_run_command_is_read(collected, tmp_path):
    bundle, _ = collected
    path = tmp_path / "show.json"
    path.write_text(fill("connectedmachine-show.json", evidence.dumps(bundle)), encoding="utf-8")
    run = cli("analyze", "--json", str(path))
    assert triples(json.loads(run.stdout)) == triples(analyze(bundle).to_dict())


def test_a_bundle_cut_by_invoke_is_one_line_naming_digest(collected, tmp_path):
    bundle, _ = collected
    path = tmp_path / "invoke.json"
    path.write_text(fill("invoke-linux.json", (evidence.dumps(bundle) + "\n")[-TAIL:]), encoding="utf-8")
    run = cli("analyze", str(path))
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1 and "--digest" in run.stderr and "Traceback" not in run.stderr


def test_a_cut_digest_in_invoke_is_named_cut(collected, tmp_path):
    bundle, _ = collected
    text = digest.encode(bundle)
    path = tmp_path / "invoke.json"
    path.write_text(fill("invoke-linux.json", (text + "later output\n" * 100)[-TAIL:]), encoding="utf-8")
    run = cli("analyze", str(path))
    assert run.returncode == 2 and "cut: the first part of the digest is missing" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("shape", SHAPES)
def test_no_evidence_inside_quotes_stderr_escaped(shape, tmp_path):
    path = tmp_path / shape
    path.write_text(fill(shape, "", "sh: 1: curl: not found\x1b[2J\nsecond line\n"), encoding="utf-8")
    run = cli("analyze", str(path))
    assert run.returncode == 2 and run.stdout == ""
    line = run.stderr.strip()
    assert len(line.splitlines()) == 1 and "\x1b" not in line
    assert "the Run Command output holds no evidence bundle or digest; stderr says: 'sh: 1: curl: not found" in line
    assert "second line" not in line


@pytest.mark.parametrize("content, expected", [
    ("[" * 100_000 + "]" * 100_000, "nested deeper"),
    ('{"value": [{"code": "ProvisioningState/succeeded", "message": "' + "x" * (evidence.MAX_BUNDLE_BYTES + 10) + '"}]}',
     "larger than"),
    ('{"value": "not a list"}', "not an evidence bundle"),
    ("\xff\xfe garbage", "not an evidence bundle"),
])
def test_hostile_input_is_one_line(content, expected, tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content)
    run = cli("analyze", str(path))
    assert run.returncode == 2 and run.stdout == "" and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and expected in run.stderr


def test_unwrap_edges():
    linux = {"value": [{"code": "ProvisioningState/succeeded",
                        "message": "Enable succeeded: \n[stdout]\n\n[stderr]\nboom\n[stderr]\nagain"}]}
    out = unwrap(linux)
    assert (out.form, out.stdout, out.stderr) == ("invoke-linux", "", "boom\n[stderr]\nagain")
    windows = {"value": [{"code": "ComponentStatus/StdOut/succeeded", "message": "a\\nb"},
                         {"code": "ComponentStatus/StdErr/succeeded", "message": ""}]}
    assert unwrap(windows).stdout == "a\nb"       # older answers carried line breaks escaped
    view = unwrap({"instanceView": {"executionState": "Failed", "exitCode": 3, "output": None, "error": "e"}})
    assert (view.form, view.stdout, view.stderr, view.exit_code) == ("instance-view", "", "e", 3)
    assert unwrap({"kind": "imds-runbook/evidence"}) is None and unwrap([1]) is None


def test_collect_digest_prints_a_digest(tmp_path):
    with Emulator(mode="vm", scenario="vm-healthy") as emu:
        run = cli("collect", "--target", "vm", "--endpoint", emu.base_url, "--digest")
        out = cli("collect", "--target", "vm", "--endpoint", emu.base_url, "--digest", "--out", str(tmp_path / "d.txt"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(digest.BEGIN) and len(run.stdout.encode()) <= digest.MAX_DIGEST_BYTES
    assert emu.canary not in run.stdout + run.stderr
    bundle = digest.decode(run.stdout)
    assert bundle["parameters"]["endpoint"] == emu.base_url
    assert out.returncode == 0 and digest.decode((tmp_path / "d.txt").read_text()) is not None
    analyzed = cli("analyze", "--json", str(tmp_path / "d.txt"))
    assert json.loads(analyzed.stdout)["verdict"] != "fail"
