"""Host identity is checked, not assumed: a bundle must agree with what the inventory states
about the machine, and two inventory names that reach one machine are caught (real bundles)."""

from __future__ import annotations

import pytest

from imds_helpers.fleet import fleet_hosts as fh

from .conftest import load


def host_of(path) -> dict:
    return fh.bundle_identity(load(path))


def test_expectations_come_from_the_record(records):
    record = dict(records["local-healthy"])
    record["expect"] = {"hostname": " web-01 ", "smbios_uuid": "", "vm_id": "ABC"}
    assert fh.expectations(record) == {"hostname": "web-01", "vmId": "ABC"}
    assert fh.expectations({}) == {}


def test_the_bundles_own_identity_matches(bundles):
    ident = host_of(bundles["healthy"])
    assert ident["vmId"] and ident["hostname"]
    checks = fh.identity_check(ident, {"vmId": ident["vmId"].upper(), "hostname": ident["hostname"].upper()})
    assert [c.result for c in checks] == ["match", "match"]
    assert fh.identity_problem(checks, [], ident) == ""


def test_a_short_name_matches_a_fully_qualified_one():
    checks = fh.identity_check({"hostname": "web-01.contoso.com"}, {"hostname": "WEB-01"})
    assert checks[0].result == "match"
    assert fh.identity_check({"hostname": "web-01.contoso.com"}, {"hostname": "web-02"})[0].result == "mismatch"


def test_uuids_compare_without_case_or_braces():
    ident = {"smbios_uuid": "4C4C4544-0042-3510-8052-B4C04F4E4D32"}
    assert fh.identity_check(ident, {"smbios_uuid": "{4c4c4544-0042-3510-8052-b4c04f4e4d32}"})[0].result == "match"


def test_another_machines_bundle_is_a_mismatch_with_the_reason(bundles):
    expected = host_of(bundles["healthy"])["vmId"]
    ident = host_of(bundles["healthy2"])                  # another VM answered at that address
    checks = fh.identity_check(ident, {"vmId": expected})
    assert checks[0].result == "mismatch" and checks[0].found == ident["vmId"]
    problem = fh.identity_problem(checks, [], ident)
    assert f"the inventory expects vmId {expected!r}" in problem and repr(ident["vmId"]) in problem


def test_a_field_the_bundle_lacks_is_unverified_not_a_mismatch(bundles):
    # IMDS did not answer: no vmId - exactly the hosts whose report matters most
    ident = host_of(bundles["silent"])
    assert ident["vmId"] is None
    checks = fh.identity_check(ident, {"vmId": "2f6c1c2e-1b7a-4d7e-9a49-0c1e4d5f6a7b"})
    assert checks[0].result == "unverified"
    assert fh.identity_problem(checks, [], ident) == ""
    notes = fh.identity_notes("web-01", checks, ident)
    assert any("vmId not in the bundle" in n for n in notes)


def test_two_inventory_names_reaching_one_machine_are_caught(bundles):
    healthy = host_of(bundles["healthy"])
    twins = fh.same_machines({"web-01": healthy, "web-01-by-ip": healthy, "web-02": host_of(bundles["healthy2"]),
                              "db-01": host_of(bundles["no-identity"])})
    assert twins == {"web-01": ["web-01-by-ip"], "web-01-by-ip": ["web-01"]}
    problem = fh.identity_problem([], twins["web-01"], healthy)
    assert "the same machine as web-01-by-ip" in problem and healthy["vmId"] in problem


@pytest.mark.parametrize("a, b, same", [
    # one physical host, namespaces or containers with their own vmIds and names: not the same machine
    ({"vmId": "v1", "smbios_uuid": "S", "hostname": "vm1"}, {"vmId": "v2", "smbios_uuid": "S", "hostname": "vm2"}, False),
    # IMDS silent on one side: the same SMBIOS UUID alone is not enough ...
    ({"vmId": None, "smbios_uuid": "S", "hostname": "vm1"}, {"vmId": "v2", "smbios_uuid": "S", "hostname": "vm2"}, False),
    # ... the same SMBIOS UUID and host name is
    ({"vmId": None, "smbios_uuid": "S", "hostname": "vm1"}, {"vmId": None, "smbios_uuid": "s", "hostname": "VM1"}, True),
    ({"vmId": None, "smbios_uuid": None, "hostname": "vm1"}, {"vmId": None, "smbios_uuid": None, "hostname": "vm1"}, False),
    ({"vmId": "V1"}, {"vmId": "v1"}, True),
])
def test_what_counts_as_one_machine(a, b, same):
    assert bool(fh.same_machines({"a": a, "b": b})) is same


def test_an_inventory_alias_is_noted(bundles):
    ident = host_of(bundles["healthy"])
    assert fh.identity_notes("web-01", (), ident) == (f"inventory name 'web-01', collected on {ident['hostname']!r}",)
    assert fh.identity_notes(ident["hostname"].upper(), (), ident) == ()
