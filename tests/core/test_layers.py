"""The package's import directions, read from the source (every import statement, also those
inside functions): the design a newcomer reads from the folders, kept by a test.

    model/, parsers/   finding codes, taxonomy, errors, endpoints, results, the evidence model;
                       what commands print, parsed - pure
    analyze/           the checks, the pipeline and the analysis of a bundle - pure: they ask a
                       host, never the machine
    collect/           the live host, the transport, the HTTP client, host commands, the Arc
                       key-file reader
    emulator/          an independent implementation of the protocol
    runbooks/, fleet/, cli/, api   what users run: may use any layer

A layer imports only the layers in its row of ALLOWED; analysis never imports the
machine-touching standard-library modules in MACHINE; no layer but the apps imports the Jupyter
stack; only the training hooks (TRAINING) import the emulator.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "imds_helpers"

LAYERS = {                       # folder (or top-level module) -> layer
    "model": ("__init__", "model", "parsers"),
    "rules": ("analyze",),
    "collect": ("collect",),
    "emulator": ("emulator",),
}
ALLOWED = {
    "model": {"model"},
    "rules": {"model", "rules"},
    # collection asks the checks' questions of the live machine: it runs the pipeline (see collect/)
    "collect": {"model", "rules", "collect"},
    "emulator": {"emulator", "model"},
    "app": {"model", "rules", "collect", "emulator", "app"},
}
# Standard-library modules that touch the machine: never in the model or the analysis.
MACHINE = {"subprocess", "socket.socket", "http.client", "glob", "pwd", "grp", "time", "winreg", "shutil", "tempfile"}
THIRD_PARTY = {"pandas", "papermill", "nbconvert", "nbformat", "nbclient", "jupyter_client", "ipykernel", "IPython",
               "jupyterlab", "matplotlib", "yaml", "requests", "urllib3", "numpy"}
# the hooks that start an emulator for training runs
TRAINING = {"imds_helpers.runbooks.runbook", "imds_helpers.runbooks.fault_lab", "imds_helpers.cli.lab",
            "imds_helpers.cli.demo"}   # fault_lab: the blind lab starts an emulator per case


def layer_of(module: str) -> str:
    """``imds_helpers.x.y`` -> its layer (folders and modules not in LAYERS are apps)."""
    top = module.split(".")[1] if module.count(".") else "__init__"
    return next((layer for layer, names in LAYERS.items() if top in names), "app")


def imports(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (``from a import b`` also gives ``a.b``)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = "imds_helpers." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level)[0] if not path.name == "__init__.py" else \
                    package.rsplit(".", node.level)[0]
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def graph() -> dict[str, set[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "imds_helpers." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        found[module.removesuffix(".__init__")] = imports(path)
    return found


def violations(modules: dict[str, set[str]]) -> list[str]:
    problems = []
    known = set(modules)
    for module, names in modules.items():
        layer = layer_of(module)
        for name in sorted(names):
            if name.startswith("imds_helpers."):
                # "from imds_helpers.x import name": the module is imds_helpers.x unless name is a module
                target = name if name in known else name.rsplit(".", 1)[0]
                target_layer = layer_of(target)
                if target_layer not in ALLOWED[layer]:
                    problems.append(f"{module} ({layer}) imports {name} ({target_layer})")
                if target_layer == "emulator" and layer == "app" and module not in TRAINING:
                    problems.append(f"{module} imports {name} (only the training hooks {sorted(TRAINING)} may)")
            elif layer in ("model", "rules", "collect", "emulator") and name.split(".")[0] in THIRD_PARTY:
                problems.append(f"{module} ({layer}) imports {name} (third-party)")
            elif layer in ("model", "rules") and (name in MACHINE or name.split(".")[0] in MACHINE):
                problems.append(f"{module} ({layer}) imports {name} (touches the machine)")
    return problems


def test_the_package_keeps_its_import_directions():
    assert violations(graph()) == []


def test_every_layer_has_its_modules():
    modules = graph()
    for layer, names in LAYERS.items():
        for name in names:
            assert name == "__init__" or any(m.startswith(f"imds_helpers.{name}.") for m in modules), name
    assert {m for m in modules if m.count(".") == 1} == {"imds_helpers.api", "imds_helpers.__main__"} | {
        f"imds_helpers.{folder}" for folder in ("model", "parsers", "analyze", "collect", "emulator", "runbooks",
                                               "fleet", "cli")}, "a module outside the folders"


@pytest.mark.parametrize("module, added, why", [
    ("imds_helpers.analyze", "imds_helpers.collect.transport", "(collect)"),
    ("imds_helpers.analyze", "imds_helpers.collect", "(collect)"),
    ("imds_helpers.analyze.network", "subprocess", "touches the machine"),
    ("imds_helpers.analyze.tokens", "time", "touches the machine"),
    ("imds_helpers.analyze.pipeline", "pandas", "third-party"),
    ("imds_helpers.model.evidence", "imds_helpers.analyze.pipeline", "(rules)"),
    ("imds_helpers.emulator.server", "imds_helpers.analyze.network", "(rules)"),
    ("imds_helpers.fleet.report", "imds_helpers.emulator", "only"),
    ("imds_helpers.collect.hostcmd", "jupyter_client", "third-party"),
])
def test_a_forbidden_import_is_caught(module, added, why):
    """Test the test: one forbidden import added to the real graph is reported."""
    modules = graph()
    modules[module] = modules[module] | {added}
    found = violations(modules)
    assert len(found) == 1 and added in found[0] and why in found[0], found
