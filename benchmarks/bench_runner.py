"""Does ``run_hosts`` scale with workers? (a script, not a timed test)

Runs the same N hosts (default 20) with workers=1 and workers=2 in one process and prints
the wall times and the speed-up side by side. Target: >= 1.6x on a 2-core machine, for the
issue's "20 emulated hosts", i.e. ``--real-vm``; the default stand-in runbook does almost
nothing in its kernel, so it shows the runner's own overhead.
The forkserver (papermill pre-imported) is warmed up first, so both sides pay the same.

    .venv/bin/python benchmarks/bench_runner.py [--hosts N] [--workers 1,2] [--rounds R] [--real-vm [--shared-imds]]

Default: the trivial stand-in runbook (tests/runner/notebooks). ``--real-vm`` runs the real
notebooks/01_azure_vm_imds.ipynb, each host against an IMDS emulator of its own on loopback,
as each VM of a fleet has its own IMDS: one emulator shared by all hosts would apply one VM's
5 requests/s limit to the whole fleet, and parallel hosts would wait out each other's 429s
(``--shared-imds`` shows that). Run it inside the private namespace:
``tests/isolated.sh .venv/bin/python benchmarks/bench_runner.py --real-vm``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imds_helpers.runner import RunSummary, run_hosts  # noqa: E402

STAND_IN = REPO / "tests" / "runner" / "notebooks"


@contextlib.contextmanager
def real_vm_setup(hosts: int, shared: bool = False) -> Iterator[tuple[list[str], Path | None]]:
    """Per host, the parameter text for the real VM runbook against its own emulator (or,
    with ``shared``, all against one); and the notebooks dir (the default one)."""
    # TODO(bench): once notebooks/ and the emulator scenarios settle, add an --arc variant
    # (Emulator(mode="arc"), tokens_dir=emu.key_dir) and a mix of fault scenarios.
    from imds_helpers.emulator import Emulator

    with contextlib.ExitStack() as stack:
        emulators = [stack.enter_context(Emulator(mode="vm")) for _ in range(1 if shared else hosts)]
        yield [f"endpoint: '{emulators[i % len(emulators)].base_url}'\ntimeout_s: 5\n"
               for i in range(hosts)], None


@contextlib.contextmanager
def stand_in_setup(hosts: int, shared: bool = False) -> Iterator[tuple[list[str], Path | None]]:
    yield ["behaviour: ok\n"] * hosts, STAND_IN


def one_run(texts: list[str], notebooks_dir: Path | None, hosts: int, workers: int,
            root: Path) -> RunSummary:
    params = root / f"params-{workers}"
    params.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(hosts):
        path = params / f"host-{i:03d}.yaml"
        path.write_text(texts[i])
        files.append(path)
    return run_hosts(files, notebook="vm", out_dir=root / f"out-{workers}", workers=workers,
                     cell_timeout=60, host_timeout=120, notebooks_dir=notebooks_dir)


def _throttled(sidecar_path: str) -> int:
    """HTTP attempts a host's IMDS answered 429 (rate limit), from its sidecar."""
    try:
        checks = json.loads(Path(sidecar_path).read_text(encoding="utf-8")).get("checks", [])
    except (OSError, ValueError):
        return 0
    return sum(a.get("status") == 429 for c in checks for a in c.get("attempts", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds, each running every worker count (order alternating); "
                             "the speed-up is the median of the rounds' (default 1)")
    parser.add_argument("--real-vm", action="store_true",
                        help="the real VM runbook, each host against an IMDS emulator of its own")
    parser.add_argument("--shared-imds", action="store_true",
                        help="with --real-vm: all hosts against one emulator (one VM's rate limits)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.shared_imds and not args.real_vm:
        parser.error("--shared-imds needs --real-vm (the stand-in runbook sends no request)")
    counts = [int(w) for w in args.workers.split(",")]

    setup = real_vm_setup if args.real_vm else stand_in_setup
    label = ("stand-in runbook" if not args.real_vm else
             f"real VM runbook + {'one shared emulator' if args.shared_imds else 'an emulator per host'}")
    with setup(args.hosts, args.shared_imds) as (texts, notebooks_dir), \
            tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        warm = one_run(texts, notebooks_dir, 1, 1, root / "warm-up")   # forkserver + imports
        print(f"{label}: warm-up host {warm.rows[0].status} in {time.perf_counter() - t0:.1f} s")

        times: dict[int, list[float]] = {w: [] for w in counts}
        throttled: dict[int, int] = {w: 0 for w in counts}
        for round_no in range(args.rounds):
            # Alternate the order: the machine's speed drifts over a minute, and a fixed
            # order would hand the drift to one side every time.
            for workers in counts if round_no % 2 == 0 else counts[::-1]:
                summary = one_run(texts, notebooks_dir, args.hosts, workers, root / f"round-{round_no}")
                bad = [r for r in summary.rows if r.status not in ("ok", "findings")]
                if bad:
                    raise SystemExit(f"{len(bad)} host(s) did not complete: {bad[0].host}: "
                                     f"{bad[0].status} {bad[0].error}")
                times[workers].append(summary.duration_s)
                throttled[workers] += sum(_throttled(r.sidecar_path) for r in summary.rows)

        wall = {w: statistics.median(t) for w, t in times.items()}
        # Per round: the speed-up of each worker count over the first, then the median.
        speed_up = {w: sorted(a / b for a, b in zip(times[counts[0]], times[w])) for w in counts}
        print(f"\n{args.rounds} round(s); wall: median; speed-up: median of the rounds'")
        print(f"{args.hosts} hosts   " + "   ".join(f"workers={w:<2}" for w in counts))
        print("wall s     " + "   ".join(f"{wall[w]:10.1f}" for w in counts))
        print("s / host   " + "   ".join(f"{wall[w] / args.hosts:10.2f}" for w in counts))
        print("speed-up   " + "   ".join(f"{statistics.median(speed_up[w]):9.2f}x" for w in counts))
        if args.rounds > 1:
            print("range      " + "   ".join(f"{'%.2f-%.2f' % (speed_up[w][0], speed_up[w][-1]):>10s}"
                                            for w in counts))
        print("429s       " + "   ".join(f"{throttled[w]:10d}" for w in counts))
        if 2 in times and counts[0] == 1:
            ratio = statistics.median(speed_up[2])
            print(f"\nworkers=2 vs 1: {ratio:.2f}x (target >= 1.6x: {'met' if ratio >= 1.6 else 'MISSED'})")

if __name__ == "__main__":
    main()
