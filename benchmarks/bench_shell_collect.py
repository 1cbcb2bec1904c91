"""The shell collector against the Python one, whole process, on a healthy VM emulator (a
script, not a timed test).

Side by side in one run, interleaved round by round (the order alternates each round), N rounds
(default 11), each a whole process writing the bundle to a file:

- ``imds-runbook collect --target vm --endpoint URL --out FILE`` (this venv's Python);
- ``dash imds-collect.sh --target vm --endpoint URL`` (stdout to FILE).

Best and median of each, and the median of each round's ratio shell / Python (the machine's
speed drifts; a round's ratio cancels it). Target (issue 17): <= 1.5x. Every run is checked: the
bundle loads, analyzes without a miss to the same checks as the Python bundle, verdict ok, no
canary. The emulator runs in this process on loopback with rate limits off (back-to-back runs
measure the collectors, not IMDS's 5 requests/s); proxy variables are removed, so it does not
need the namespace (``make bench`` runs it there anyway).

    .venv/bin/python benchmarks/bench_shell_collect.py [--runs N] [--shell dash]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imds_helpers.analyze import analyze_with_misses  # noqa: E402
from imds_helpers.emulator import Emulator  # noqa: E402
from imds_helpers.model import evidence  # noqa: E402

SCRIPT = REPO / "imds_helpers" / "collect" / "imds-collect.sh"
TARGET = 1.5


def environment(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["IMDS_RUNBOOK_ENDPOINT"] = endpoint
    return env


def timed(argv: list[str], env: dict[str, str], out: Path, *, stdout: bool) -> float:
    start = time.perf_counter()
    with open(out, "wb") as sink:
        done = subprocess.run(argv, stdout=sink if stdout else subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                              cwd=REPO, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} {argv[1]} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def checked(path: Path, canary: str) -> list[tuple[str, str, str]]:
    text = path.read_text()
    if canary in text:
        raise SystemExit(f"the emulator's canary is in {path.name}")
    report, misses = analyze_with_misses(evidence.load(text))
    if misses or report.verdict != "ok":
        raise SystemExit(f"{path.name}: verdict {report.verdict}, misses {misses}")
    return [(c.id, c.status.value, c.code) for c in report.checks]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--shell", default="dash")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"python": [], "shell": []}
    with Emulator(mode="vm", scenario="vm-healthy", rate_limits=False) as emu, tempfile.TemporaryDirectory() as tmp:
        env = environment(emu.base_url)
        py_out, sh_out = Path(tmp) / "python.json", Path(tmp) / "shell.json"
        python = [sys.executable, "-m", "imds_helpers", "collect", "--target", "vm", "--endpoint", emu.base_url,
                  "--out", str(py_out)]
        shell = [*args.shell.split(), str(SCRIPT), "--target", "vm", "--endpoint", emu.base_url]
        for round_ in range(args.runs):
            order = [("python", python, False), ("shell", shell, True)]
            for name, argv, stdout in (order if round_ % 2 == 0 else order[::-1]):
                times[name].append(timed(argv, env, sh_out if stdout else py_out, stdout=stdout))
            if checked(py_out, emu.canary) != checked(sh_out, emu.canary):
                raise SystemExit("the shell bundle analyzes to other checks than the Python bundle")
    ratio = statistics.median(s / p for s, p in zip(times["shell"], times["python"]))
    print(f"healthy VM emulator, {args.runs} interleaved rounds, whole processes (bundle to a file)")
    print(f"{'':28} {'best':>9} {'median':>9}")
    for name, label in (("python", "imds-runbook collect"), ("shell", f"{args.shell} imds-collect.sh")):
        print(f"{label:28} {min(times[name]) * 1000:7.0f} ms {statistics.median(times[name]) * 1000:6.0f} ms")
    print(f"shell / python: {ratio:.2f}x (median of the rounds' ratios); best/best "
          f"{min(times['shell']) / min(times['python']):.2f}x; target <= {TARGET}x "
          f"{'met' if ratio <= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
