"""`pip install imds-runbook` is the standard-library core (issue 14, install footprint).

The project's wheel, built here with the dev environment's setuptools (no build isolation, no
index: nothing is downloaded), is installed with ``--no-index --no-deps`` into a fresh venv that
has nothing else. There ``check`` and ``emulator`` work, and a command that needs an extra stops
with one line naming it. The endpoint is always a loopback port that was just closed.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = "papermill, nbconvert, ipykernel, pandas, matplotlib, pyyaml"


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # A copy of what the build reads, so that the build writes nothing into the work tree.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in ("imds_helpers", "notebooks", "parameters", "tools"):
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "results", "sample-results"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", str(source), "-w", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (built,) = out.glob("imds_runbook-*.whl")
    return built


@pytest.fixture(scope="module")
def core(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel; returns its bin folder."""
    prefix = tmp_path_factory.mktemp("core") / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(prefix)
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(prefix / "bin" / "python"), "install",
                           "-q", "--no-index", "--no-deps", str(wheel)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return prefix / "bin"


def _run(core: Path, *args: str, endpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": f"{core}:/usr/bin:/bin", "IMDS_RUNBOOK_ENDPOINT": endpoint or _closed_port_url()}
    proc = subprocess.run([str(core / "imds-runbook"), *args], capture_output=True, text=True, timeout=60,
                          cwd=core.parent, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_wheel_requires_nothing_unconditionally(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.M)
    assert requires and all(re.search(r";\s*extra == \"\w+\"$", r) for r in requires), requires
    assert set(re.findall(r"^Provides-Extra: (.*)$", metadata, re.M)) == {"notebooks", "lab", "fleet", "test"}


def test_the_venv_really_has_nothing_else(core):
    # What gives the other tests their meaning: no third-party package is importable there.
    code = ("import importlib.util, imds_helpers;"
            "print(imds_helpers.__file__);"
            "print([m for m in ('yaml', 'pandas', 'requests', 'papermill', 'pytest') if importlib.util.find_spec(m)])")
    proc = subprocess.run([str(core / "python"), "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=core.parent, env={"PATH": "/usr/bin:/bin"})
    location, found = proc.stdout.splitlines()
    assert Path(location).is_relative_to(core.parent) and found == "[]", proc.stdout


def test_version_and_check_help(core):
    version = _run(core, "--version")
    assert version.returncode == 0 and version.stdout.startswith("imds-runbook ")
    help_ = _run(core, "check", "--help")
    assert help_.returncode == 0 and "--target" in help_.stdout


def test_check_against_a_closed_port_reports_json_exit_1(core):
    proc = _run(core, "check", "--json", "--target", "vm", "--timeout", "1")
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["verdict"] == "fail", proc.stderr
    assert any(c["code"] == "IMDS-NET-012" for c in report["checks"])   # connection refused


def test_emulator_list(core):
    proc = _run(core, "emulator", "--list")
    assert proc.returncode == 0 and "vm-healthy" in proc.stdout and "arc-wrong-secret" in proc.stdout


@pytest.mark.parametrize("args,extras,missing", [
    (("report", "."), "notebooks", NOTEBOOKS),
    (("demo",), "notebooks", NOTEBOOKS),
    (("lab", "--dry-run"), "notebooks,lab", NOTEBOOKS + ", jupyterlab"),
])
def test_command_needing_an_extra_names_it_in_one_line(core, args, extras, missing):
    proc = _run(core, *args)
    names = " and ".join(f"'{e}'" for e in extras.split(","))
    what = f"the {names} extra{'s' if ',' in extras else ''}"
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"imds-runbook {args[0]}: needs {what}: "
                           f"pip install 'imds-runbook[{extras}]' (missing: {missing})\n")


def test_help_of_such_a_command_still_works(core):
    proc = _run(core, "report", "--help")
    assert proc.returncode == 0 and "--format" in proc.stdout


def test_the_wheel_carries_the_runbooks_and_parameter_examples(wheel, core):
    """run, demo and lab find them in an installed package (imds_helpers/runbooks/resources.py)."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = {f"imds_helpers/_data/notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")} | \
        {f"imds_helpers/_data/{p.relative_to(ROOT)}" for p in (ROOT / "parameters").rglob("*.yaml")}
    assert len(expected) > 40 and expected <= names, sorted(expected - names)[:5]
    assert "imds_helpers/model/evidence.schema.json" in names
    assert not any("sample-results" in n or n.endswith(".py") and "/_data/" in n
                   and n != "imds_helpers/_data/tools/build_probe.py" for n in names)
    # fleet: the playbook with its role, callback and example inventory, and the probe's builder
    assert {"imds_helpers/fleet/ansible/collect.yml", "imds_helpers/fleet/ansible/inventory.example.yml",
            "imds_helpers/fleet/ansible/roles/imds_collect/tasks/main.yml",
            "imds_helpers/fleet/ansible/roles/imds_collect/defaults/main.yml",
            "imds_helpers/fleet/ansible/callback_plugins/imds_fleet_events.py",
            "imds_helpers/fleet/ansible/action_plugins/imds_collect.py",
            "imds_helpers/_data/tools/build_probe.py"} <= names
    proc = subprocess.run([str(core / "python"), "-c", "from imds_helpers.runbooks.resources import data_dir; "
                           "print(data_dir('notebooks')); print(data_dir('parameters'))"],
                          capture_output=True, text=True, timeout=60, cwd="/")
    notebooks, parameters = (Path(line) for line in proc.stdout.split())
    assert "site-packages" in notebooks.parts and (notebooks / "01_azure_vm_imds.ipynb").is_file()
    assert (parameters / "demo" / "web-healthy.yaml").is_file()
