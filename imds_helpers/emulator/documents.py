"""Instance-metadata documents and the other non-identity bodies (§1.4-1.10, §2.2).

The VM document follows the shape of the real captures (Microsoft's doc sample as kept by the
OpenTelemetry detector tests, WALinuxAgent's 2018 capture, a 2017 live capture): every scalar is
a string and absent values are ``""``. Fields newer than the requested api-version are left out
(``FIELD_INTRODUCED``), so a 2018-02-01 request gets the 2018 shape.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any

from imds_helpers.emulator.model import Machine

# Dotted path under the document -> first api-version that returns it [doc: D1 §1.4].
# "*" stands for every list element. Anything not listed exists since 2017-04-02.
FIELD_INTRODUCED: dict[str, str] = {
    "compute.placementGroupId": "2017-08-01",
    "compute.resourceGroupName": "2017-08-01",
    "compute.subscriptionId": "2017-08-01",
    "compute.tags": "2017-08-01",
    "compute.vmScaleSetName": "2017-12-01",
    "compute.zone": "2017-12-01",
    "compute.plan": "2018-04-02",
    "compute.publicKeys": "2018-04-02",
    "compute.azEnvironment": "2018-10-01",
    "compute.provider": "2018-10-01",
    "compute.customData": "2019-02-01",
    "compute.resourceId": "2019-03-11",
    "compute.storageProfile": "2019-06-01",
    "compute.tagsList": "2019-06-04",
    "compute.isHostCompatibilityLayerVm": "2020-06-01",
    "compute.securityProfile": "2020-06-01",
    "compute.osProfile": "2020-07-15",
    "compute.licenseType": "2020-09-01",
    "compute.osProfile.disablePasswordAuthentication": "2020-10-01",
    "compute.evictionPolicy": "2020-12-01",
    "compute.priority": "2020-12-01",
    "compute.userData": "2021-01-01",
    "compute.storageProfile.resourceDisk": "2021-02-01",
    "compute.extendedLocation": "2021-03-01",
    "compute.virtualMachineScaleSet": "2021-03-01",
    "compute.storageProfile.dataDisks.*.bytesPerSecondThrottle": "2021-05-01",
    "compute.storageProfile.dataDisks.*.diskCapacityBytes": "2021-05-01",
    "compute.storageProfile.dataDisks.*.isSharedDisk": "2021-05-01",
    "compute.storageProfile.dataDisks.*.isUltraDisk": "2021-05-01",
    "compute.storageProfile.dataDisks.*.opsPerSecondThrottle": "2021-05-01",
    "compute.platformSubFaultDomain": "2021-10-01",
    "compute.additionalCapabilities": "2021-11-01",
    "compute.securityProfile.encryptionAtHost": "2021-11-01",
    "compute.storageProfile.osDisk.encryptionSettings.diskEncryptionKey": "2021-11-01",
    "compute.storageProfile.osDisk.encryptionSettings.keyEncryptionKey": "2021-11-01",
    "compute.host": "2021-11-15",
    "compute.hostGroup": "2021-11-15",
    "compute.securityProfile.securityType": "2021-12-13",
    "compute.storageProfile.imageReference.communityGalleryImageId": "2023-07-01",
    "compute.storageProfile.imageReference.sharedGalleryImageId": "2023-07-01",
    # CHOICE: exactVersion appears next to the gallery ids in the doc sample; same version.
    "compute.storageProfile.imageReference.exactVersion": "2023-07-01",
    "compute.physicalZone": "2023-11-15",
}


def _disk(machine: Machine, name: str) -> dict[str, str]:
    return {"id": f"/subscriptions/{machine.subscription_id}/resourceGroups/{machine.resource_group}"
                  f"/providers/Microsoft.Compute/disks/{name}",
            "storageAccountType": "Premium_LRS"}


def vm_instance(machine: Machine) -> dict[str, Any]:
    """The newest-version VM document (Linux, or Windows when ``machine.os_type`` says so)."""
    windows = machine.os_type.lower() == "windows"
    sub, rg = machine.subscription_id, machine.resource_group
    if windows:
        image = {"offer": "WindowsServer", "publisher": "MicrosoftWindowsServer",
                 "sku": "2019-Datacenter", "version": "17763.6414.241004"}
    else:
        image = {"offer": "0001-com-ubuntu-server-jammy", "publisher": "canonical",
                 "sku": "22_04-lts-gen2", "version": "22.04.202410020"}
    os_type = "Windows" if windows else "Linux"
    compute: dict[str, Any] = {
        "additionalCapabilities": {"hibernationEnabled": "false"},
        "azEnvironment": "AzurePublicCloud",
        "customData": "",
        "evictionPolicy": "",
        "extendedLocation": {"name": "", "type": ""},
        "host": {"id": ""},
        "hostGroup": {"id": ""},
        "isHostCompatibilityLayerVm": "true",
        "licenseType": "",
        "location": machine.location,
        "name": machine.name,
        "offer": image["offer"],
        "osProfile": {
            "adminUsername": "azureuser",
            "computerName": machine.name,
            # CHOICE (open question 13): Linux-only setting, "" on Windows.
            "disablePasswordAuthentication": "" if windows else "true",
        },
        "osType": os_type,
        "physicalZone": f"{machine.location}-AZ02",
        "placementGroupId": "",
        "plan": {"name": "", "product": "", "publisher": ""},
        "platformFaultDomain": "0",
        "platformSubFaultDomain": "",
        "platformUpdateDomain": "0",
        "priority": "",
        "provider": "Microsoft.Compute",
        # CHOICE (open question 13): SSH keys are a Linux concept; Windows gets [].
        "publicKeys": [] if windows else [
            {"keyData": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC0emulator azureuser@imds-emulator",
             "path": "/home/azureuser/.ssh/authorized_keys"}],
        "publisher": image["publisher"],
        "resourceGroupName": rg,
        "resourceId": machine.resource_id,
        "securityProfile": {"encryptionAtHost": "false", "secureBootEnabled": "true",
                            "securityType": "TrustedLaunch", "virtualTpmEnabled": "true"},
        "sku": image["sku"],
        "storageProfile": {
            "dataDisks": [{
                "bytesPerSecondThrottle": "26214400", "caching": "ReadOnly", "createOption": "Attach",
                "diskCapacityBytes": "137438953472", "diskSizeGB": "128", "image": {"uri": ""},
                "isSharedDisk": "false", "isUltraDisk": "false", "lun": "0",
                "managedDisk": _disk(machine, f"{machine.name}-data0"),
                "name": f"{machine.name}-data0", "opsPerSecondThrottle": "500", "vhd": {"uri": ""},
                "writeAcceleratorEnabled": "false",
            }],
            "imageReference": {"communityGalleryImageId": "", "exactVersion": image["version"],
                               "id": "", "offer": image["offer"], "publisher": image["publisher"],
                               "sharedGalleryImageId": "", "sku": image["sku"], "version": "latest"},
            "osDisk": {
                "caching": "ReadWrite", "createOption": "FromImage", "diffDiskSettings": {"option": ""},
                "diskSizeGB": "30",
                "encryptionSettings": {
                    "enabled": "false",
                    "diskEncryptionKey": {"sourceVault": {"id": ""}, "secretUrl": ""},
                    "keyEncryptionKey": {"sourceVault": {"id": ""}, "keyUrl": ""},
                },
                "image": {"uri": ""}, "managedDisk": _disk(machine, f"{machine.name}-osdisk"),
                "name": f"{machine.name}-osdisk", "osType": os_type, "vhd": {"uri": ""},
                "writeAcceleratorEnabled": "false",
            },
            "resourceDisk": {"size": "16384"},
        },
        "subscriptionId": sub,
        "tags": "environment:emulator;owner:imds-runbook",
        "tagsList": [{"name": "environment", "value": "emulator"},
                     {"name": "owner", "value": "imds-runbook"}],
        "userData": "",
        "version": image["version"],
        "virtualMachineScaleSet": {"id": ""},
        "vmId": machine.vm_id,
        "vmScaleSetName": "",
        "vmSize": "Standard_D2s_v5",
        "zone": "2",
    }
    network = {"interface": [{
        "ipv4": {"ipAddress": [{"privateIpAddress": "10.0.0.4", "publicIpAddress": ""}],
                 "subnet": [{"address": "10.0.0.0", "prefix": "24"}]},
        "ipv6": {"ipAddress": []},
        "macAddress": "6045BDA1B2C3",
    }]}
    return {"compute": compute, "network": network}


def arc_instance(machine: Machine) -> dict[str, Any]:
    """The smaller HIMDS document [obs: T6]: lowercase osType, ``network: {}``, null keys."""
    os_name = "windows" if machine.os_type.lower() == "windows" else "linux"
    return {
        "compute": {
            "azEnvironment": "AzurePublicCloud", "isHostCompatibilityLayerVm": "",
            "location": machine.location, "name": machine.name, "offer": "", "osType": os_name,
            "placementGroupId": "", "plan": {"name": "", "product": "", "publisher": ""},
            "platformFaultDomain": "", "platformUpdateDomain": "", "provider": "",
            "publicKeys": None, "publisher": "", "resourceGroupName": machine.resource_group,
            "customData": "", "resourceId": machine.resource_id,
            "securityProfile": {"secureBootEnabled": "", "virtualTpmEnabled": ""},
            "sku": "Windows Server 2022 Datacenter" if os_name == "windows" else "Ubuntu 22.04.5 LTS",
            "storageProfile": {}, "subscriptionId": machine.subscription_id,
            "tags": "scenario:imds-emulator",
            "tagsList": [{"name": "scenario", "value": "imds-emulator"}],
            "version": "10.0.20348" if os_name == "windows" else "5.15.0-122-generic",
            "vmId": machine.vm_id, "vmScaleSetName": "", "vmSize": "", "zone": "",
        },
        "network": {},
    }


def for_version(doc: dict[str, Any], version: str) -> dict[str, Any]:
    """A copy of ``doc`` without the fields introduced after ``version``."""
    doc = copy.deepcopy(doc)
    for dotted, introduced in FIELD_INTRODUCED.items():
        if version < introduced:
            _drop(doc, dotted.split("."))
    return doc


def _drop(node: Any, parts: list[str]) -> None:
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(node, list):
            for item in node:
                _drop(item, rest)
        return
    if not isinstance(node, dict) or head not in node:
        return
    if rest:
        _drop(node[head], rest)
    else:
        del node[head]


def extended(doc: dict[str, Any]) -> dict[str, Any]:
    """``extended=true`` (cloud-init) adds ``extended.compute`` [doc: T5; obs: I12]."""
    doc = dict(doc)
    doc["extended"] = {"compute": {"ppsType": "None", "hasCustomData": "false"}}
    return doc


# --------------------------------------------------------------------------------------------
# Route filtering and format=text (§1.3)
# --------------------------------------------------------------------------------------------

_MISSING = object()


def walk(doc: Any, segments: list[str]) -> Any:
    """Follow path segments (object keys, case-sensitive; list indexes). ``_MISSING`` if absent."""
    node = doc
    for seg in segments:
        if isinstance(node, dict):
            if seg not in node:
                return _MISSING
            node = node[seg]
        elif isinstance(node, list):
            if not seg.isdigit() or int(seg) >= len(node):
                return _MISSING
            node = node[int(seg)]
        else:
            return _MISSING
    return node


def is_missing(value: Any) -> bool:
    return value is _MISSING


def is_leaf(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def as_text(value: Any) -> str:
    """``format=text``: a leaf is its bare value; ``null`` is "".

    CHOICE (open question 3): a non-leaf lists its children one per line, containers with a
    trailing "/" (``compute/``, ``0/``), as the Nomad fingerprint mock of IMDS does.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict):
        items = value.items()
    else:
        items = ((str(i), v) for i, v in enumerate(value))
    return "\n".join(f"{k}/" if isinstance(v, (dict, list)) else k for k, v in items)


# --------------------------------------------------------------------------------------------
# Other categories
# --------------------------------------------------------------------------------------------


def loadbalancer() -> dict[str, Any]:
    """[doc: D6]; ports are JSON numbers in the documented sample."""
    return {"loadbalancer": {
        "publicIpAddresses": [{"frontendIpAddress": "20.50.60.70", "privateIpAddress": "10.0.0.4"}],
        "inboundRules": [{"frontendIpAddress": "20.50.60.70", "protocol": "tcp", "frontendPort": 80,
                          "backendPort": 8080, "privateIpAddress": "10.0.0.4"}],
        "outboundRules": [{"frontendIpAddress": "20.50.60.71", "privateIpAddress": "10.0.0.4"}],
    }}


FAKE_SIGNATURE_PREFIX = b"IMDS-EMULATOR-FAKE-PKCS7 -- NOT A SIGNATURE, DO NOT TRUST\n"


def attested(machine: Machine, version: str, nonce: str | None, now: float | None = None) -> dict[str, str]:
    """``{"encoding":"pkcs7","signature":...}`` whose signature is *clearly fake*: base64 of a
    marker line followed by the JSON payload a real document would sign [doc: D1]."""
    now = time.time() if now is None else now
    fmt = "%m/%d/%y %H:%M:%S -0000"
    payload: dict[str, Any] = {
        "nonce": nonce or time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)),
        "plan": {"name": "", "product": "", "publisher": ""},
        "timeStamp": {"createdOn": time.strftime(fmt, time.gmtime(now)),
                      "expiresOn": time.strftime(fmt, time.gmtime(now + 6 * 3600))},
        "vmId": machine.vm_id,
    }
    if version >= "2019-04-30":
        payload["subscriptionId"] = machine.subscription_id
    if version >= "2019-11-01":
        payload["sku"] = vm_instance(machine)["compute"]["sku"]
    blob = FAKE_SIGNATURE_PREFIX + json.dumps(payload, separators=(",", ":")).encode()
    return {"encoding": "pkcs7", "signature": base64.b64encode(blob).decode("ascii")}


def scheduled_event(event_id: str, event_type: str = "Freeze", machine_name: str = "imds-emulator-vm",
                    not_before: float | None = None) -> dict[str, Any]:
    """One scheduled event [doc: D5] (``DurationInSeconds`` is a JSON number there)."""
    not_before = time.time() + 15 * 60 if not_before is None else not_before
    return {
        "EventId": event_id, "EventType": event_type, "ResourceType": "VirtualMachine",
        "Resources": [machine_name], "EventStatus": "Scheduled",
        "NotBefore": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(not_before)),
        "Description": "Host server is undergoing maintenance.", "EventSource": "Platform",
        "DurationInSeconds": 9,
    }
