"""The emulated machine: its ids, tenant and managed identities (one per Emulator).

Ids are random per Emulator so that two emulators never look like the same machine, but
stable for one Emulator's lifetime: switching scenarios only changes *which* identities are
assigned (the first ``user_assigned`` of a pool of three), never their ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


def _guid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class ManagedIdentity:
    kind: str            # "system" | "user"
    client_id: str       # appid claim
    object_id: str       # oid / sub claims (principal id)
    msi_res_id: str      # ARM id (user-assigned) or the machine's id (system-assigned)
    name: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "client_id": self.client_id,
                "object_id": self.object_id, "msi_res_id": self.msi_res_id}


@dataclass(frozen=True)
class Machine:
    mode: str                      # "vm" | "arc"
    os_type: str = "Linux"         # "Linux" | "Windows"
    tenant_id: str = field(default_factory=_guid)
    subscription_id: str = field(default_factory=_guid)
    resource_group: str = "rg-imds-emulator"
    name: str = "imds-emulator-vm"
    vm_id: str = field(default_factory=_guid)
    location: str = "westeurope"
    system: ManagedIdentity | None = None
    pool: tuple[ManagedIdentity, ...] = ()

    @property
    def resource_id(self) -> str:
        provider = ("Microsoft.HybridCompute/machines" if self.mode == "arc"
                    else "Microsoft.Compute/virtualMachines")
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/{provider}/{self.name}")


UAMI_POOL_SIZE = 3


def new_machine(mode: str, os_type: str = "Linux") -> Machine:
    sub = _guid()
    rg = "rg-imds-emulator"
    name = "imds-emulator-arc" if mode == "arc" else "imds-emulator-vm"
    machine = Machine(mode=mode, os_type=os_type, subscription_id=sub, resource_group=rg, name=name)
    system = ManagedIdentity("system", _guid(), _guid(), machine.resource_id, name=name)
    pool = tuple(
        ManagedIdentity(
            "user", _guid(), _guid(),
            f"/subscriptions/{sub}/resourcegroups/{rg}/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/uami-emulator-{i + 1}",
            name=f"uami-emulator-{i + 1}",
        )
        for i in range(UAMI_POOL_SIZE)
    )
    return Machine(mode=mode, os_type=os_type, tenant_id=machine.tenant_id, subscription_id=sub,
                   resource_group=rg, name=name, vm_id=machine.vm_id, location=machine.location,
                   system=system, pool=pool)
