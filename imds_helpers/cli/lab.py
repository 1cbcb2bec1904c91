"""``imds-runbook lab`` (``make lab``): JupyterLab on the runbooks, with an emulated IMDS running
and the notebooks pointed at it through ``IMDS_RUNBOOK_ENDPOINT`` (the one documented override).

The Arc runbook reaches an emulated HIMDS through its ``emulator_scenario`` parameter (an
explicit endpoint always wins over the environment), e.g. ``emulator_scenario = "arc-healthy"``.
JupyterLab listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from imds_helpers.model.endpoints import OVERRIDE_ENV
from imds_helpers.runbooks.resources import data_dir, is_installed_copy

NOTEBOOKS_DIR = data_dir("notebooks")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="vm-healthy", help="emulator scenario for the VM runbook (default vm-healthy)")
    parser.add_argument("--port", type=int, default=8888, help="JupyterLab port on 127.0.0.1 (default 8888)")
    parser.add_argument("--dry-run", action="store_true", help="start the emulator, print the JupyterLab command, stop")
    parser.add_argument("--dir", type=Path, default=Path("imds-runbook-lab"), metavar="DIR",
                        help="installed package only: where to copy the runbooks to work on them (default ./imds-runbook-lab)")


def workspace(copy_to: Path, notebooks: Path = NOTEBOOKS_DIR) -> Path:
    """The folder JupyterLab opens: a checkout's notebooks/ as is; the installed package's copies
    are copied to ``copy_to`` first (never overwriting a notebook already there), since runs
    write into the folder and site-packages is not a workspace."""
    if not is_installed_copy(notebooks):
        return notebooks
    import shutil

    copy_to.mkdir(parents=True, exist_ok=True)
    for source in sorted(notebooks.glob("*.ipynb")):
        if not (copy_to / source.name).exists():
            shutil.copy2(source, copy_to / source.name)
    return copy_to


def lab_command(port: int, notebooks: Path = NOTEBOOKS_DIR) -> list[str]:
    command = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={notebooks}",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--no-browser"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def run(args: argparse.Namespace) -> int:
    from imds_helpers.emulator import Emulator, get_scenario
    from imds_helpers.model.errors import UsageError

    get_scenario(args.scenario, "vm")
    if not 1 <= args.port <= 65535:
        raise UsageError(f"must be 1-65535, got {args.port}", argument="--port")
    with Emulator(mode="vm", scenario=args.scenario) as vm:
        env = {**os.environ, OVERRIDE_ENV: vm.base_url}
        command = lab_command(args.port, workspace(args.dir))
        sys.stdout.write(
            f"emulated IMDS ({args.scenario}) at {vm.base_url}; {OVERRIDE_ENV} points the runbooks at it\n"
            "Arc runbook: set emulator_scenario = \"arc-healthy\" (or another arc-* scenario) in its parameters cell\n"
            f"{' '.join(command)}\n")
        sys.stdout.flush()
        if args.dry_run:
            return 0
        try:
            return subprocess.call(command, env=env)
        except KeyboardInterrupt:
            return 0
