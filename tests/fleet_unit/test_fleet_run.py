"""run_fleet from Ansible's records to the fleet's results: every inventory host is one row with
its status and reason, collected hosts get their runbook, identity problems stop a report.

Ansible itself is replaced here by a stand-in that replays real records (fixtures/records.json)
and copies real bundles, so these tests need no SSH and judge exactly what the fleet does with
what Ansible reports; test_fleet_e2e.py runs the real playbook."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imds_helpers.fleet import fleet_hosts as fh
from imds_helpers.fleet import report
from imds_helpers.fleet.fleet_run import FleetProgress, run_fleet
from imds_helpers.fleet.sidecar import read_sidecar
from imds_helpers.model.errors import UsageError

from .conftest import load, record_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def inventory(tmp_path: Path) -> str:
    path = tmp_path / "inventory.yml"
    path.write_text("all: {}\n")
    return str(path)


def test_every_host_is_a_row_and_collected_hosts_get_their_runbook(tmp_path, inventory, records, bundles,
                                                                   fake_ansible):
    plan = {
        "web-01": record_for(records, "local-healthy", "web-01"),
        "web-02": record_for(records, "ssh-refused", "web-02"),
        "web-03": record_for(records, "python-missing-no-shell", "web-03"),
        "web-04": record_for(records, "probe-timeout", "web-04"),
        "web-05": record_for(records, "ssh-auth-failed", "web-05"),
        "web-06": record_for(records, "probe-bad-usage", "web-06"),
        "web-07": record_for(records, "python-old", "web-07"),        # collected by the shell collector
    }
    script = fake_ansible(plan, {"web-01": bundles["no-identity"], "web-07": bundles["healthy"]},
                          hosts=[*plan, "web-08"])
    seen: list[FleetProgress] = []
    out = tmp_path / "out"
    summary = run_fleet(inventory, out_dir=out, ansible_playbook=str(script), notebook=False, progress=seen.append)

    rows = {row.host: row for row in summary.hosts}
    assert list(rows) == [f"web-0{i}" for i in range(1, 9)]          # inventory order, every host
    assert {h: r.status for h, r in rows.items()} == {
        "web-01": "findings", "web-02": "unreachable", "web-03": "no_python", "web-04": "collect_timeout",
        "web-05": "auth_failed", "web-06": "collect_failed", "web-07": "ok", "web-08": "collect_failed"}
    assert rows["web-01"].failing_codes == ("IMDS-TOKEN-001",) and rows["web-01"].html_path
    assert "without a result" in rows["web-08"].reason
    # the host without Python is a host like any other, and its sidecar says which collector ran and why
    web07 = read_sidecar(rows["web-07"].sidecar_path)
    assert rows["web-07"].html_path and web07["fleet"]["collector"] == "shell"
    assert web07["fleet"]["notes"][:2] == [
        "collected by the shell collector (imds-collect.sh): no usable Python >= 3.10 (found: "
        f"{records['python-old']['python']['path']} 3.6.8)",
        "not collected: --proxy-comparison (the shell collector has no such option)"]
    assert read_sidecar(rows["web-01"].sidecar_path)["fleet"]["collector"] == "python"
    assert summary.exit_code == 1 and summary.counts["findings"] == 1 and summary.counts["ok"] == 1

    # the files: evidence, the fleet's record, the parameter file, a sidecar for every host
    assert (out / "web-01" / "evidence.json").is_file() and (out / "web-01" / "params.yaml").is_file()
    assert "evidence_path: evidence.json" in (out / "web-01" / "params.yaml").read_text()
    for host, row in rows.items():
        sidecar = read_sidecar(row.sidecar_path)
        assert sidecar["host"] == host and sidecar["run"]["status"] == row.status
        assert sidecar["fleet"]["inventory_hostname"] == host
        assert Path(row.sidecar_path) == out.resolve() / host / f"{host}.json"
    assert fh.read_record(out / "web-01")["alias"] is True
    assert fh.read_record(out / "web-02")["status"] == "unreachable"
    web01 = read_sidecar(rows["web-01"].sidecar_path)
    assert web01["evidence"]["source"] == "bundle" and web01["fleet"]["collection"] == "collected"
    assert "inventory name; collected on" in Path(rows["web-01"].html_path).read_text()

    # the summary rows the CSV / markdown / HTML are made of
    df = report.load_results([row.sidecar_path for row in summary.hosts])
    table = report.summary_table(df).set_index("host")
    assert table.loc["web-02", "run_status"] == "unreachable"
    assert "Connection refused" in table.loc["web-02", "error"]
    assert "/nonexistent/python3" in table.loc["web-03", "error"]
    assert report.run_counts(df) == {"ok": 1, "findings": 1, "failed": 0, "timeout": 0, "dead_kernel": 0,
                                     "unreachable": 1, "auth_failed": 1, "no_python": 1, "collect_timeout": 1,
                                     "collect_failed": 2, "unreadable": 0}
    markdown = report.render_markdown_report(df)
    assert "| web-03 | no_python | skip |" in markdown
    html = report.render_html(df, base_dir=out)
    assert '<td class="imds-fail">unreachable</td>' in html

    # progress: the host list, each host as its record arrived, then each report
    assert seen[0].stage == "start" and seen[0].total == 8
    collected = [e for e in seen if e.stage == "collect"]
    assert [e.host for e in collected] == list(plan) and collected[1].status == "unreachable"
    assert collected[-1].detail.endswith("KB of evidence (shell collector: no Python >= 3.10)")
    assert sorted((e.stage, e.host, e.status) for e in seen if e.stage == "render") == [   # as they finish
        ("render", "web-01", "findings"), ("render", "web-07", "ok")]


def test_identity_problems_stop_the_report_and_name_the_other_host(tmp_path, inventory, records, bundles,
                                                                  fake_ansible):
    healthy_vm = load(bundles["healthy"])["host"]["vmId"]
    broken = tmp_path / "broken.json"
    broken.write_text('{"kind": "something else"}')
    plan = {
        "web-01": record_for(records, "local-healthy", "web-01"),
        "web-01-ip": record_for(records, "local-healthy", "web-01-ip"),
        "web-02": record_for(records, "local-healthy", "web-02", vm_id=healthy_vm),   # got another VM's bundle
        "web-03": record_for(records, "local-healthy", "web-03"),
        "bad/name": dict(record_for(records, "local-healthy", "bad/name"), name_ok=False, written=False),
    }
    script = fake_ansible(plan, {"web-01": bundles["healthy"], "web-01-ip": bundles["healthy"],
                                 "web-02": bundles["healthy2"], "web-03": broken})
    out = tmp_path / "out"
    summary = run_fleet(inventory, out_dir=out, ansible_playbook=str(script), notebook=False)
    rows = {row.host: row for row in summary.hosts}
    assert {h: r.status for h, r in rows.items()} == {
        "web-01": "identity_mismatch", "web-01-ip": "identity_mismatch", "web-02": "identity_mismatch",
        "web-03": "collect_failed", "bad/name": "collect_failed"}
    assert f"the same machine as web-01-ip (vmId {healthy_vm})" in rows["web-01"].reason
    assert "the same machine as web-01" in rows["web-01-ip"].reason
    assert f"expects vmId {healthy_vm!r}" in rows["web-02"].reason
    assert "the bundle does not load" in rows["web-03"].reason and "not an evidence bundle" in rows["web-03"].reason
    assert "cannot name a folder" in rows["bad/name"].reason
    assert summary.render is None and not any(r.html_path for r in rows.values())
    # the evidence stays for a look, but nobody may render it under that name
    assert (out / "web-02" / "evidence.json").is_file() and fh.read_record(out / "web-02")["alias"] is False
    # a name no folder can carry: its result sits with Ansible's files, under its own name
    sidecar = read_sidecar(rows["bad/name"].sidecar_path)
    assert sidecar["host"] == "bad/name" and Path(rows["bad/name"].sidecar_path).parent == out.resolve() / "_ansible" / "hosts"


def test_ansible_reaching_no_host_is_one_line_with_its_own_words(tmp_path, inventory, fake_ansible):
    script = fake_ansible({}, hosts=[], rc=4)
    script.write_text(script.read_text().replace(
        'print("fake ansible-playbook"', 'print("[WARNING]: Unable to parse inventory.yml as an inventory source"); print("x"'))
    with pytest.raises(UsageError, match=r"reached no host \(exit code 4\): \[WARNING\]: Unable to parse inventory"):
        run_fleet(inventory, out_dir=tmp_path / "out", ansible_playbook=str(script), notebook=False)


@pytest.mark.parametrize("kwargs, needle", [
    ({"forks": 0}, "--forks"),
    ({"forks": True}, "--forks"),
    ({"limit": ""}, "--limit"),
    ({"collect_timeout": float("nan")}, "--collect-timeout"),
    ({"extra_args": ["-e", "x\x00y"]}, "--"),
    ({"workers": 0}, "--workers"),
    ({"probe": "missing.pyz"}, "--probe"),
])
def test_bad_input_stops_before_ansible_with_nothing_written(tmp_path, inventory, fake_ansible, kwargs, needle):
    script = fake_ansible({})
    out = tmp_path / "out"
    with pytest.raises(UsageError) as caught:
        run_fleet(inventory, out_dir=out, ansible_playbook=str(script), notebook=False, **kwargs)
    assert caught.value.argument == needle or needle in str(caught.value)
    if "probe" not in kwargs:
        assert not out.exists()


def test_an_inventory_that_is_not_there_and_an_output_folder_that_is_a_link(tmp_path, fake_ansible):
    script = fake_ansible({})
    with pytest.raises(UsageError, match="inventory .*nowhere.yml not found"):
        run_fleet(str(tmp_path / "nowhere.yml"), out_dir=tmp_path / "out", ansible_playbook=str(script))
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    (tmp_path / "inv").write_text("all: {}\n")
    with pytest.raises(UsageError, match="symbolic link"):
        run_fleet(str(tmp_path / "inv"), out_dir=tmp_path / "link", ansible_playbook=str(script))
    assert list((tmp_path / "real").iterdir()) == []


def test_the_probe_is_built_from_this_package_or_from_the_installed_builder(tmp_path, monkeypatch):
    import zipfile

    from imds_helpers.fleet import fleet_run

    built = fleet_run.build_probe(tmp_path / "a" / "imds-probe.pyz")
    with zipfile.ZipFile(built) as archive:
        names = archive.namelist()
    assert "__main__.py" in names and "imds_helpers/fleet/fleet_hosts.py" in names
    # an installed package has no checkout: the builder setup.py copied into _data/tools/
    packaged = tmp_path / "_data"
    (packaged / "tools").mkdir(parents=True)
    (packaged / "tools" / "build_probe.py").write_text((fleet_run.CHECKOUT / "tools" / "build_probe.py").read_text())
    monkeypatch.setattr(fleet_run, "CHECKOUT", tmp_path / "no-checkout")
    monkeypatch.setattr(fleet_run, "PACKAGED", packaged)
    assert zipfile.ZipFile(fleet_run.build_probe(tmp_path / "b" / "imds-probe.pyz")).namelist() == names
    monkeypatch.setattr(fleet_run, "PACKAGED", tmp_path / "nothing")
    with pytest.raises(UsageError, match="give --probe"):
        fleet_run.build_probe(tmp_path / "c" / "imds-probe.pyz")


def test_a_probe_path_a_shell_would_split_is_copied_to_a_plain_one(tmp_path):
    from imds_helpers.fleet.fleet_run import _probe_for

    odd = tmp_path / "with space; and 'quotes'"
    odd.mkdir()
    probe = odd / "imds-probe.pyz"
    probe.write_bytes(b"PK")
    scratch: list[Path] = []
    used = _probe_for(probe, tmp_path, scratch)
    assert used != probe and used.read_bytes() == b"PK" and " " not in str(used) and scratch
    plain = tmp_path / "plain.pyz"
    plain.write_bytes(b"PK")
    assert _probe_for(plain, tmp_path, []) == plain.resolve()


def test_the_summary_serialises(tmp_path, inventory, records, fake_ansible):
    script = fake_ansible({"web-02": record_for(records, "ssh-timeout", "web-02")})
    # nothing diagnosed: the fleet notebook still runs (its chart says there is nothing to plot)
    summary = run_fleet(inventory, out_dir=tmp_path / "out", ansible_playbook=str(script), notebook=True)
    assert summary.notebook_error is None and summary.notebook_path == str((tmp_path / "out" / "summary.ipynb").resolve())
    assert "web-02" in (tmp_path / "out" / "summary.ipynb").read_text()
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["counts"] == {"unreachable": 1} and data["exit_code"] == 1
    assert data["hosts"][0]["outcome"]["record"]["reach"]["unreachable"] is True
    assert data["ansible"]["returncode"] == 0 and data["ansible"]["ended"] is True
