"""Fixtures for the emulator's protocol tests: emulators that always close, a raw HTTP client."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from emu_client import Client
from imds_helpers.emulator import Emulator


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """Factory: ``make_emulator(mode=..., scenario=..., ...)``; all are closed at teardown."""
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("rate_limits", False)
        emu = Emulator(**kwargs)
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.close()


@pytest.fixture
def vm(make_emulator) -> Emulator:
    return make_emulator(mode="vm")


@pytest.fixture
def arc(make_emulator) -> Emulator:
    return make_emulator(mode="arc")


@pytest.fixture
def client() -> Callable[[Emulator], Client]:
    return lambda emu: Client(emu.base_url)


@pytest.fixture
def vmc(vm) -> Client:
    return Client(vm.base_url)


@pytest.fixture
def arcc(arc) -> Client:
    return Client(arc.base_url)
