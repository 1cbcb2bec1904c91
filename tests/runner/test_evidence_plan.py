"""Planning ``imds-runbook run`` with the real runbooks: a file naming another machine needs
that machine's evidence (issue 14 §3). Nothing here starts a kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from imds_helpers.api import check_options
from imds_helpers.collect import collect
from imds_helpers.model.errors import UsageError
from imds_helpers.cli.evidence import write_bundle
from imds_helpers.runbooks.runbook import same_host
from imds_helpers.fleet.runner import plan_hosts
from imds_helpers.fleet.sidecar import local_host_name

MSI = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
       "Microsoft.ManagedIdentity/userAssignedIdentities/ama-id")
CLOSED = "http://127.0.0.1:9"   # discard port: nothing listens, the collection ends at once


@pytest.mark.parametrize("a, b, same", [
    ("web-01", "web-01", True), ("WEB-01", "web-01", True), ("web-01", "web-01.contoso.com", True),
    ("Web-01.Contoso.com", "web-01", True), ("web-01.a.com", "web-01.b.com", False),
    ("web-01", "web-02", False), ("web", "web-01", False), ("web-01", "web-01x.contoso.com", False),
])
def test_same_host(a, b, same):
    assert same_host(a, b) is same and same_host(b, a) is same


@pytest.fixture
def bundle_file(tmp_path: Path) -> Path:
    bundle = collect(check_options(target="vm", endpoint=CLOSED, timeout=2))
    bundle["host"]["hostname"] = "web-08"
    folder = tmp_path / "params" / "evidence"
    folder.mkdir(parents=True)
    write_bundle(folder / "web-08.json", bundle)
    return folder / "web-08.json"


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "params" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _plan(tmp_path: Path, *files: Path):
    return plan_hosts(files, notebook="auto", out_dir=tmp_path / "out")


def test_another_machine_without_evidence_is_refused_naming_what_to_do(tmp_path):
    for path in (_file(tmp_path, "web-08", "target: vm\n"),                      # the file name names it
                 _file(tmp_path, "x", "target: arc\nhost_name: arc-08\n")):     # the key names it
        with pytest.raises(UsageError) as err:
            _plan(tmp_path, path)
        message = str(err.value)
        host, kind = ("web-08", "vm") if "web-08" in path.name else ("arc-08", "arc")
        assert "\n" not in message and message.startswith(f"{path}: names host {host!r}")
        assert f"imds-runbook collect --target {kind} --out {host}.json" in message and "evidence_path" in message
    assert not (tmp_path / "out").exists()


def test_the_refusal_spells_out_the_collect_line_for_this_files_selectors(tmp_path):
    """Following the message must give a bundle that answers what the file asks (its identities,
    audiences, key directory, budget), else the report would judge other questions."""
    path = _file(tmp_path, "web-10", "target: vm\nclient_ids: [11111111-2222-3333-4444-555555555555]\n"
                                      f"msi_res_ids: ['{MSI}']\n"
                                      "resources: [https://monitor.azure.com/]\ntimeout_s: 4\nproxy_comparison: true\n")
    with pytest.raises(UsageError) as err:
        _plan(tmp_path, path)
    assert ("`imds-runbook collect --target vm --resource https://monitor.azure.com/ "
            "--client-id 11111111-2222-3333-4444-555555555555 "
            f"--msi-res-id {MSI} --timeout 4 --proxy-comparison "
            "--out web-10.json` on web-10") in str(err.value)


def test_this_machine_and_training_plan_as_before(tmp_path):
    here = local_host_name()
    files = [_file(tmp_path, "a", f"host_name: {here.upper()}\n"),
             _file(tmp_path, "b", f"host_name: {here}.example.com\n"),
             _file(tmp_path, "web-09", "emulator_scenario: vm-healthy\n")]
    for path in files:   # one host each: the first two are the same machine
        assert [p.host for p in _plan(tmp_path, path)]
    assert [p.host for p in plan_hosts([], notebook="vm", out_dir=tmp_path / "out")] == [here]


def test_evidence_is_relative_to_the_file_and_names_the_host(tmp_path, bundle_file, monkeypatch):
    monkeypatch.chdir(tmp_path)   # not the parameter file's folder
    named = _file(tmp_path, "web-08", "target: vm\nevidence_path: evidence/web-08.json\n")
    unnamed = _file(tmp_path, "customer-a", "evidence_path: evidence/web-08.json\n")
    for path in (named, unnamed):
        (plan,) = _plan(tmp_path, path)
        assert plan.host == "web-08"                         # the bundle's, whatever the file is called
        assert plan.parameters["evidence_path"] == str(bundle_file)
        assert plan.parameters["host_name"] == "web-08"


def test_evidence_from_another_host_than_named_is_refused(tmp_path, bundle_file):
    path = _file(tmp_path, "db-01", "host_name: db-01\nevidence_path: evidence/web-08.json\n")
    with pytest.raises(UsageError) as err:
        _plan(tmp_path, path)
    assert "was collected on 'web-08'" in str(err.value) and str(path) in str(err.value)


def test_evidence_and_training_together_are_refused(tmp_path, bundle_file):
    path = _file(tmp_path, "web-08", "evidence_path: evidence/web-08.json\nemulator_scenario: vm-healthy\n")
    with pytest.raises(UsageError) as err:
        _plan(tmp_path, path)
    assert "set either emulator_scenario" in str(err.value)


def test_a_symlinked_bundle_is_not_followed(tmp_path, bundle_file):
    (bundle_file.parent / "link.json").symlink_to(bundle_file)
    path = _file(tmp_path, "web-08", "host_name: web-08\nevidence_path: evidence/link.json\n")
    with pytest.raises(UsageError) as err:
        _plan(tmp_path, path)
    assert "is a symlink" in str(err.value)


def test_duplicate_names_are_reported_before_the_machine_check(tmp_path):
    files = [_file(tmp_path, "a", "host: web-08\n"), _file(tmp_path, "b", "host: WEB-08\n")]
    with pytest.raises(UsageError) as err:
        _plan(tmp_path, *files)
    assert "appears twice" in str(err.value)
