"""Pure parts of the instance and token steps."""

from __future__ import annotations

from imds_helpers.collect.http import Outcome
from imds_helpers.analyze.metadata import instance_evidence, vmid_matches_smbios
from imds_helpers.analyze.tokens import Identity, parse_ama_identity

IMDS = Outcome(attempts=(), status=200, headers={"Server": "IMDS/150.870.65.1", "Content-Type": "application/json"})


def _doc(**compute):
    base = {"vmId": "02aab8a4-74ef-476e-8182-f6d2ba4166a6", "name": "vm", "location": "westus",
            "resourceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            "azEnvironment": "AzurePublicCloud", "osType": "Linux"}
    base.update(compute)
    return {"compute": base, "network": {"interface": [{"ipv4": {"ipAddress": [{"privateIpAddress": "10.0.0.4"}]}}]}}


def test_complete_document_has_no_problems():
    evidence = instance_evidence(_doc(), IMDS, service="vm", smbios_uuid=None)
    assert evidence["problems"] == [] and evidence["private_ips"] == ["10.0.0.4"]


def test_missing_fields_and_wrong_resource_type_are_problems():
    evidence = instance_evidence(_doc(resourceId="", location=""), IMDS, service="vm", smbios_uuid=None)
    assert "missing or empty: location, resourceId" in evidence["problems"]
    arc = instance_evidence(_doc(), IMDS, service="arc", smbios_uuid=None)
    assert any("HybridCompute" in p for p in arc["problems"])


def test_vmid_matches_smbios_in_both_byte_orders():
    vm_id = "02aab8a4-74ef-476e-8182-f6d2ba4166a6"
    assert vmid_matches_smbios(vm_id, vm_id.upper())
    assert vmid_matches_smbios(vm_id, "a4b8aa02-ef74-6e47-8182-f6d2ba4166a6")
    assert not vmid_matches_smbios(vm_id, "00000000-0000-0000-0000-000000000000")


def test_ama_identity_parsing():
    assert parse_ama_identity('export MANAGED_IDENTITY="mi_res_id#/subscriptions/s/x"\n') == Identity(
        "msi_res_id", "/subscriptions/s/x", "ama-config")
    assert parse_ama_identity("MANAGED_IDENTITY=client_id#abc") == Identity("client_id", "abc", "ama-config")
    assert parse_ama_identity("MANAGED_IDENTITY=\n") is None
    assert parse_ama_identity("OTHER=1") is None
    assert parse_ama_identity("MANAGED_IDENTITY=garbage") == "garbage"
    assert parse_ama_identity('MANAGED_IDENTITY="unterminated') == '"unterminated'
