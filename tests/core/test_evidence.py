"""The evidence bundle: its schema file, what it keeps of secrets, hostile bundles, and analysis
that touches nothing but the bundle."""

from __future__ import annotations

import builtins
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from imds_helpers.model import evidence
from imds_helpers.analyze import analyze, analyze_with_misses
from imds_helpers.api import check_options
from imds_helpers.model.catalog import HTTP_NOT_COLLECTED
from imds_helpers.collect import collect
from imds_helpers.emulator import Emulator
from imds_helpers.model.evidence_schema import json_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "imds_helpers" / "model" / "evidence.schema.json"


@pytest.fixture(scope="module")
def vm_bundle():
    with Emulator(mode="vm", scenario="vm-healthy") as emu:
        bundle = collect(check_options(target="vm", endpoint=emu.base_url, client_ids=["11111111-2222-3333-4444-555555555555"]))
        canary = emu.canary
    return json.loads(evidence.dumps(bundle)), canary


@pytest.fixture(scope="module")
def arc_bundle():
    with Emulator(mode="arc", scenario="arc-healthy") as emu:
        bundle = collect(check_options(target="arc", endpoint=emu.base_url, tokens_dir=str(emu.key_dir)))
        canary = emu.canary
    return json.loads(evidence.dumps(bundle)), canary


def test_the_schema_file_is_the_shape_table():
    """Regenerate with: python -m imds_helpers.model.evidence_schema > imds_helpers/model/evidence.schema.json"""
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema()
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_bundles_match_the_schema_and_hold_what_the_issue_lists(vm_bundle, arc_bundle):
    for bundle, _ in (vm_bundle, arc_bundle):
        jsonschema.validate(bundle, json.loads(SCHEMA_FILE.read_text()))
        assert bundle["kind"] == evidence.KIND and bundle["schema_version"] == evidence.SCHEMA_VERSION
        assert bundle["collector"]["name"] == "imds-runbook" and bundle["duration_ms"] > 0
        assert bundle["host"]["hostname"] and bundle["parameters"]["timeouts"] == {"connect": 2.0, "read": 5.0, "total": 10.0}
        http = bundle["http"][0]
        assert http["request"]["method"] == "GET" and http["status"] == 200 and http["attempts"][0]["elapsed_ms"] >= 0
        assert ["Server", "IMDS/150.870.65.1854"] in http["headers"] or any(k == "Content-Type" for k, _ in http["headers"])
    vm = vm_bundle[0]
    assert vm["host"]["vmId"] and vm["host"]["resourceId"].startswith("/subscriptions/")
    assert [["Metadata", "true"]] == vm["http"][0]["request"]["headers"]
    assert len(evidence.dumps(vm)) < 40_000          # "a few tens of KB"


def test_tokens_lose_their_signature_and_the_arc_secret_never_enters(vm_bundle, arc_bundle):
    for bundle, canary in (vm_bundle, arc_bundle):
        text = evidence.dumps(bundle)
        assert canary not in text
        tokens = [json.loads(r["body"])["access_token"] for r in bundle["http"]
                  if r["status"] == 200 and "access_token" in r["body"]]
        assert tokens and all(t.count(".") == 2 and t.endswith(".") for t in tokens)
    arc = arc_bundle[0]
    authorised = [r for r in arc["http"] if ["Authorization", "<redacted>"] in r["request"]["headers"]]
    assert len(authorised) == 1 and authorised[0]["status"] == 200
    key = arc["arc_keys"][0]
    assert key["key_verdict"]["ok"] and "secret" not in json.dumps(key).lower().replace("secrets", "")


def test_analysis_is_pure(vm_bundle, arc_bundle, monkeypatch):
    """No socket, subprocess, file or clock: each one raises while the analysis runs."""
    expected = [json.dumps(analyze(b).to_dict(), sort_keys=True) for b, _ in (vm_bundle, arc_bundle)]

    def forbidden(*args, **kwargs):
        raise AssertionError(f"analysis touched the machine: {args[:2]}")

    for target, name in ((socket, "socket"), (socket, "create_connection"), (socket, "getaddrinfo"),
                         (subprocess, "Popen"), (builtins, "open"), (os, "open"), (os, "stat"), (os, "lstat"),
                         (os, "listdir"), (os, "scandir"), (time, "time"), (time, "monotonic"), (time, "perf_counter"),
                         (time, "sleep")):
        monkeypatch.setattr(target, name, forbidden)
    got = [json.dumps(analyze(b).to_dict(), sort_keys=True) for b, _ in (vm_bundle, arc_bundle)]
    monkeypatch.undo()
    assert got == expected


def test_a_question_the_bundle_cannot_answer_is_not_collected(vm_bundle):
    bundle = json.loads(json.dumps(vm_bundle[0]))
    bundle["http"] = [r for r in bundle["http"] if "/oauth2/token" not in r["request"]["url"]]
    bundle["commands"] = []
    report, misses = analyze_with_misses(bundle)
    tokens = [c for c in report.checks if c.id.startswith("token.")]
    assert tokens and all(c.code == HTTP_NOT_COLLECTED and c.status.value == "skip" for c in tokens)
    assert any(m.startswith("GET ") for m in misses) and any(m.startswith("command ") for m in misses)
    firewall = next(c for c in report.checks if c.id == "network.firewall")
    assert "not_collected" in json.dumps(firewall.evidence)


def _broken(bundle, change):
    data = json.loads(json.dumps(bundle))
    change(data)
    return json.dumps(data)


HOSTILE = {
    "not json": lambda b: "{not json",
    "a list": lambda b: "[]",
    "another kind": lambda b: _broken(b, lambda d: d.update(kind="imds-runbook/result@1")),
    "a newer version": lambda b: _broken(b, lambda d: d.update(schema_version=99)),
    "no parameters": lambda b: _broken(b, lambda d: d.pop("parameters")),
    "status as text": lambda b: _broken(b, lambda d: d["http"][0].update(status="200")),
    "argv not a list": lambda b: _broken(b, lambda d: d["commands"][0].update(argv="iptables-save")),
    "a boolean port": lambda b: _broken(b, lambda d: d["tcp"][0].update(port=True)),
    "headers not pairs": lambda b: _broken(b, lambda d: d["http"][0].update(headers={"Server": "x"})),
    "too many records": lambda b: _broken(b, lambda d: d.update(files=d["files"] * 100)),
    "deep nesting": lambda b: _broken(b, lambda d: d.update(environment=json.loads("[" * 80 + "]" * 80))),
    "bad target": lambda b: _broken(b, lambda d: d["parameters"].update(target="mainframe")),
    "bad endpoint": lambda b: _broken(b, lambda d: d["parameters"].update(endpoint="ftp://x\x1b[31m")),
    "bad timeout": lambda b: _broken(b, lambda d: d["parameters"]["timeouts"].update(connect=-1)),
    "bad selector": lambda b: _broken(b, lambda d: d["parameters"].update(identities=[["token", "x"]])),
    "bad error kind": lambda b: _broken(b, lambda d: d["http"][0].update(error="nonsense")),
    "bad base64": lambda b: _broken(b, lambda d: d["http"][0].update(body="!!", body_encoding="base64")),
    "huge": lambda b: " " * (evidence.MAX_BUNDLE_BYTES + 1) + "{}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_bundle_is_one_line_and_exit_2(vm_bundle, tmp_path, name):
    path = tmp_path / "bundle.json"
    path.write_text(HOSTILE[name](vm_bundle[0]))
    run = subprocess.run([sys.executable, "-m", "imds_helpers", "analyze", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert run.stdout == "" and len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert "\x1b" not in run.stderr


def test_analyze_cli_matches_check_and_reads_folders(vm_bundle, arc_bundle, tmp_path):
    for index, (bundle, _) in enumerate((vm_bundle, arc_bundle)):
        (tmp_path / f"host{index}.json").write_text(evidence.dumps(bundle))
    one = subprocess.run([sys.executable, "-m", "imds_helpers", "analyze", "--json", str(tmp_path / "host0.json")],
                         capture_output=True, text=True, timeout=60)
    expected = analyze(vm_bundle[0]).to_dict()
    assert one.returncode == (0 if expected["verdict"] == "ok" else 1) == 1, one.stderr   # the identity is not attached
    assert json.loads(one.stdout)["checks"] == expected["checks"]
    again = subprocess.run([sys.executable, "-m", "imds_helpers", "analyze", "--json", str(tmp_path / "host0.json")],
                           capture_output=True, text=True, timeout=60)
    assert again.stdout == one.stdout                      # byte-identical
    both = subprocess.run([sys.executable, "-m", "imds_helpers", "analyze", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert both.returncode == 1 and both.stdout.count("Verdict: ") == 2 and both.stdout.count("\n== ") == 1


def test_many_bundles_are_judged_on_every_core_as_json_lines(vm_bundle, arc_bundle, tmp_path, monkeypatch):
    """Past PARALLEL_FROM bundles the work goes to worker processes; the output is the same JSON
    Lines in the order given, and one bad bundle among them is still one line and exit 2."""
    from imds_helpers.cli import evidence as evidence_cli

    folder = tmp_path / "fleet"
    folder.mkdir()
    count = evidence_cli.PARALLEL_FROM + 6
    for index in range(count):
        bundle = json.loads(json.dumps((vm_bundle if index % 3 else arc_bundle)[0]))
        bundle["host"]["hostname"] = f"host-{index:03d}"
        (folder / f"host-{index:03d}.json").write_text(evidence.dumps(bundle))
    run = subprocess.run([sys.executable, "-m", "imds_helpers", "analyze", "--json", str(folder)],
                         capture_output=True, text=True, timeout=120)
    lines = run.stdout.splitlines()
    assert run.returncode == 1 and len(lines) == count, run.stderr
    items = [json.loads(line) for line in lines]
    assert [i["host"] for i in items] == [f"host-{n:03d}" for n in range(count)]
    assert {i["target"] for i in items} == {"vm", "arc"} and all(i["bundle"].endswith(".json") for i in items)
    (folder / "host-050.json").write_text("{}")
    bad = subprocess.run([sys.executable, "-m", "imds_helpers", "analyze", "--json", str(folder)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "" and "host-050.json" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_is_written_into_never_replaced(tmp_path):
    """collect --out /dev/null (and check --save-evidence) once renamed a regular file over the
    device: the atomic write must not apply to a character device. A private copy of /dev/null's
    node stands in for it here; a FIFO is refused (it could block)."""
    import stat

    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    env = {**os.environ, "IMDS_RUNBOOK_ENDPOINT": "http://127.0.0.1:9"}
    for args in (["collect", "--timeout", "1", "--out", str(node)],
                 ["check", "--timeout", "1", "--save-evidence", str(node)]):
        run = subprocess.run([sys.executable, "-m", "imds_helpers", *args], capture_output=True, text=True,
                             timeout=60, env=env)
        assert run.returncode in (0, 1) and "Traceback" not in run.stderr, run.stderr
        assert stat.S_ISCHR(node.stat().st_mode), "the device node was replaced"
    refused = subprocess.run([sys.executable, "-m", "imds_helpers", "collect", "--out", str(fifo)],
                             capture_output=True, text=True, timeout=60, env=env)
    assert refused.returncode == 2 and "not a regular file" in refused.stderr and stat.S_ISFIFO(fifo.stat().st_mode)
