"""What does the VM runbook cost on top of papermill itself? (a script, not a timed test)

Runs, in turn, ``papermill`` on a trivial one-cell notebook and on
notebooks/01_azure_vm_imds.ipynb against a healthy emulator, placed two ways:

* **IMDS**: the emulator is its own process, as IMDS is to a VM. Inside the private namespace
  (``tests/isolated.sh``) it owns 169.254.169.254:80 and the runbook runs with its defaults,
  exactly as on a VM; outside, it listens on a loopback port passed as ``endpoint``.
* **training**: ``emulator_scenario: vm-healthy``, so the runbook's kernel starts (and stops)
  the emulator itself, as the training parameter files do.

* **cells only**: the runbook with every code cell but the parameters replaced by ``pass``:
  what papermill and the kernel cost for this notebook's cells alone, the floor under any
  work the steps do.

They run in rounds (each notebook once per round); the median of the per-round ratios to
the trivial notebook, with quartiles, is printed side by side. Target: runbook <= 1.3x the trivial notebook (kernel start-up and papermill's own
work are the floor both pay), judged on the IMDS placement. papermill runs in this process with
the runner's settings (``shutdown_kernel="immediate"``, no progress bar). Only loopback is used.

    tests/isolated.sh .venv/bin/python benchmarks/bench_runbook.py [--reps 15] [--cli] [--imports] [--what-if]

The IMDS runs are broken down per cell (papermill's cell durations, medians), and every
in-process run by phase: kernel start, the cells' execution in the kernel, papermill's
whole-notebook writes (two per cell, markdown cells included), kernel stop, the rest.
``--imports`` also times, in a fresh interpreter, the imports the runbook's first cells pay
(``python -X importtime``); ``--what-if`` times a copy of the runbook whose step cells return
counts instead of tables; ``--cli`` also times the ``papermill`` command on the trivial
notebook and the runbook (IMDS placement), its own start-up included, as a user typing it sees it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
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


def run_cli(notebook: Path, out: Path, parameters: dict[str, Any]) -> float:
    """The ``papermill`` command, as a user types it (its own start-up included)."""
    papermill = Path(sys.executable).with_name("papermill")
    argv = [str(papermill), str(notebook), str(out), "-k", "python3", "--cwd", str(out.parent),
            "--no-progress-bar", "--no-log-output"]
    if parameters:
        argv += ["-y", json.dumps(parameters)]          # JSON is YAML
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
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


STEP_LINES = {"rb.platform()": "len(rb.session.platform.checks)", "rb.verdict()": "rb.report().verdict.value",
              **{f"rb.{step}()": f"len(rb.session.{step}())" for step in ("proxy", "network", "instance", "tokens")}}


def without_tables(folder: Path) -> Path:
    """What if: the runbook with every table replaced by a count (no table is built)."""
    nb = json.loads(RUNBOOK.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            lines = "".join(cell["source"]).strip().splitlines()
            cell["source"] = "\n".join(STEP_LINES.get(line.strip(), line) for line in lines)
            cell["outputs"], cell["execution_count"] = [], None
    path = folder / "runbook-no-tables.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def cells_only(folder: Path) -> Path:
    """The runbook's cells doing nothing: papermill's and the kernel's share of a run."""
    nb = json.loads(RUNBOOK.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" not in cell.get("metadata", {}).get("tags", []):
            cell["source"], cell["outputs"], cell["execution_count"] = "pass", [], None
    path = folder / "runbook-cells-only.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


# Where a papermill run spends its time, by the methods it goes through (sync names).
PHASES = {
    "kernel start": ("start_new_kernel", "start_new_kernel_client"),
    "cells (kernel)": ("execute_cell",),
    "kernel stop": ("_cleanup_kernel",),
}
SAVES = "papermill writes"


@contextlib.contextmanager
def phase_clock() -> Iterator[dict[str, float]]:
    """Seconds spent in each of :data:`PHASES` and in papermill's whole-notebook writes, and
    how many calls each took (under ``"<phase> calls"``), by the runs made in this process while
    the block is open; the caller clears it per run. The methods are restored afterwards."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NotebookExecutionManager

    spent: dict[str, float] = collections.defaultdict(float)
    targets = [(PapermillNotebookClient, method, phase) for phase, methods in PHASES.items() for method in methods]
    targets.append((NotebookExecutionManager, "save", SAVES))
    originals = [(cls, method, cls.__dict__.get(method)) for cls, method, _ in targets]

    def timed(fn: Any, phase: str) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[phase] += time.perf_counter() - t0
                spent[f"{phase} calls"] += 1
        return wrapper

    for cls, method, phase in targets:
        setattr(cls, method, timed(getattr(cls, method), phase))
    try:
        yield spent
    finally:
        for cls, method, original in originals:
            if original is None:
                delattr(cls, method)
            else:
                setattr(cls, method, original)


@contextlib.contextmanager
def imds_process(folder: Path) -> Iterator[dict[str, Any]]:
    """The emulator in its own process; the runbook's parameters to reach it."""
    import os

    params: dict[str, Any] = {"host_name": "bench", "sidecar_path": str(folder / "imds.json"), "timeout_s": 5}
    in_namespace = os.environ.get("IMDS_RUNBOOK_NETNS") == "1"
    host, port = ("169.254.169.254", "80") if in_namespace else ("127.0.0.1", "0")
    proc = subprocess.Popen([sys.executable, "-m", "imds_helpers", "emulator", "--mode", "vm", "--host", host,
                             "--port", port, "--no-rate-limits"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        base_url = (proc.stdout.readline() if proc.stdout else "").strip()
        if not base_url.startswith("http://"):
            raise SystemExit(f"the emulator did not start (exit {proc.wait(timeout=5)})")
        yield params if in_namespace else {**params, "endpoint": base_url}
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def training_parameters(folder: Path) -> dict[str, Any]:
    return {"host_name": "bench", "sidecar_path": str(folder / "training.json"), "timeout_s": 5,
            "emulator_scenario": "vm-healthy"}


def import_times() -> None:
    """Cumulative import time (ms) of what the runbook's kernel imports, in a fresh interpreter."""
    code = ("from imds_helpers import runbook; "
            "from imds_helpers import api, platform, proxy, network, metadata, tokens, sidecar, transport; "
            "from imds_helpers.emulator import server")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, cwd=REPO)
    wanted = ("imds_helpers.runbook", "imds_helpers.api", "imds_helpers.platform", "imds_helpers.proxy",
              "imds_helpers.network", "imds_helpers.http", "imds_helpers.transport", "http.client",
              "imds_helpers.tokens", "imds_helpers.sidecar", "imds_helpers.emulator.server", "yaml")
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


REST = "rest (read, parameters, final write)"


def print_phases(phases: dict[str, list[dict[str, float]]]) -> None:
    """Where the time goes, per notebook (medians, ms), and what is left for the checks."""
    phases = {name: [{**run, REST: run["total"] - sum(run.get(phase, 0.0) for phase in [*PHASES, SAVES])}
                     for run in runs] for name, runs in phases.items()}

    def row(label: str, key: str, scale: float) -> str:
        return f"  {label:38s}" + "".join(f"{statistics.median(r.get(key, 0.0) for r in runs) * scale:12.0f}"
                                          for runs in phases.values())

    print("\nwhere the time goes (median ms per run):")
    print(f"  {'':38s}" + "".join(f"{name:>12s}" for name in phases))
    for key in (*PHASES, SAVES, REST, "total"):
        print(row(key, key, 1000))
    print(row("papermill writes per run", f"{SAVES} calls", 1))
    if "cells only" in phases:
        # Kernel start and stop are the same work for every notebook and the noisiest phases
        # (+-100 ms here): compare the rest, and size the room on the trivial notebook's total.
        def beyond_kernel(name: str) -> float:
            return statistics.median(r["total"] - r["kernel start"] - r["kernel stop"] for r in phases[name])

        floor = beyond_kernel("cells only") - beyond_kernel("trivial")
        checks = beyond_kernel("IMDS") - beyond_kernel("cells only")
        room = (TARGET - 1) * statistics.median(r["total"] for r in phases["trivial"]) - floor
        print(f"\n  this notebook's cells doing nothing cost {floor * 1000:.0f} ms more than the trivial notebook;"
              f" the checks and their tables\n  add {checks * 1000:.0f} ms; within {TARGET}x of the trivial notebook"
              f" they would have {room * 1000:.0f} ms (kernel start and stop left out)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="timed rounds, each notebook once (default 15)")
    parser.add_argument("--imports", action="store_true", help="also time the runbook's imports")
    parser.add_argument("--cli", action="store_true",
                        help="also time the papermill command (trivial and IMDS), start-up included")
    parser.add_argument("--what-if", action="store_true",
                        help="also time a copy of the runbook whose step cells render no table")
    args = parser.parse_args()

    import compileall

    import papermill as pm   # imported once, outside the timings

    compileall.compile_dir(str(REPO / "imds_helpers"), quiet=1)   # as `make bench` does
    with tempfile.TemporaryDirectory(prefix="bench-runbook-") as tmp, imds_process(Path(tmp)) as imds:
        folder = Path(tmp)
        runs: dict[str, tuple[Path, dict[str, Any]]] = {
            "trivial": (trivial_notebook(folder), {}),
            "IMDS": (RUNBOOK, imds),
            "training": (RUNBOOK, training_parameters(folder)),
            "cells only": (cells_only(folder), imds),
        }
        if args.what_if:
            runs["no tables"] = (without_tables(folder), imds)
        if args.cli:
            runs["trivial cli"] = runs["trivial"]
            runs["IMDS cli"] = runs["IMDS"]

        def timed(name: str, notebook: Path, out: Path, params: dict[str, Any]) -> float:
            return run_cli(notebook, out, params) if name.endswith(" cli") else run_once(pm, notebook, out, params)

        for name, (notebook, params) in runs.items():      # first kernel start, caches
            timed(name, notebook, folder / f"warm-{name.replace(' ', '-')}.ipynb", params)
        times: dict[str, list[float]] = {name: [] for name in runs}
        phases: dict[str, list[dict[str, float]]] = {name: [] for name in runs if not name.endswith(" cli")}
        cells: list[list[tuple[str, float]]] = []
        with phase_clock() as spent:
            for i in range(args.reps):   # in turn, so drift on a shared machine hits all of them
                for name, (notebook, params) in runs.items():
                    out = folder / f"{name.replace(' ', '-')}-{i}.ipynb"
                    spent.clear()
                    times[name].append(timed(name, notebook, out, params))
                    if name in phases:
                        phases[name].append({**spent, "total": times[name][-1]})
                    if name == "IMDS":
                        cells.append(cell_durations(out))
        verdicts = {name: json.loads((folder / f"{name.lower()}.json").read_text(encoding="utf-8"))["verdict"]
                    for name in ("IMDS", "training")}

    med = {k: statistics.median(v) for k, v in times.items()}
    # Per round: the machine's speed drifts (up to 1.5x here), and a round's runs are seconds apart.
    base = {k: times["trivial cli" if k.endswith(" cli") else "trivial"] for k in times}
    pairs = {k: sorted(a / b for a, b in zip(v, base[k])) for k, v in times.items()}
    ratio = {k: statistics.median(v) for k, v in pairs.items()}
    quartiles = {k: statistics.quantiles(v, n=4)[::2] if len(v) > 1 else v * 2 for k, v in pairs.items()}
    print(f"papermill, {args.reps} runs each, in turn; runbook verdicts: IMDS {verdicts['IMDS']}, "
          f"training {verdicts['training']}\n")
    print(f"{'':12s}" + "".join(f"{k:>12s}" for k in med))
    for label, pick in (("median s", med), ("min s", {k: min(v) for k, v in times.items()}),
                        ("max s", {k: max(v) for k, v in times.items()}), ("x trivial", ratio)):
        print(f"{label:12s}" + "".join(f"{pick[k]:12.2f}" for k in med))
    print(f"{'quartiles':12s}" + "".join(f"{'%.2f-%.2f' % tuple(quartiles[k]):>12s}" for k in med))
    print(f"\n(x trivial: median of the per-round ratios)\nrunbook / trivial, IMDS in its own process: "
          f"{ratio['IMDS']:.2f}x (target <= {TARGET}x: {'met' if ratio['IMDS'] <= TARGET else 'MISSED'}); "
          f"training (emulator in the kernel): {ratio['training']:.2f}x; the same cells doing nothing: "
          f"{ratio['cells only']:.2f}x")
    if args.cli:
        print(f"the papermill command, start-up included (cli rows against 'trivial cli'): {ratio['IMDS cli']:.2f}x")

    print("\nrunbook cells, IMDS (median s over the timed runs):")
    per_cell = [(cells[0][k][0], statistics.median(run[k][1] for run in cells)) for k in range(len(cells[0]))]
    for label, seconds in per_cell:
        print(f"  {label:42s} {seconds:6.3f}")
    in_cells = sum(s for _, s in per_cell)
    print(f"  {'sum of cells':42s} {in_cells:6.3f}")
    print(f"  {'outside cells (kernel start, papermill)':42s} {med['IMDS'] - in_cells:6.3f}"
          f"   (trivial notebook: {med['trivial']:.3f} in all)")
    print_phases(phases)
    if args.imports:
        import_times()


if __name__ == "__main__":
    main()
