from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imds_helpers.fleet import sidecar as sc
from imds_helpers.model.redact import PLACEHOLDER

from .conftest import make_report

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def _sidecar(**overrides):
    report = make_report(("network.tcp", "IMDS-NET-000", "ok", 1.0),
                         ("token.system", "IMDS-TOKEN-004", "fail", 42.0))
    data = sc.build_sidecar(report, host="web-01", notebook="01_azure_vm_imds",
                            parameters={"endpoint": "", "client_secret": "hunter2",
                                        "note": f"Bearer {JWT}"},
                            started_at="2026-11-26T08:00:00Z", duration_s=1.23456)
    data.update(overrides)
    return data


def test_build_is_report_plus_host_metadata():
    data = _sidecar()
    report = make_report(("network.tcp", "IMDS-NET-000", "ok", 1.0),
                         ("token.system", "IMDS-TOKEN-004", "fail", 42.0))
    assert data["schema"] == sc.SIDECAR_SCHEMA == "imds-runbook/result@1"
    assert (data["host"], data["notebook"], data["started_at"]) == \
        ("web-01", "01_azure_vm_imds", "2026-11-26T08:00:00Z")
    assert data["duration_s"] == 1.235
    for key, value in report.to_dict().items():
        assert data[key] == value
    assert data["verdict"] == "fail" and data["tally"] == {"ok": 1, "warn": 0, "fail": 1, "skip": 0}
    check = data["checks"][1]
    assert set(check) >= {"id", "status", "code", "title", "detail", "explanation", "fix",
                          "elapsed_ms", "evidence", "commands", "attempts"}
    # the same from a dict
    assert sc.build_sidecar(report.to_dict(), host="web-01", notebook="01_azure_vm_imds",
                            parameters={}, started_at="x", duration_s=0)["checks"] == data["checks"]


def test_parameters_are_redacted():
    params = _sidecar()["parameters"]
    assert params["client_secret"] == PLACEHOLDER
    assert JWT not in json.dumps(params)
    assert params["endpoint"] == ""


def test_round_trip(tmp_path: Path):
    data = _sidecar()
    path = sc.write_sidecar(tmp_path / "web-01.json", data)
    assert sc.read_sidecar(path) == json.loads(json.dumps(data))
    assert os.listdir(tmp_path) == ["web-01.json"]   # no temporary file left behind


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "web-01.json"
    sc.write_sidecar(path, _sidecar())
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(sc.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        sc.write_sidecar(path, _sidecar(verdict="ok"))
    assert path.read_bytes() == before            # old content intact, never half-written
    assert os.listdir(tmp_path) == ["web-01.json"]  # temporary file cleaned up


def test_write_refuses_an_invalid_sidecar(tmp_path: Path):
    with pytest.raises(sc.SidecarError, match="verdict"):
        sc.write_sidecar(tmp_path / "x.json", _sidecar(verdict="great"))
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("content, problem", [
    (b'{"schema": "imds-runbook/result@1", "host": "a"', "not JSON"),
    (b"\xff\xfe garbage", "not JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"host": "a"}', "schema is None"),
    (b'{"schema": "imds-runbook/result@2"}', "schema is 'imds-runbook/result@2'"),
    (b'{"schema": "imds-runbook/result@1", "host": "a", "notebook": "n", "verdict": "ok", '
     b'"tally": {}}', "field 'checks'"),
    (b'{"schema": "imds-runbook/result@1", "host": "a", "notebook": "n", "verdict": "ok", '
     b'"tally": {}, "checks": [{"status": "ok"}]}', "checks[0]"),
    (b'{"schema": "imds-runbook/result@1", "host": "a", "notebook": "n", "verdict": "ok", '
     b'"tally": {}, "checks": [], "run": {"status": "great"}}', "run.status"),
])
def test_read_rejects_bad_files(tmp_path: Path, content: bytes, problem: str):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(sc.SidecarError) as info:
        sc.read_sidecar(path)
    assert problem in str(info.value)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_read_missing_file(tmp_path: Path):
    with pytest.raises(sc.SidecarError, match="cannot read"):
        sc.read_sidecar(tmp_path / "nope.json")


def test_run_status_for_verdicts():
    assert [sc.run_status_for(v) for v in ("ok", "warn", "fail", "skip")] == \
        ["ok", "findings", "findings", "findings"]
