"""What does the VM runbook cost on top of papermill itself? (a script, not a timed test)

Runs, alternately, ``papermill`` on notebooks/01_azure_vm_imds.ipynb against a healthy
emulator and ``papermill`` on a trivial one-cell notebook, several times each, and prints the
medians and their ratio side by side. Target: runbook <= 1.3x the trivial notebook (kernel
start-up and papermill's own work are the floor both pay).

    .venv/bin/python benchmarks/bench_runbook.py [--reps 5] [--external] [--imports] [--what-if]

Default: ``emulator_scenario: vm-healthy`` (the runbook's kernel starts the emulator, as the
training files do). ``--external``: one emulator in this process, passed as ``endpoint`` (the
runbook then pays nothing for the emulator). Both run papermill in this process, with the
runner's settings (``shutdown_kernel="immediate"``, no progress bar). Only loopback is used.

The runbook side is broken down per cell (papermill's cell durations, medians) and the rest of
the wall time (kernel start, papermill, shutdown). ``--imports`` also times, in a fresh
interpreter, the imports the runbook's first cells pay (``python -X importtime``); ``--what-if``
times a copy of the runbook whose step cells return counts instead of styled tables (no pandas).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
RUNBOOK = REPO / "notebooks" / "01_azure_vm_imds.ipynb"
TARGET = 1.3


def trivial_notebook(folder: Path) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("1 + 1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    path = folder / "trivial.ipynb"
    nbformat.write(nb, path)
    return path


def run_once(pm: Any, notebook: Path, out: Path, parameters: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    pm.execute_notebook(str(notebook), str(out), parameters=parameters, kernel_name="python3",
                        cwd=str(out.parent), progress_bar=False, log_output=False,
                        shutdown_kernel="immediate")
    return time.perf_counter() - t0


def cell_durations(executed: Path) -> list[tuple[str, float]]:
    nb = json.loads(executed.read_text(encoding="utf-8"))
    rows = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = [line for line in "".join(cell["source"]).strip().splitlines() if line.strip()]
        tags = cell.get("metadata", {}).get("tags", [])
        label = ("[injected parameters]" if "injected-parameters" in tags else
                 "[parameters]" if "parameters" in tags else
                 next((line for line in source if not line.startswith(("from ", "import "))), source[0] if source else ""))
        rows.append((label[:40], float(cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0)))
    return rows


STEP_CELLS = {"rb.platform()": "len(rb.session.platform.checks)", "rb.verdict()": "rb.report().verdict.value",
              **{f"rb.{step}()": f"len(rb.session.{step}())" for step in ("proxy", "network", "instance", "tokens")}}


def without_tables(folder: Path) -> Path:
    """What if: the runbook with every styled table replaced by a count (pandas never imported)."""
    nb = json.loads(RUNBOOK.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]).strip()
            cell["source"] = STEP_CELLS.get(source, source)
            cell["outputs"], cell["execution_count"] = [], None
    path = folder / "runbook-no-tables.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def save_cost(executed: Path) -> tuple[int, float]:
    """papermill writes the whole notebook at every cell's start and end (markdown cells too):
    (number of cells, seconds for one write of the finished notebook)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    t0 = time.perf_counter()
    for _ in range(10):
        nbformat.write(nb, executed.with_suffix(".copy.ipynb"))
    return len(nb.cells), (time.perf_counter() - t0) / 10


@contextlib.contextmanager
def runbook_parameters(external: bool, folder: Path) -> Iterator[dict[str, Any]]:
    params: dict[str, Any] = {"host_name": "bench", "sidecar_path": str(folder / "bench.json"), "timeout_s": 5}
    if not external:
        yield {**params, "emulator_scenario": "vm-healthy"}
        return
    from imds_helpers.emulator import Emulator

    with Emulator(mode="vm", scenario="vm-healthy", rate_limits=False) as emu:
        yield {**params, "endpoint": emu.base_url}


def import_times() -> None:
    """Cumulative import time (ms) of what the runbook's kernel imports, in a fresh interpreter."""
    code = ("from imds_helpers import runbook; import pandas; "
            "from pandas.io.formats.style import Styler; from imds_helpers import api, platform, network, metadata, tokens; "
            "from imds_helpers.emulator import server")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, cwd=REPO)
    wanted = ("pandas", "pandas.io.formats.style", "jinja2", "imds_helpers.runbook", "imds_helpers.api",
              "imds_helpers.platform", "imds_helpers.network", "imds_helpers.http", "requests", "urllib3",
              "imds_helpers.emulator.server", "numpy", "yaml")
    found = {}
    for line in proc.stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] in wanted and parts[1].isdigit():
            found.setdefault(parts[2], int(parts[1]) / 1000)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], cwd=REPO, check=True)
    bare = time.perf_counter() - t0
    print(f"\nimports in a fresh interpreter: {(total - bare) * 1000:.0f} ms over a bare `python -c pass`")
    for name, ms in sorted(found.items(), key=lambda kv: -kv[1]):
        print(f"  {name:34s} {ms:7.0f} ms (cumulative)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed runs of each notebook (default 5)")
    parser.add_argument("--external", action="store_true", help="an emulator in this process, passed as endpoint")
    parser.add_argument("--imports", action="store_true", help="also time the runbook's imports")
    parser.add_argument("--what-if", action="store_true",
                        help="also time a copy of the runbook whose step cells render no pandas table")
    args = parser.parse_args()

    import papermill as pm   # imported once, outside the timings

    with tempfile.TemporaryDirectory(prefix="bench-runbook-") as tmp:
        folder = Path(tmp)
        trivial = trivial_notebook(folder)
        with runbook_parameters(args.external, folder) as params:
            run_once(pm, trivial, folder / "warm-trivial.ipynb", {})      # first kernel start, caches
            run_once(pm, RUNBOOK, folder / "warm-runbook.ipynb", params)
            times: dict[str, list[float]] = {"trivial": [], "runbook": []}
            cells: list[list[tuple[str, float]]] = []
            for i in range(args.reps):   # alternate, so drift on a shared machine hits both
                times["trivial"].append(run_once(pm, trivial, folder / f"trivial-{i}.ipynb", {}))
                out = folder / f"runbook-{i}.ipynb"
                times["runbook"].append(run_once(pm, RUNBOOK, out, params))
                cells.append(cell_durations(out))
            verdict = json.loads((folder / "bench.json").read_text(encoding="utf-8"))["verdict"]
            saves = save_cost(folder / "runbook-0.ipynb")
            if args.what_if:
                variant = without_tables(folder)
                run_once(pm, variant, folder / "warm-variant.ipynb", params)
                times["no tables"] = [run_once(pm, variant, folder / f"variant-{i}.ipynb", params)
                                      for i in range(args.reps)]

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["runbook"] / med["trivial"]
    side = "emulator_scenario vm-healthy (in the kernel)" if not args.external else "external emulator (endpoint)"
    print(f"papermill, {args.reps} runs each, runbook on {side}; runbook verdict {verdict}\n")
    print(f"{'':18s}{'trivial':>10s}{'runbook':>10s}")
    print(f"{'median s':18s}{med['trivial']:10.2f}{med['runbook']:10.2f}")
    print(f"{'min s':18s}{min(times['trivial']):10.2f}{min(times['runbook']):10.2f}")
    print(f"{'max s':18s}{max(times['trivial']):10.2f}{max(times['runbook']):10.2f}")
    print(f"\nrunbook / trivial: {ratio:.2f}x (target <= {TARGET}x: {'met' if ratio <= TARGET else 'MISSED'})")

    print("\nrunbook cells (median s over the timed runs):")
    per_cell = [(cells[0][k][0], statistics.median(run[k][1] for run in cells)) for k in range(len(cells[0]))]
    for label, seconds in per_cell:
        print(f"  {label:42s} {seconds:6.3f}")
    in_cells = sum(s for _, s in per_cell)
    print(f"  {'sum of cells':42s} {in_cells:6.3f}")
    print(f"  {'outside cells (kernel start, papermill)':42s} {med['runbook'] - in_cells:6.3f}"
          f"   (trivial notebook: {med['trivial']:.3f} in all)")
    print(f"  of which papermill's saves (~{saves[0]} cells x 2 writes of up to {saves[1] * 1000:.1f} ms): "
          f"<= {saves[0] * 2 * saves[1]:.2f} s")
    if args.what_if:
        print(f"\nwhat if the runbook rendered no pandas tables (same checks, counts instead): "
              f"median {med['no tables']:.2f} s, {med['no tables'] / med['trivial']:.2f}x the trivial notebook")
    if args.imports:
        import_times()


if __name__ == "__main__":
    main()
