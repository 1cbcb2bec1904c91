"""Emulated Azure IMDS and Arc HIMDS with fault-injection scenarios.

    from imds_helpers.emulator import Emulator, SCENARIOS
    with Emulator(mode="vm", scenario="vm-healthy") as emu:
        ...  # emu.base_url, emu.canary, emu.set_scenario("vm-throttled"), emu.request_log

Behaviour follows ``imds-protocol.md``; undocumented behaviour is a named ``# CHOICE:`` in
:mod:`imds_helpers.emulator.protocol` (and a few in the modules next to it). Standard library
only; ``Emulator`` (and ``http.server``) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imds_helpers.emulator.scenarios import DEFAULT_SCENARIO, SCENARIOS, Scenario, get_scenario

if TYPE_CHECKING:  # pragma: no cover
    from imds_helpers.emulator.server import Emulator

__all__ = ["Emulator", "SCENARIOS", "Scenario", "DEFAULT_SCENARIO", "get_scenario"]


def __getattr__(name: str) -> Any:
    if name == "Emulator":
        from imds_helpers.emulator.server import Emulator

        return Emulator
    raise AttributeError(name)
