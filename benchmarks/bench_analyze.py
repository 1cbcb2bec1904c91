"""How fast is ``analyze`` over a fleet's evidence bundles? (a script, not a timed test)

Collects five real bundles from emulator scenarios (healthy VM, firewalled VM, throttled VM,
healthy Arc, Arc with a wrong secret; each against its own emulator on loopback, never the
default endpoint), writes N copies under new host names as files (default 10,000; 60 % the
healthy VM, the most expensive to analyze, 10 % each of the others, the same mix in every
quarter), then times, for N/4, N/2 and N bundles:

- in-process, ``--workers`` processes (default 2; ProcessPoolExecutor, chunks of paths):
  ``analyze`` of bundles already parsed in memory; read + schema check + ``analyze`` of the
  files (``evidence_cli.read_bundle``, what the CLI reads them with); and that plus the
  ``--json`` rendering ``analyze --json`` prints;
- the whole CLI, one process: ``imds-runbook analyze PART... --json > /dev/null`` (the files
  are in four folders of N/4; the CLI takes several).

Target (issue 14): ``analyze`` of 10,000 bundles <= 10 s on 2 cores, and linear: the time per
bundle at N/2 and N within 25 % of that at N/4. Every run's verdicts are checked against the
five sources' (a wrong count stops the benchmark); a missed target is printed, not an error.

    .venv/bin/python benchmarks/bench_analyze.py [--count N] [--workers W] [--repeat R] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_check import check_command, ensure_bytecode  # noqa: E402

from imds_helpers.model import evidence  # noqa: E402
from imds_helpers.analyze import analyze  # noqa: E402
from imds_helpers.cli.check import render  # noqa: E402
from imds_helpers.cli.evidence import read_bundle  # noqa: E402

# (scenario, share of the fleet out of 10, host-name prefix)
SOURCES = (
    ("vm-healthy", 6, "vm"),
    ("vm-firewalled", 1, "vm"),
    ("vm-throttled", 1, "vm"),
    ("arc-healthy", 1, "arc"),
    ("arc-wrong-secret", 1, "arc"),
)
CYCLE = [name for name, share, _ in SOURCES for _ in range(share)]   # host i is CYCLE[i % 10]
PARTS = 4
TARGET_S = 10.0          # for 10,000 bundles
TARGET_COUNT = 10_000
LINEAR_WITHIN = 0.25


def collect_one(scenario: str) -> tuple[str, dict[str, Any], float]:
    """One bundle, collected live from an emulator serving ``scenario`` on loopback."""
    from imds_helpers.api import check_options
    from imds_helpers.collect import collect
    from imds_helpers.emulator import SCENARIOS, Emulator

    mode = SCENARIOS[scenario].mode
    with Emulator(mode=mode, scenario=scenario) as emu:
        start = time.perf_counter()
        bundle = collect(check_options(target=mode, endpoint=emu.base_url,
                                       tokens_dir=str(emu.key_dir) if mode == "arc" else None))
        text = evidence.dumps(bundle)
    if emu.canary in text:
        raise SystemExit(f"bench_analyze: the {scenario} bundle holds the emulator's canary")
    return scenario, evidence.load(text), time.perf_counter() - start


def collect_sources() -> dict[str, dict[str, Any]]:
    # In parallel: the throttled scenario waits out Retry-After (about 9 s), the firewalled one
    # its connect timeout; each collection has its own emulator and LiveHost.
    with ThreadPoolExecutor(len(SOURCES)) as pool:
        done = list(pool.map(collect_one, [name for name, _, _ in SOURCES]))
    return {name: bundle for name, bundle, _ in done}


PLACEHOLDER = "bench-host-name-placeholder"


def generate(folder: Path, count: int, sources: dict[str, dict[str, Any]]) -> tuple[list[Path], int]:
    """``count`` bundle files, host i from source CYCLE[i % 10] under its own host name, in PARTS
    sub-folders of (about) count/PARTS each; and the bytes written."""
    texts = {}
    for name, bundle in sources.items():
        # dumps() once per source; each host's copy swaps the name in (the same bytes as dumps()
        # of the renamed bundle: the names are plain ASCII).
        texts[name] = evidence.dumps(dict(bundle, host=dict(bundle["host"], hostname=PLACEHOLDER))) + "\n"
        if texts[name].count(f'"{PLACEHOLDER}"') != 1:
            raise SystemExit("bench_analyze: could not place the host name in the bundle text")
    prefixes = {name: prefix for name, _, prefix in SOURCES}
    quarter = count // PARTS
    paths, size = [], 0
    for part in range(PARTS):
        (folder / f"part{part}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        name = CYCLE[i % len(CYCLE)]
        host = f"{prefixes[name]}-{i:05d}"
        path = folder / f"part{min(i // quarter, PARTS - 1)}" / f"{host}.json"
        text = texts[name].replace(f'"{PLACEHOLDER}"', f'"{host}"')
        path.write_text(text, encoding="utf-8")
        paths.append(path)
        size += len(text)
    return paths, size


# --- in-process, several processes --------------------------------------------------------------

_PARSED: list[dict[str, Any]] = []      # filled before the pool forks; workers inherit it


def _work(job: tuple[str, Any]) -> Counter:
    kind, items = job
    verdicts: Counter = Counter()
    if kind == "parsed":
        for index in range(*items):
            verdicts[analyze(_PARSED[index]).verdict.value] += 1
        return verdicts
    for path in items:
        bundle = read_bundle(Path(path))
        report = analyze(bundle)
        if kind == "render":
            render(report, bundle["duration_ms"], as_json=True)
        verdicts[report.verdict.value] += 1
    return verdicts


def run_pool(kind: str, paths: list[Path], workers: int, chunk: int) -> tuple[float, Counter]:
    # At least 4 tasks per worker, so that a small N is spread too (at most ``chunk`` bundles each).
    chunk = max(1, min(chunk, len(paths) // (workers * 4)))
    if kind == "parsed":
        jobs = [(kind, (i, min(i + chunk, len(paths)))) for i in range(0, len(paths), chunk)]
    else:
        jobs = [(kind, [str(p) for p in paths[i:i + chunk]]) for i in range(0, len(paths), chunk)]
    start = time.perf_counter()
    # fork: the workers start with everything imported (and _PARSED), as a parallel CLI would.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        total = sum(pool.map(_work, jobs), Counter())
    return time.perf_counter() - start, total


def run_cli(parts: list[Path], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        with open(os.devnull, "w") as sink:
            done = subprocess.run([*check_command(), "analyze", *map(str, parts), "--json"], cwd=REPO,
                                  stdout=sink, stderr=subprocess.PIPE, text=True)
        best = min(best, time.perf_counter() - start)
        if done.returncode != 1:          # the mix has failing hosts: 1, never 0 or 2
            raise SystemExit(f"bench_analyze: analyze exited {done.returncode}: {done.stderr.strip()[:300]}")
    return best


def check_cli_verdicts(sample: list[Path], expected: Counter) -> None:
    """The CLI's own answer for a few bundles, before it is timed into /dev/null."""
    done = subprocess.run([*check_command(), "analyze", *map(str, sample), "--json"], cwd=REPO,
                          capture_output=True, text=True)
    got = Counter(item["verdict"] for item in map(json.loads, done.stdout.splitlines())) if done.returncode == 1 else None
    if got != expected:
        raise SystemExit(f"bench_analyze: CLI verdicts {got} (exit {done.returncode}), expected {expected}")


# --- report -----------------------------------------------------------------------------------


def stage_costs(paths: list[Path]) -> dict[str, float]:
    """Milliseconds per bundle of each stage, one process, over a sample that keeps the mix."""
    sample = paths[:min(len(paths), 1000)]
    start = time.perf_counter()
    bundles = [read_bundle(p) for p in sample]
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    reports = [analyze(b) for b in bundles]
    analyze_s = time.perf_counter() - start
    start = time.perf_counter()
    for bundle, report in zip(bundles, reports):
        render(report, bundle["duration_ms"], as_json=True)
    render_s = time.perf_counter() - start
    n = len(sample)
    return {"read + schema check": read_s * 1000 / n, "analyze": analyze_s * 1000 / n,
            "render --json": render_s * 1000 / n}


def print_row(label: str, sizes: list[int], seconds: list[float], count: int) -> None:
    base = seconds[0] / sizes[0]
    for i, (n, s) in enumerate(zip(sizes, seconds)):
        per = s / n
        print(f"  {label if i == 0 else '':<44} {n:>7,} {s:8.2f} {n / s:10,.0f} {per * 1000:8.3f} ms {per / base:6.2f}")
    ratios = [(s / n) / base for n, s in zip(sizes, seconds)]
    linear = all(1 / (1 + LINEAR_WITHIN) <= r <= 1 + LINEAR_WITHIN for r in ratios)
    at_target = seconds[-1] * TARGET_COUNT / sizes[-1]
    print(f"  {'':<44} linear (within {LINEAR_WITHIN:.0%}): {'yes' if linear else 'NO'}; "
          f"{TARGET_COUNT:,} bundles: {at_target:.1f} s"
          f"{'' if count == TARGET_COUNT else ' (scaled)'}, target <= {TARGET_S:.0f} s "
          f"{'met' if at_target <= TARGET_S else 'MISSED'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=TARGET_COUNT, help="bundles (default 10,000)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the in-process rows (default 2)")
    parser.add_argument("--chunk", type=int, default=100,
                        help="at most this many bundles per task handed to a worker (default 100)")
    parser.add_argument("--repeat", type=int, default=2, help="best of R runs per size (default 2)")
    parser.add_argument("--keep", type=Path, default=None, help="write the bundles here and keep them")
    args = parser.parse_args()
    if args.count < PARTS * len(CYCLE) or min(args.workers, args.chunk, args.repeat) < 1:
        parser.error(f"--count must be at least {PARTS * len(CYCLE)}; --workers, --chunk, --repeat at least 1")

    ensure_bytecode()
    start = time.perf_counter()
    sources = collect_sources()
    print(f"collected {len(sources)} bundles from emulators in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{name} {analyze(b).verdict.value} {len(evidence.dumps(b)) / 1000:.1f} KB"
                      for name, b in sources.items()))

    with tempfile.TemporaryDirectory(prefix="bench-analyze-") as tmp:
        folder = (args.keep or Path(tmp)) / "bundles"
        if folder.exists() and any(folder.iterdir()):
            parser.error(f"{folder} already holds files; give --keep an empty or new folder")
        start = time.perf_counter()
        paths, size = generate(folder, args.count, sources)
        print(f"wrote {args.count:,} bundles ({size / 1e6:.1f} MB, {size / args.count / 1e3:.1f} KB each; "
              + ", ".join(f"{name} {share * 10} %" for name, share, _ in SOURCES)
              + f") in {time.perf_counter() - start:.1f} s")

        verdict = {name: analyze(b).verdict.value for name, b in sources.items()}

        def expect(n: int) -> Counter:
            """The verdicts of the first n hosts."""
            return Counter(verdict[CYCLE[i % len(CYCLE)]] for i in range(n))

        check_cli_verdicts(paths[:2 * len(CYCLE)], expect(2 * len(CYCLE)))
        costs = stage_costs(paths)
        print("per bundle, one process: " + ", ".join(f"{k} {v:.2f} ms" for k, v in costs.items()))

        quarter = args.count // PARTS
        sizes = [quarter, 2 * quarter, args.count]
        parts = sorted(folder.glob("part*"))
        part_sets = [parts[:1], parts[:2], parts]

        print(f"\n  {'':<44} {'N':>7} {'s':>8} {'bundles/s':>10} {'per bundle':>11} {'vs N/4':>6}"
              f"   (best of {args.repeat})")
        _PARSED.extend(read_bundle(p) for p in paths)
        rows = (("parsed", f"{args.workers} processes: analyze (parsed bundles)"),
                ("files", f"{args.workers} processes: read + check + analyze"),
                ("render", f"{args.workers} processes: ... + render --json"))
        for kind, label in rows:
            seconds = []
            for n in sizes:
                best = float("inf")
                for _ in range(args.repeat):
                    elapsed, verdicts = run_pool(kind, paths[:n], args.workers, args.chunk)
                    if verdicts != expect(n):
                        raise SystemExit(f"bench_analyze: {kind} over {n} bundles gave {dict(verdicts)}, "
                                         f"expected {dict(expect(n))}")
                    best = min(best, elapsed)
                seconds.append(best)
            print_row(label, sizes, seconds, args.count)
            if kind == "parsed":
                _PARSED.clear()     # the other rows read files; don't fork a gigabyte for them

        seconds = [run_cli(part_set, args.repeat) for part_set in part_sets]
        print_row("imds-runbook analyze PART... --json (CLI)", sizes, seconds, args.count)
        if args.keep:
            print(f"\nkept: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
