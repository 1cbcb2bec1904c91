"""pyproject.toml and environment.yml describe the same environment; the quick CLI path stays light."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _spec(requirement: str) -> str:
    return requirement.strip()[len(_name(requirement)):].split(";")[0].replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): _spec(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d): _spec(d) for d in env["dependencies"] if isinstance(d, str) and _name(d) not in ("python", "pip")}
    assert conda == wanted
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "") == project["requires-python"]
    assert "conda-forge" in env["channels"]


def test_console_script_and_module_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["imds-runbook"] == "imds_helpers.cli:main"
    out = subprocess.run([sys.executable, "-m", "imds_helpers", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("imds-runbook ")


def test_check_path_does_not_import_pandas_or_jupyter():
    code = (
        "import sys; from imds_helpers import cli; cli.build_parser('check');"
        "import imds_helpers.api, imds_helpers.check_cli;"
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
