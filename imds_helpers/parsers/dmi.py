"""SMBIOS/DMI values: the Azure chassis asset tag and the system UUID.

``7783-7084-3265-9085-8269-3286-77`` is "MSFT AZURE VM" in decimal ASCII; cloud-init,
ds-identify and systemd's hwdb use it as the Azure marker. Vendor strings are not proof:
"Microsoft Corporation" / "Virtual Machine" is any Hyper-V guest, and some Azure VMs report
an AMI BIOS vendor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

AZURE_CHASSIS_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
HYPERV_VENDOR = "Microsoft Corporation"
HYPERV_PRODUCT = "Virtual Machine"


@dataclass(frozen=True)
class DmiValue:
    """One sysfs DMI value, classified."""

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


_UUID_HEX = re.compile(r"[0-9a-fA-F]{32}")
_HYPHENATED_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def canonical_uuid(text: str) -> str | None:
    """``text`` as a lower-case hyphenated UUID, or None. Accepts what ``uuid.UUID`` accepts
    (braces, ``urn:uuid:``, hyphens anywhere) without importing it: ``uuid`` pulls in the
    ``platform`` module, a few milliseconds on every start of the quick check."""
    digits = (text or "").strip().replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "")
    if not _UUID_HEX.fullmatch(digits):
        return None
    d = digits.lower()
    return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:]}"


def swap_uuid_fields(canonical: str) -> str:
    """The same UUID with its first three fields byte-reversed (little-endian ``bytes_le``
    read as big-endian), as Gen1 VMs' SMBIOS stores Azure's vmId. Its own inverse."""
    def reverse_bytes(field: str) -> str:
        return "".join(field[i:i + 2] for i in range(len(field) - 2, -1, -2))

    first, second, third, rest = canonical.split("-", 3)
    return f"{reverse_bytes(first)}-{reverse_bytes(second)}-{reverse_bytes(third)}-{rest}"


def vmid_candidates(system_uuid: str, *, gen2: bool | None = None) -> tuple[str, ...]:
    """The Azure ``vmId`` this SMBIOS UUID corresponds to, for a cross-check with IMDS.

    Generation 1 (BIOS) VMs store the first three UUID fields byte-swapped; generation 2
    (UEFI) VMs do not (cloud-init ``sources/azure/identity.py``). When the generation is
    unknown both candidates are returned, the as-is form first.
    """
    text = (system_uuid or "").strip()
    as_is = canonical_uuid(text) if _HYPHENATED_UUID.match(text) else None
    if as_is is None:
        return ()
    swapped = swap_uuid_fields(as_is)
    if gen2 is True:
        return (as_is,)
    if gen2 is False:
        return (swapped,)
    return (as_is, swapped) if swapped != as_is else (as_is,)
