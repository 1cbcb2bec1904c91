"""A report carries its inventory name only where the fleet vouched for it: the record beside
the bundle (``_fleet.json``) must name that host and exactly that bundle; a plain parameter file
still cannot put another machine's name on a report."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from imds_helpers.fleet import fleet_hosts as fh
from imds_helpers.fleet.runner import plan_hosts
from imds_helpers.model.errors import UsageError
from imds_helpers.runbooks.runbook import read_evidence, validate_parameters

from .conftest import load


def fleet_folder(tmp_path: Path, bundle: Path, host: str = "web-01", *, alias: bool = True,
                 status: str = fh.COLLECTED) -> Path:
    folder = tmp_path / host
    folder.mkdir(parents=True)
    shutil.copy(bundle, folder / fh.EVIDENCE_FILE)
    outcome = fh.Outcome(host=host, status=status, evidence_path=str(folder / fh.EVIDENCE_FILE),
                         bundle_host=fh.bundle_identity(load(bundle)))
    fh.write_record(folder, outcome, alias=alias)
    return folder


def evidence_values(folder: Path, host: str) -> dict:
    return validate_parameters("vm", {"host_name": host, "evidence_path": str(folder / fh.EVIDENCE_FILE)})


def test_the_record_vouches_for_exactly_this_bundle(tmp_path, bundles):
    folder = fleet_folder(tmp_path, bundles["healthy"])
    bundle = load(folder / fh.EVIDENCE_FILE)
    assert fh.inventory_alias(folder / fh.EVIDENCE_FILE, "web-01", bundle)
    assert not fh.inventory_alias(folder / fh.EVIDENCE_FILE, "web-02", bundle)          # another name
    assert not fh.inventory_alias(folder / "other.json", "web-01", bundle)               # another file
    recollected = dict(bundle, started_at="2030-01-01T00:00:00.000+00:00")
    assert not fh.inventory_alias(folder / fh.EVIDENCE_FILE, "web-01", recollected)      # a newer bundle
    other_vm = dict(bundle, host=dict(bundle["host"], vmId="00000000-0000-0000-0000-000000000000"))
    assert not fh.inventory_alias(folder / fh.EVIDENCE_FILE, "web-01", other_vm)


def test_the_runbook_renders_the_inventory_name_only_with_the_record(tmp_path, bundles):
    folder = fleet_folder(tmp_path, bundles["healthy"])
    hostname = load(bundles["healthy"])["host"]["hostname"]
    assert hostname != "web-01"
    assert read_evidence("vm", evidence_values(folder, "web-01"))["host"]["hostname"] == hostname

    (folder / fh.RECORD_FILE).unlink()
    with pytest.raises(UsageError, match="a report never carries another machine's name"):
        read_evidence("vm", evidence_values(folder, "web-01"))


@pytest.mark.parametrize("damage", ["alias-false", "identity-mismatch", "not-json", "symlink", "other-schema"])
def test_a_record_that_does_not_vouch_is_refused(tmp_path, bundles, damage):
    folder = fleet_folder(tmp_path, bundles["healthy"], alias=damage != "alias-false",
                          status="identity_mismatch" if damage == "identity-mismatch" else fh.COLLECTED)
    record = folder / fh.RECORD_FILE
    if damage == "identity-mismatch":   # what run_fleet writes for such a host: no alias
        fh.write_record(folder, fh.Outcome(host="web-01", status="identity_mismatch",
                                           bundle_host=fh.bundle_identity(load(bundles["healthy"]))), alias=False)
    elif damage == "not-json":
        record.write_text("{not json")
    elif damage == "symlink":
        real = tmp_path / "elsewhere.json"
        real.write_text(record.read_text())
        record.unlink()
        os.symlink(real, record)
    elif damage == "other-schema":
        record.write_text(json.dumps(dict(json.loads(record.read_text()), schema="something/else@1")))
    with pytest.raises(UsageError, match="another machine's name"):
        read_evidence("vm", evidence_values(folder, "web-01"))


def test_the_generated_parameter_file_plans_under_the_inventory_name(tmp_path, bundles):
    folder = fleet_folder(tmp_path / "out", bundles["healthy"])
    params = folder / "params.yaml"     # as imds-runbook fleet writes it
    params.write_text(f"host: web-01\ntarget: vm\nevidence_path: {fh.EVIDENCE_FILE}\n")
    (plan,) = plan_hosts([params], notebook="auto", out_dir=tmp_path / "out")
    assert plan.host == "web-01" and plan.host_dir == (tmp_path / "out" / "web-01").resolve()
    assert plan.parameters["host_name"] == "web-01"
    assert plan.parameters["evidence_path"] == str(folder / fh.EVIDENCE_FILE)

    # the same file without the fleet's record: refused before any kernel starts
    (folder / fh.RECORD_FILE).unlink()
    with pytest.raises(UsageError, match="a report never carries another machine's name"):
        plan_hosts([params], notebook="auto", out_dir=tmp_path / "out")


def test_a_plain_parameter_file_elsewhere_is_not_vouched_for(tmp_path, bundles):
    # a record vouches for the bundle beside it, not for a copy of it in another folder
    folder = fleet_folder(tmp_path / "out", bundles["healthy"])
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    shutil.copy(folder / fh.EVIDENCE_FILE, elsewhere / "bundle.json")
    params = elsewhere / "web-01.yaml"
    params.write_text("target: vm\nevidence_path: bundle.json\nhost: web-01\n")
    with pytest.raises(UsageError, match="another machine's name"):
        plan_hosts([params], notebook="auto", out_dir=tmp_path / "runs")


def test_read_record_ignores_what_is_not_a_record(tmp_path):
    assert fh.read_record(tmp_path) is None
    (tmp_path / fh.RECORD_FILE).write_text("[]")
    assert fh.read_record(tmp_path) is None
