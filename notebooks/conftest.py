"""nbval runs the committed runbooks against emulators that own the REAL endpoints
(169.254.169.254:80 and localhost:40342), so the notebooks run with their real defaults.
That is only possible in tests/isolated.sh's private network namespace; elsewhere the VM
and Arc runbooks are skipped with the reason."""

from __future__ import annotations

import os

import pytest

NEEDS_REAL_ENDPOINTS = ("01_azure_vm_imds.ipynb", "02_arc_himds.ipynb")
_running: list = []


def _needs_endpoints(item) -> bool:
    return item is not None and os.path.basename(str(item.fspath)) in NEEDS_REAL_ENDPOINTS


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Started for the runbooks' cells only: other tests bind the same real addresses.
    if _running or not _needs_endpoints(item) or os.environ.get("IMDS_RUNBOOK_NETNS") != "1":
        return
    from imds_helpers.emulator import Emulator

    _running.append(Emulator(mode="vm", host="169.254.169.254", port=80).__enter__())
    _running.append(Emulator(mode="arc", host="127.0.0.1", port=40342, key_dir="/var/opt/azcmagent/tokens").__enter__())


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if not _needs_endpoints(nextitem):
        while _running:
            _running.pop().close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("IMDS_RUNBOOK_NETNS") == "1":
        return
    skip = pytest.mark.skip(reason="needs the private network namespace (tests/isolated.sh) to own the real endpoints")
    for item in items:
        if os.path.basename(str(item.fspath)) in NEEDS_REAL_ENDPOINTS:
            item.add_marker(skip)
