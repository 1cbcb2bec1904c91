"""Regenerate the tiny runbooks the runner tests execute: ``python tests/runner/notebooks/build.py``.

Both notebooks take a ``behaviour`` parameter so one file covers every run status:
ok | findings | raise | raise_after_sidecar | sleep | exit | nosidecar.
They stand in for notebooks/01_azure_vm_imds.ipynb and notebooks/02_arc_himds.ipynb.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

PARAMETERS = '''\
sidecar_path: str = ""  # absolute path of the result file (set by the runner)
host_name: str = "localhost"  # host this run is about (set by the runner)
behaviour: str = "ok"  # ok | findings | raise | raise_after_sidecar | sleep | exit | nosidecar
sleep_s: float = 30.0  # seconds the sleep behaviour sleeps
pid_path: str = ""  # if set, the kernel writes its pid there
target: str = "{target}"  # vm | arc
'''

SETUP = '''\
import os
import time

from imds_helpers.model.findings import CheckResult, Report, Status
from imds_helpers.fleet.sidecar import build_sidecar, now_iso, write_sidecar

started_at = now_iso()
t0 = time.monotonic()
if pid_path:
    with open(pid_path, "w") as fh:
        fh.write(str(os.getpid()))
'''

BEHAVE = '''\
if behaviour == "raise":
    raise RuntimeError("boom from the test runbook")
if behaviour == "sleep":
    time.sleep(sleep_s)
if behaviour == "exit":
    os._exit(3)
'''

CHECKS = '''\
bad = behaviour == "findings"
report = Report(
    target=target,
    endpoint="http://169.254.169.254" if target == "vm" else "http://localhost:40342",
    checks=(
        CheckResult(id="network.tcp", code="IMDS-NET-000", status=Status.OK,
                    title="TCP connection opens", detail="connected in 1 ms", elapsed_ms=1.5),
        CheckResult(id="token.system.management",
                    code="IMDS-TOKEN-004" if bad else "IMDS-TOKEN-000",
                    status=Status.FAIL if bad else Status.OK,
                    title="No managed identity assigned" if bad else "Token obtained",
                    detail="HTTP 400 identity not found" if bad else "token for management",
                    fix="Assign a system-assigned identity to the VM" if bad else "",
                    elapsed_ms=42.0),
    ),
)
marker = "CODE_ONLY_" + "SECRET_MARKER"
print("OUTPUT_MARKER", report.verdict.value)
'''

WRITE = '''\
if behaviour != "nosidecar":
    write_sidecar(sidecar_path, build_sidecar(
        report, host=host_name, notebook="{stem}",
        parameters={{"behaviour": behaviour, "target": target}},
        started_at=started_at, duration_s=time.monotonic() - t0))
if behaviour == "raise_after_sidecar":
    raise ValueError("late failure after the sidecar was written")
'''


def build(stem: str, target: str) -> None:
    params = new_code_cell(PARAMETERS.format(target=target))
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(
        cells=[
            new_markdown_cell(f"# Test runbook ({target})\nA stand-in for the real runbook."),
            params,
            new_code_cell(SETUP),
            new_code_cell(BEHAVE),
            new_code_cell(CHECKS),
            new_code_cell(WRITE.format(stem=stem)),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives the same bytes
        cell["id"] = f"{target}-cell-{i}"
    nbformat.validate(nb)
    nbformat.write(nb, HERE / f"{stem}.ipynb")


if __name__ == "__main__":
    build("01_azure_vm_imds", "vm")
    build("02_arc_himds", "arc")
