"""pyproject.toml and environment.yml describe the same environment; the quick CLI path stays light."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _spec(requirement: str) -> str:
    return requirement.strip()[len(_name(requirement)):].split(";")[0].replace(" ", "")


def test_environment_yml_matches_pyproject():
    # environment.yml is the whole environment: the core's dependencies and every extra.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    wanted = {_name(r): _spec(r) for r in requirements}
    assert len(wanted) == len(requirements)   # each package in one place
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str) and _name(d) not in ("python", "pip")]
    assert {_name(d): _spec(d) for d in conda} == wanted and len(conda) == len(wanted)
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "") == project["requires-python"]
    assert "conda-forge" in env["channels"]


def test_core_has_no_dependencies_and_cli_knows_every_runtime_extra():
    """`pip install imds-runbook` is standard-library only; cli.EXTRAS (what a command checks
    for) lists exactly the packages of each runtime extra."""
    from imds_helpers.cli import COMMANDS, EXTRAS

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == []
    extras = project["optional-dependencies"]
    assert set(extras) == set(EXTRAS) | {"test"}
    assert {name: {_name(r) for r in extras[name]} for name in EXTRAS} == {n: set(d) for n, d in EXTRAS.items()}
    assert {name: row[2] for name, row in COMMANDS.items() if row[2]} == {
        "demo": ("notebooks",), "lab": ("notebooks", "lab"), "run": ("notebooks",), "report": ("notebooks",),
        "fleet": ("notebooks", "fleet")}


def test_missing_extras_line():
    from imds_helpers.cli import missing_extras

    assert missing_extras(["notebooks", "lab"], installed=lambda module: True) is None
    assert missing_extras([], installed=lambda module: False) is None
    assert missing_extras(["notebooks", "lab"], installed=lambda module: module not in ("yaml", "jupyterlab")) == (
        "needs the 'notebooks' and 'lab' extras: pip install 'imds-runbook[notebooks,lab]' (missing: pyyaml, jupyterlab)")
    assert missing_extras(["notebooks", "lab"], installed=lambda module: module != "pandas") == (
        "needs the 'notebooks' extra: pip install 'imds-runbook[notebooks]' (missing: pandas)")


def test_an_extras_module_missing_at_run_time_is_one_line(monkeypatch, capsys):
    # A command whose module needs a package of an extra it does not declare (or one that went
    # away after the check) still ends in the one line, exit 2; any other import error is a bug
    # and stays a traceback.
    import types

    from imds_helpers import cli

    def run(args):
        raise ModuleNotFoundError("No module named 'pandas.core'", name="pandas.core")

    fake = types.SimpleNamespace(configure=lambda parser: None, run=run)
    monkeypatch.setitem(sys.modules, "imds_fake_command", fake)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("imds_fake_command", "a fake", ()))
    assert cli.main(["fake"]) == 2
    assert capsys.readouterr().err == (
        "imds-runbook fake: needs the 'notebooks' extra: pip install 'imds-runbook[notebooks]' (missing: pandas)\n")

    def run_other(args):
        raise ModuleNotFoundError("No module named 'nosuch'", name="nosuch")

    monkeypatch.setattr(fake, "run", run_other)
    with pytest.raises(ModuleNotFoundError):
        cli.main(["fake"])


def test_console_script_and_module_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["imds-runbook"] == "imds_helpers.cli:main"
    out = subprocess.run([sys.executable, "-m", "imds_helpers", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("imds-runbook ")


def test_check_path_does_not_import_pandas_or_jupyter():
    code = (
        "import sys; from imds_helpers import cli; cli.build_parser('check');"
        "import imds_helpers.api, imds_helpers.cli.check;"
        "heavy=[m for m in ('pandas','papermill','nbformat','nbconvert','jupyter_client','IPython') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))] == ["make test"]


def test_check_in_process_switches_garbage_collection_back_on(make_emulator, capsys):
    # The quick check pauses the cyclic collector for its short run; a caller in the same
    # process (a test, a notebook) must get it back.
    import gc

    from imds_helpers.cli import main

    emu = make_emulator(mode="vm", rate_limits=False)
    assert gc.isenabled()
    assert main(["check", "--target", "vm", "--endpoint", emu.base_url, "--json"]) in (0, 1)
    assert gc.isenabled()
    assert '"verdict"' in capsys.readouterr().out


def test_license_is_an_spdx_string_setuptools_accepts():
    """A TOML-table license is deprecated by setuptools (a warning on every install); the SPDX
    string form needs setuptools 77 (PEP 639) in the build environment."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["license"] == "MIT"
    assert data["build-system"]["requires"] == ["setuptools>=77"]
