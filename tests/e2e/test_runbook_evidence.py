"""Runbooks rendered from evidence (issue 14 §3-4): a bundle collected from an emulated host is
rendered by the real VM and Arc notebooks after the emulator is gone - the same checks, codes and
verdict as ``analyze(bundle)``, the bundle's host name and vmId, and not one connection made
(a listener on the emulator's old address counts them). ``imds-runbook run`` refuses a file that
names another machine without its evidence, renders that machine's report with it, and refuses
bad evidence files with one line."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest

from imds_helpers.model import evidence
from imds_helpers.analyze import analyze
from imds_helpers.api import check_options
from imds_helpers.collect import collect
from imds_helpers.emulator import Emulator
from imds_helpers.cli.evidence import write_bundle
from imds_helpers.fleet.sidecar import local_host_name

from .conftest import ARC_NOTEBOOK, VM_NOTEBOOK, child_env, cli_command

# Hosts that are not this machine (the bundle's hostname is rewritten to them, as if collected there).
FOREIGN = {"vm": "web-07", "arc": "arc-07"}
SCENARIO = {"vm": "vm-no-identity", "arc": "arc-wrong-secret"}   # findings: the verdict is not just "ok"
NOTEBOOK = {"vm": VM_NOTEBOOK, "arc": ARC_NOTEBOOK}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Per runbook kind: (bundle path, bundle, the emulator's old (host, port))."""
    assert local_host_name().lower() not in {h.lower() for h in FOREIGN.values()}
    root = tmp_path_factory.mktemp("evidence")
    made: dict[str, Any] = {}
    for kind, scenario in SCENARIO.items():
        with Emulator(mode=kind, scenario=scenario) as emu:
            bundle = collect(check_options(target=kind, endpoint=emu.base_url,
                                           tokens_dir=str(emu.key_dir) if kind == "arc" else None))
            address = (urlsplit(emu.base_url).hostname, urlsplit(emu.base_url).port)
            canary = emu.canary
        bundle["host"]["hostname"] = FOREIGN[kind]
        path = root / f"{FOREIGN[kind]}.json"
        write_bundle(path, bundle)
        assert canary not in path.read_text(encoding="utf-8")
        assert bundle["host"]["vmId"], "the instance document was fetched: the bundle knows the vmId"
        made[kind] = (path, evidence.load(path.read_text(encoding="utf-8")), address)
    return made


def _refused(address: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(address) != 0


@contextlib.contextmanager
def trap(address: tuple[str, int]) -> Iterator[list]:
    """A listener on the stopped emulator's address: every connection to it is counted."""
    assert _refused(address), f"something still listens on {address}"
    accepted: list = []
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(16)
        listener.setblocking(False)
        try:
            yield accepted
        finally:
            with contextlib.suppress(BlockingIOError):
                while True:
                    conn, peer = listener.accept()
                    accepted.append(peer)
                    conn.close()


def _checks(report: dict) -> list[tuple]:
    return [(c["id"], c["code"], c["status"], c["title"], c["detail"]) for c in report["checks"]]


@pytest.mark.parametrize("kind", ["vm", "arc"])
def test_notebook_renders_the_bundle_without_a_request(kind, bundles, tmp_path, monkeypatch):
    import papermill as pm

    path, bundle, address = bundles[kind]
    expected = analyze(bundle).to_dict()
    out, sidecar_path = tmp_path / "out.ipynb", tmp_path / "results" / "report.json"
    with trap(address) as accepted:
        # Whatever the kernel would contact by default goes to the trap too.
        monkeypatch.setenv("IMDS_RUNBOOK_ENDPOINT", f"http://{address[0]}:{address[1]}")
        pm.execute_notebook(str(NOTEBOOK[kind]), str(out), kernel_name="python3", cwd=str(tmp_path),
                            parameters={"evidence_path": str(path), "sidecar_path": str(sidecar_path)},
                            progress_bar=False, log_output=False)
    assert accepted == [], "the runbook connected to the emulator's address"
    sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    assert _checks(sidecar) == _checks(expected)
    assert (sidecar["verdict"], sidecar["tally"], sidecar["target"]) == \
        (expected["verdict"], expected["tally"], expected["target"])
    assert sidecar["verdict"] != "ok"
    assert sidecar["host"] == FOREIGN[kind]
    ident = bundle["host"]
    assert sidecar["evidence"] == {"source": "bundle", "path": str(path), "hostname": FOREIGN[kind],
                                   "vmId": ident["vmId"], "resourceId": ident["resourceId"],
                                   "collected_at": bundle["started_at"]}
    assert sorted(p.name for p in sidecar_path.parent.iterdir()) == ["report.json"]   # no new evidence
    nb = json.loads(out.read_text(encoding="utf-8"))
    texts = ["".join(o.get("data", {}).get("text/plain", "")) for c in nb["cells"] for o in c.get("outputs", [])]
    first = next(t for t in texts if t)
    assert f"host {FOREIGN[kind]}" in first and f"vmId {ident['vmId']}" in first
    assert "rendered from the evidence" in texts[-1]


def test_a_live_run_keeps_its_evidence_and_renders_again_the_same(tmp_path):
    """The live run's <host>.evidence.json renders the same report anywhere, later."""
    from imds_helpers.runbooks.runbook import Runbook

    with Emulator(mode="vm", scenario="vm-healthy") as emu:
        live = Runbook("vm", {"endpoint": emu.base_url, "sidecar_path": str(tmp_path / "vm-live.json")})
        for step in ("proxy", "network", "instance", "tokens"):
            getattr(live, step)()
        caption = live.save()
    kept = tmp_path / "vm-live.evidence.json"
    assert f"evidence in {kept}" in caption
    again = Runbook("vm", {"evidence_path": str(kept), "sidecar_path": str(tmp_path / "again.json")})
    for step in ("proxy", "network", "instance", "tokens"):
        getattr(again, step)()
    again.save()
    first, second = (json.loads((tmp_path / n).read_text()) for n in ("vm-live.json", "again.json"))
    assert [(c["id"], c["code"], c["status"]) for c in first["checks"]] == \
        [(c["id"], c["code"], c["status"]) for c in second["checks"]]
    assert first["evidence"]["source"] == "live" and second["evidence"]["source"] == "bundle"
    assert first["evidence"]["vmId"] == second["evidence"]["vmId"] is not None


# --------------------------------------------------------------------------- imds-runbook run


def _run(cwd: Path, *files: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*cli_command(), "run", *map(str, files), "--out", str(out), "--workers", "2",
                           "--timeout", "120", "--cell-timeout", "60"],
                          cwd=cwd, env=child_env(), capture_output=True, text=True, timeout=300)


def _one_line_refusal(done: subprocess.CompletedProcess, out: Path) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stdout == "" and not out.exists()
    return lines[0]


def test_run_refuses_another_machines_name_without_evidence(tmp_path):
    params = tmp_path / "web-07.yaml"
    params.write_text("target: vm\nhost_name: web-07\n", encoding="utf-8")
    line = _one_line_refusal(_run(tmp_path, params, out=tmp_path / "out"), tmp_path / "out")
    assert str(params) in line and "'web-07'" in line
    assert "imds-runbook collect --target vm --out web-07.json" in line and "evidence_path" in line


def test_run_renders_that_hosts_report_from_its_evidence(bundles, tmp_path):
    (tmp_path / "hosts" / "bundles").mkdir(parents=True)
    files = []
    for kind, (path, bundle, _) in bundles.items():
        copy = tmp_path / "hosts" / "bundles" / path.name
        copy.write_bytes(path.read_bytes())
        params = tmp_path / "hosts" / f"{kind}-file.yaml"
        # Relative to the parameter file's folder; the VM file names the host, the Arc one
        # takes it from the bundle.
        host_line = f"host_name: {FOREIGN[kind]}\n" if kind == "vm" else ""
        params.write_text(f"target: {kind}\n{host_line}evidence_path: bundles/{path.name}\n", encoding="utf-8")
        files.append(params)
    out = tmp_path / "out"
    done = _run(tmp_path, *files, out=out)   # cwd is not the files' folder
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr[-2000:]
    for kind, (_, bundle, _) in bundles.items():
        host = FOREIGN[kind]
        sidecar = json.loads((out / host / f"{host}.json").read_text(encoding="utf-8"))
        assert sidecar["host"] == host and sidecar["run"]["status"] in ("ok", "findings"), sidecar["run"]
        assert sidecar["evidence"]["vmId"] == bundle["host"]["vmId"]
        assert _checks(sidecar) == _checks(analyze(bundle).to_dict())
        html = (out / host / f"{host}.html").read_text(encoding="utf-8")
        assert f"<title>{host} - IMDS runbook</title>" in html and bundle["host"]["vmId"] in html
        assert not (out / host / f"{host}.evidence.json").exists()
    assert {p.name for p in out.iterdir() if p.is_dir()} == set(FOREIGN.values())


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _edited(ctx: dict, **host: str) -> str:
    return json.dumps({**ctx["bundle"], "host": {**ctx["bundle"]["host"], **host}})


BAD_EVIDENCE = {   # case -> (make the file at p from ctx, what the one line says)
    "not-json": (lambda p, ctx: p.write_text("{not json", encoding="utf-8"), "not JSON"),
    "wrong-kind": (lambda p, ctx: p.write_text(json.dumps({**ctx["bundle"], "kind": "something-else"})), "kind"),
    "symlink": (lambda p, ctx: p.symlink_to(ctx["vm"]), "symlink"),
    "fifo": (lambda p, ctx: _fifo(p), "FIFO"),
    "too-big": (lambda p, ctx: p.write_bytes(b" " * (evidence.MAX_BUNDLE_BYTES + 1)), "JSON text larger than"),
    "missing": (lambda p, ctx: None, "No such file"),
    "arc-bundle": (lambda p, ctx: p.write_text(json.dumps({**ctx["arc"], "host": {**ctx["arc"]["host"], "hostname": "web-07"}})),
                   "holds 'arc' evidence (collected with target 'arc'), but this is the vm runbook"),
    "other-host": (lambda p, ctx: p.write_text(_edited(ctx, hostname="db-09")), "collected on 'db-09'"),
    "unsafe-host-name": (lambda p, ctx: p.write_text(_edited(ctx, hostname="../x")), "host name '../x' must be"),
}


@pytest.mark.parametrize("case", sorted(BAD_EVIDENCE))
def test_run_refuses_bad_evidence_with_one_line(case, bundles, tmp_path):
    vm_path, vm_bundle, _ = bundles["vm"]
    make, needle = BAD_EVIDENCE[case]
    make(tmp_path / "evidence.json", {"bundle": vm_bundle, "vm": vm_path, "arc": bundles["arc"][1]})
    params = tmp_path / "web-07.yaml"
    params.write_text("target: vm\nhost_name: web-07\nevidence_path: evidence.json\n", encoding="utf-8")
    line = _one_line_refusal(_run(tmp_path, params, out=tmp_path / "out"), tmp_path / "out")
    assert str(params) in line and needle in line, line
