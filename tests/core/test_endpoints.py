"""imds_helpers/model/endpoints.py holds every address, port, path, api-version, audience and
environment-variable name once. No other module of the package (the emulator aside: it is an
independent implementation of the protocol and keeps its own) writes one of those values in
code: a string constant without whitespace (a URL, path, query, host) that contains one, a
string equal to one, or the HIMDS port as a number. Prose for a human (docstrings, messages,
the catalog's explanations and fixes, which contain spaces) may still spell them out."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from imds_helpers.analyze import arc, metadata, network, platform, tokens
from imds_helpers.collect import arc_keyfile
from imds_helpers.model import endpoints
from imds_helpers.runbooks import primer

from source_scan import docstring_ids

PACKAGE = Path(endpoints.__file__).resolve().parents[1]
ENDPOINTS = Path(endpoints.__file__).resolve()

# Values a code string must not contain (outside prose).
CONTAINED = (
    endpoints.IMDS_ADDRESS,
    f"{endpoints.HIMDS_HOST}:{endpoints.HIMDS_PORT}",
    endpoints.INSTANCE_PATH,
    endpoints.VERSIONS_PATH,
    endpoints.TOKEN_PATH,
    endpoints.INSTANCE_API_VERSION,
    endpoints.TOKEN_API_VERSION,
    endpoints.ARC_API_VERSION,
    endpoints.COMMAND_API_VERSION,
    *endpoints.AUDIENCE_LABELS,              # management.azure.com, monitor.azure.com
    endpoints.ARC_TOKENS_DIR_LINUX,
    endpoints.ARC_ENV_DROPIN,
    endpoints.HIMDS_BINARY_LINUX,
    endpoints.HIMDS_BINARY_WINDOWS_SUBPATH,
)
# Values a code string must not equal (variable names appear inside prose and other names).
EQUAL = (
    endpoints.OVERRIDE_ENV,
    endpoints.IDENTITY_ENDPOINT_ENV,
    endpoints.IMDS_ENDPOINT_ENV,
    endpoints.IDENTITY_HEADER_ENV,
    endpoints.IDENTITY_SERVER_THUMBPRINT_ENV,
    endpoints.MSI_ENDPOINT_ENV,
    endpoints.MSI_SECRET_ENV,
    endpoints.ARC_TOKENS_SUBDIR_WINDOWS[0],
)
NUMBERS = (endpoints.HIMDS_PORT,)


def _skipped(tree: ast.AST) -> set[int]:
    """Docstrings, and the names listed in ``__all__`` (identifiers, not values)."""
    ids = docstring_ids(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            ids.update(id(n) for n in ast.walk(node.value))
    return ids


def offences(source: str) -> list[tuple[int, object]]:
    """(line, value) of every endpoint value written in code in ``source``."""
    tree = ast.parse(source)
    skipped = _skipped(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in skipped:
            continue
        value = node.value
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value in NUMBERS:
            found.append((node.lineno, value))
        elif isinstance(value, str):
            if value in EQUAL or value in CONTAINED:
                found.append((node.lineno, value))
            elif not any(c.isspace() for c in value) and any(v in value for v in CONTAINED):
                found.append((node.lineno, value))
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if "emulator" not in p.relative_to(PACKAGE).parts and p.resolve() != ENDPOINTS)


def test_no_module_but_endpoints_writes_an_endpoint_value():
    bad = {str(p.relative_to(PACKAGE)): hits for p in _modules() if (hits := offences(p.read_text(encoding="utf-8")))}
    assert not bad, f"use imds_helpers.model.endpoints instead of these literals: {bad}"


def test_the_scan_covers_the_package():
    names = {p.name for p in _modules()}
    assert {"arc.py", "platform.py", "proxy.py", "network.py", "tokens.py", "primer.py", "metadata.py"} <= names
    assert "endpoints.py" not in names


@pytest.mark.parametrize("source", [
    'URL = "http://169.254.169.254"',
    'url = base + "/metadata/instance?api-version=2021-02-01"',
    'params = {"api-version": "2018-02-01"}',
    'x = f"http://{host}:{port}/metadata/identity/oauth2/token"',
    'arc = port == 40342',
    'AUDIENCE = "https://monitor.azure.com/"',
    'value = env.get("IDENTITY_ENDPOINT")',
    'DIR = ("AzureConnectedMachineAgent", "Tokens")',
    'def f(resource="https://management.azure.com/"):\n    pass',
])
def test_the_scan_finds_a_value_written_back(source):
    assert offences(source)


@pytest.mark.parametrize("source", [
    '"""Docstring: IMDS at http://169.254.169.254, HIMDS at http://localhost:40342."""',
    'def f():\n    """Reads IDENTITY_ENDPOINT (http://localhost:40342/metadata/identity/oauth2/token)."""',
    'raise ValueError("must be a URL such as http://169.254.169.254")',
    'detail = f"{name} is not set; expected http://localhost:40342 here"',
    '__all__ = ["IMDS_ENDPOINT", "HIMDS_ENDPOINT"]',
    'x = endpoints.IMDS_BASE_URL + endpoints.INSTANCE_PATH',
])
def test_prose_and_names_are_not_offences(source):
    assert offences(source) == []


def test_endpoints_imports_nothing_from_the_package():
    tree = ast.parse(ENDPOINTS.read_text(encoding="utf-8"))
    imported = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in imported)


def test_the_values_are_consistent():
    assert endpoints.IMDS_BASE_URL == f"http://{endpoints.IMDS_ADDRESS}"
    assert endpoints.HIMDS_BASE_URL == f"http://{endpoints.HIMDS_HOST}:{endpoints.HIMDS_PORT}"
    assert endpoints.HIMDS_TOKEN_URL == endpoints.HIMDS_BASE_URL + endpoints.TOKEN_PATH
    for audience in (endpoints.MANAGEMENT, endpoints.MONITOR):
        assert audience.startswith("https://") and audience.endswith("/")
        assert audience[len("https://"):-1] in endpoints.AUDIENCE_LABELS


def test_the_old_names_are_the_same_values():
    """The public names tests and notebooks use stay importable, as aliases of endpoints.py's."""
    assert tokens.MANAGEMENT is arc.MANAGEMENT is primer.MANAGEMENT is endpoints.MANAGEMENT
    assert tokens.MONITOR is endpoints.MONITOR
    assert tokens.TOKEN_PATH is arc.TOKEN_PATH is endpoints.TOKEN_PATH
    assert tokens.VM_TOKEN_API_VERSION is endpoints.TOKEN_API_VERSION
    assert arc.ARC_API_VERSION is endpoints.ARC_API_VERSION
    assert arc.DEFAULT_ENDPOINT is platform.HIMDS_ENDPOINT is endpoints.HIMDS_BASE_URL
    assert arc.ARC_PORT == platform.HIMDS_PORT == endpoints.HIMDS_PORT
    assert arc.ENV_DROPIN is endpoints.ARC_ENV_DROPIN
    assert arc.HIMDS_BINARY_LINUX is platform.LINUX_HIMDS is endpoints.HIMDS_BINARY_LINUX
    assert platform.IMDS_ENDPOINT is endpoints.IMDS_BASE_URL
    assert platform.OVERRIDE_ENV is endpoints.OVERRIDE_ENV
    assert network.IMDS_ADDRESS is endpoints.IMDS_ADDRESS
    assert metadata.INSTANCE_PATH is endpoints.INSTANCE_PATH and metadata.VERSIONS_PATH is endpoints.VERSIONS_PATH
    assert metadata.SEED_API_VERSION is endpoints.INSTANCE_API_VERSION
    assert arc_keyfile.LINUX_TOKENS_DIR is endpoints.ARC_TOKENS_DIR_LINUX
    assert arc_keyfile.WINDOWS_TOKENS_SUBDIR is endpoints.ARC_TOKENS_SUBDIR_WINDOWS
