"""Fixtures for the emulator's protocol tests: emulators that always close, a raw HTTP client."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from emu_client import Client
from imds_helpers.emulator import Emulator


@pytest.fixture
def make_emulator(make_emulator) -> Callable[..., Emulator]:
    """The suite's factory, with rate limits off unless a test asks for them: protocol tests
    send requests back to back."""

    def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("rate_limits", False)
        return make_emulator(**kwargs)

    return make


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
