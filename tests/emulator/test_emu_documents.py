"""Instance documents against the real captures (tests/fixtures/real/imds-instance/)."""

from __future__ import annotations

import pytest

from emu_client import key_tree, load_fixture, scalars
from imds_helpers.emulator import documents as D
from imds_helpers.emulator.model import new_machine


def _shape_diff(ours, real, path=""):
    """Differences of dict keys, recursively; lists compared by their first element."""
    out = []
    if isinstance(ours, dict) and isinstance(real, dict):
        for key in sorted(set(ours) | set(real)):
            if key not in ours:
                out.append(f"missing {path}{key}")
            elif key not in real:
                out.append(f"extra {path}{key}")
            else:
                out += _shape_diff(ours[key], real[key], f"{path}{key}.")
    elif isinstance(ours, list) and isinstance(real, list):
        if ours and real:
            out += _shape_diff(ours[0], real[0], f"{path}0.")
    elif type(ours) is not type(real):
        out.append(f"type {path}: {type(ours).__name__} vs {type(real).__name__}")
    return out


def test_linux_compute_matches_real_fixture_exactly_at_2021_12_13(vmc):
    """The OpenTelemetry detector asks for api-version 2021-12-13; same keys at every level."""
    ours = vmc.get("/metadata/instance/compute", {"api-version": "2021-12-13", "format": "json"}).json()
    real = load_fixture("otel_python_vm_compute_linux_trustedlaunch.json")
    assert _shape_diff(ours, real) == []
    assert key_tree(ours) == key_tree(real)


def test_windows_compute_matches_real_fixture_at_2021_12_13(make_emulator, client):
    c = client(make_emulator(os_type="Windows"))
    ours = c.get("/metadata/instance/compute", {"api-version": "2021-12-13"}).json()
    real = load_fixture("otel_python_vm_compute_windows_trustedlaunch.json")
    assert _shape_diff(ours, real) == []
    assert ours["osType"] == "Windows" and ours["storageProfile"]["osDisk"]["osType"] == "Windows"
    assert ours["publisher"] == "MicrosoftWindowsServer" and ours["offer"] == "WindowsServer"
    assert ours["publicKeys"] == []          # CHOICE: no SSH keys on Windows


def test_2018_02_01_shape_is_walinuxagents_capture(vmc):
    ours = vmc.instance(api_version="2018-02-01").json()
    real = load_fixture("walinuxagent_valid_2018_linux_ubuntu1604_full.json")
    assert set(ours["compute"]) == set(real["compute"])
    assert key_tree(ours["network"]) == key_tree(real["network"])


def test_2017_08_01_shape_is_the_live_capture(vmc):
    ours = vmc.instance(api_version="2017-08-01").json()
    real = load_fixture("hashicorp_consul_issue38_linux_2017-08-01_full.json")
    assert set(ours["compute"]) == set(real["compute"])
    assert key_tree(ours) == key_tree(real)


def test_network_matches_2019_capture(vmc):
    ours = vmc.instance("/network", api_version="2019-06-04").json()
    assert key_tree(ours) == key_tree(load_fixture("issue_azure-docs_44314_linux_network_2019-06-04.json"))


@pytest.mark.parametrize("field,introduced,before", [
    ("tagsList", "2019-06-04", "2019-06-01"),
    ("resourceId", "2019-03-11", "2019-02-01"),
    ("storageProfile", "2019-06-01", "2019-04-30"),
    ("userData", "2021-01-01", "2020-12-01"),
    ("securityProfile", "2020-06-01", "2019-11-01"),
    ("physicalZone", "2023-11-15", "2023-07-01"),
    ("platformSubFaultDomain", "2021-10-01", "2021-08-01"),
])
def test_fields_appear_only_from_their_version(vmc, field, introduced, before):
    assert field in vmc.instance("/compute", api_version=introduced).json()
    assert field not in vmc.instance("/compute", api_version=before).json()


def test_nested_fields_follow_versions(vmc):
    old = vmc.instance("/compute", api_version="2021-10-01").json()
    new = vmc.instance("/compute", api_version="2021-12-13").json()
    assert "securityType" not in old["securityProfile"] and "encryptionAtHost" not in old["securityProfile"]
    assert new["securityProfile"]["securityType"] == "TrustedLaunch"
    disk = vmc.instance("/compute", api_version="2021-03-01").json()["storageProfile"]["dataDisks"][0]
    assert "isUltraDisk" not in disk and "lun" in disk
    newest = vmc.instance("/compute", api_version="2025-04-07").json()
    assert "communityGalleryImageId" in newest["storageProfile"]["imageReference"]


def test_extended_true_adds_provisioning_block(vmc):
    doc = vmc.instance(api_version="2021-08-01", extended="true").json()
    assert doc["extended"]["compute"]["ppsType"] in ("None", "Running", "Savable")
    assert "extended" not in vmc.instance(api_version="2021-08-01").json()


def test_document_ids_are_consistent(vm, vmc):
    compute = vmc.instance("/compute").json()
    assert compute["resourceId"] == vm.resource_id
    assert compute["resourceId"].startswith(f"/subscriptions/{compute['subscriptionId']}/resourceGroups/")
    assert "/providers/Microsoft.Compute/virtualMachines/" in compute["resourceId"]
    assert compute["tags"] == ";".join(f"{t['name']}:{t['value']}" for t in compute["tagsList"])


def test_arc_document_shape(arc, arcc):
    r = arcc.get("/metadata/instance", {"api-version": "2020-06-01"})
    assert r.status == 200 and "Server" not in r.headers
    doc = r.json()
    c = doc["compute"]
    assert doc["network"] == {} and c["storageProfile"] == {} and c["publicKeys"] is None
    assert c["osType"] == "linux"
    assert "/providers/Microsoft.HybridCompute/machines/" in c["resourceId"]
    assert c["resourceId"] == arc.resource_id
    assert [p for p, v in scalars(doc) if not isinstance(v, str) and v is not None] == []


def test_arc_document_windows(make_emulator, client):
    c = client(make_emulator(mode="arc", os_type="Windows"))
    assert c.get("/metadata/instance/compute/osType", {"api-version": "2020-06-01", "format": "text"}).text == "windows"


def test_text_rendering_rules():
    assert D.as_text(None) == "" and D.as_text("x") == "x" and D.as_text(80) == "80"
    assert D.as_text({"a": {}, "b": "1", "c": []}) == "a/\nb\nc/"
    assert D.as_text([{"x": 1}, {"x": 2}]) == "0/\n1/"


def test_for_version_does_not_mutate():
    doc = D.vm_instance(new_machine("vm"))
    D.for_version(doc, "2017-04-02")
    assert "physicalZone" in doc["compute"]


def _paths(node, prefix=()):
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (str(i),))


def test_route_filtering_reaches_every_node(vmc):
    """Every node of the document by route: leaves as bare text, containers as JSON."""
    doc = vmc.instance(api_version="2025-04-07").json()
    count = 0
    for path, node in _paths(doc):
        sub = "".join("/" + p for p in path)
        if isinstance(node, (dict, list)):
            r = vmc.instance(sub, api_version="2025-04-07")
            assert r.status == 200 and r.json() == node, sub
        else:
            r = vmc.instance(sub, api_version="2025-04-07", format="text")
            assert r.status == 200 and r.text == node, sub
        count += 1
    assert count > 100
