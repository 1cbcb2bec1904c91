"""Fixtures for the fleet tests: a fleet of namespace VMs over real SSH (tests/fleet/rig.py).

They skip, naming the missing capability, where the machine cannot build the VMs (outside
tests/isolated.sh, not root, no `ip netns`, no sshd) or has no ansible-playbook."""

from __future__ import annotations

from typing import Iterator

import pytest

from .rig import DEFAULT_VMS, Rig, fleet, unavailable


def skip_unless_fleet(vms=DEFAULT_VMS, *, ansible: bool = True) -> None:
    reason = unavailable(vms, ansible=ansible)
    if reason:
        pytest.skip(f"fleet rig: {reason}")


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> Iterator[Rig]:
    """The default fleet (every kind of VM in rig.KINDS), up for one test module."""
    skip_unless_fleet()
    with fleet(tmp_path_factory.mktemp("fleet")) as up:
        yield up
