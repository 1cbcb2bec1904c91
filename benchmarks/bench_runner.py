"""Does ``run_hosts`` scale with workers? (a script, not a timed test)

Runs the same N hosts (default 20) with workers=1 and workers=2 in one process and prints
the wall times and the speed-up side by side. Target: >= 1.6x on a 2-core machine, for the
issue's "20 emulated hosts", i.e. ``--real-vm``; the default stand-in runbook does almost
nothing in its kernel, so it shows the runner's own overhead.
The forkserver (papermill pre-imported) is warmed up first, so both sides pay the same.

    .venv/bin/python benchmarks/bench_runner.py [--hosts N] [--workers 1,2] [--rounds R] [--real-vm]

Default: the trivial stand-in runbook (tests/runner/notebooks). ``--real-vm`` runs the real
notebooks/01_azure_vm_imds.ipynb live for each host, each against an IMDS emulator of its own
over loopback HTTP, as each VM of a fleet has its own IMDS (one emulator shared by all hosts
would apply one VM's 5 requests/s limit to the whole fleet, and parallel hosts would wait out
each other's 429s). Run it inside the private namespace:
``tests/isolated.sh .venv/bin/python benchmarks/bench_runner.py --real-vm``.

The hosts ``host-NNN`` are emulated VMs, and their parameter files say so:
``emulator_scenario: vm-healthy``, the label the training files use, so each host's kernel
serves that scenario on a loopback port of its own and checks it. ``imds-runbook run``
refuses a file naming a machine other than this one unless it is training or gives that
machine's evidence (a runbook checks the machine it runs on; web-01's report must not be
this machine's findings under web-01's name), and host-NNN are not this machine. Not chosen:
evidence files (each host collected once, then rendered) would send no request at all, which
is another benchmark (``bench_runbook.py``'s evidence placement); naming the hosts after this
machine is impossible for N distinct names. What moved: each host's emulator runs in its
kernel instead of this process (``bench_runbook.py`` times both placements of one run side by
side, "IMDS" and "training"); still one IMDS per host, still its rate limits, still a real
HTTP path. A shared IMDS (the former ``--shared-imds``) cannot be said in a parameter file.
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

from imds_helpers.fleet.runner import RunSummary, run_hosts  # noqa: E402

STAND_IN = REPO / "tests" / "runner" / "notebooks"
SCENARIO = "vm-healthy"


@contextlib.contextmanager
def real_vm_setup(hosts: int) -> Iterator[tuple[list[str], Path | None]]:
    """Per host, the parameter text for the real VM runbook: an emulated VM (training's label),
    whose kernel serves the healthy scenario itself; and the notebooks dir (the default one)."""
    # TODO(bench): once notebooks/ and the emulator scenarios settle, add an --arc variant
    # (emulator_scenario: arc-healthy) and a mix of fault scenarios.
    yield [f"emulator_scenario: {SCENARIO}\ntimeout_s: 5\n"] * hosts, None


@contextlib.contextmanager
def stand_in_setup(hosts: int) -> Iterator[tuple[list[str], Path | None]]:
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


def _statuses(sidecar_path: str) -> list[int | None]:
    """The HTTP status of every attempt a host's runbook made, from its sidecar."""
    try:
        checks = json.loads(Path(sidecar_path).read_text(encoding="utf-8")).get("checks", [])
    except (OSError, ValueError):
        return []
    return [a.get("status") for c in checks for a in c.get("attempts", [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds, each running every worker count (order alternating); "
                             "the speed-up is the median of the rounds' (default 1)")
    parser.add_argument("--real-vm", action="store_true",
                        help=f"the real VM runbook, each host an emulated VM (emulator_scenario: {SCENARIO}) "
                             "checked over HTTP against an IMDS emulator of its own")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    counts = [int(w) for w in args.workers.split(",")]

    setup = real_vm_setup if args.real_vm else stand_in_setup
    label = ("stand-in runbook" if not args.real_vm else
             f"real VM runbook, emulated VMs ({SCENARIO}, an emulator per host in its kernel)")
    with setup(args.hosts) as (texts, notebooks_dir), \
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
                statuses = [_statuses(r.sidecar_path) for r in summary.rows]
                if args.real_vm and min(s.count(200) for s in statuses) < 5:
                    raise SystemExit("a host's runbook did not get its 5 HTTP answers from its IMDS emulator")
                throttled[workers] += sum(s.count(429) for s in statuses)

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
