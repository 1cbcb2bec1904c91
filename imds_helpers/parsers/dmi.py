"""SMBIOS/DMI values: the Azure chassis asset tag and the system UUID.

``7783-7084-3265-9085-8269-3286-77`` is "MSFT AZURE VM" in decimal ASCII; cloud-init,
ds-identify and systemd's hwdb use it as the Azure marker. Vendor strings are not proof:
"Microsoft Corporation" / "Virtual Machine" is any Hyper-V guest, and some Azure VMs report
an AMI BIOS vendor.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

AZURE_CHASSIS_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
HYPERV_VENDOR = "Microsoft Corporation"
HYPERV_PRODUCT = "Virtual Machine"


@dataclass(frozen=True)
class DmiValue:
    kind: str            # "value" | "empty" | "unrecognised"
    value: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}


def parse_dmi_value(text: str) -> DmiValue:
    """A sysfs DMI file or ``dmidecode -s <keyword>`` output (prompt and echo lines allowed)."""
    lines = [ln.strip() for ln in (text or "").splitlines()]
    values = [ln for ln in lines if ln and "dmidecode" not in ln and not ln.startswith("#")]
    if not values:
        return DmiValue(kind="empty" if not any(lines) else "unrecognised")
    value = values[0]
    if not value.isprintable() or len(value) > 256:
        return DmiValue(kind="unrecognised", value=value[:64].encode("unicode_escape").decode("ascii"))
    return DmiValue(kind="value", value=value)


def is_azure_asset_tag(value: str) -> bool:
    return value.strip() == AZURE_CHASSIS_ASSET_TAG


def looks_like_hyperv(vendor: str, product: str) -> bool:
    """Hyper-V guest (on Azure or anywhere else): a hint, never proof of Azure."""
    return vendor.strip() == HYPERV_VENDOR and product.strip() == HYPERV_PRODUCT


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def vmid_candidates(system_uuid: str, *, gen2: bool | None = None) -> tuple[str, ...]:
    """The Azure ``vmId`` this SMBIOS UUID corresponds to, for a cross-check with IMDS.

    Generation 1 (BIOS) VMs store the first three UUID fields byte-swapped; generation 2
    (UEFI) VMs do not (cloud-init ``sources/azure/identity.py``). When the generation is
    unknown both candidates are returned, the as-is form first.
    """
    text = (system_uuid or "").strip()
    if not _UUID.match(text):
        return ()
    raw = uuid.UUID(text)
    swapped = str(uuid.UUID(bytes_le=raw.bytes))
    as_is = str(raw)
    if gen2 is True:
        return (as_is,)
    if gen2 is False:
        return (swapped,)
    return (as_is, swapped) if swapped != as_is else (as_is,)
