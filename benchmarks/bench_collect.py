"""How much does a whole ``collect`` + ``analyze`` process cost? (a script, not a timed test)

On a healthy VM emulator (in this process, on loopback, rate limits off so that back-to-back
runs measure the tool and not IMDS's 5 requests/s), times whole processes side by side,
interleaved round by round (the order rotates each round), N rounds (default 11):

- the floor: ``python3 -c "import json, http.client"`` (the interpreter this venv runs);
- ``imds-runbook collect --target vm --endpoint URL --out FILE``;
- ``imds-runbook analyze FILE``;
- ``collect --out FILE && analyze FILE``: the two processes a support case uses, one after the other;
- ``imds-runbook check --target vm --endpoint URL --json``: collect then analyze in one process;
- the work floor: a ~30-line standard-library script (:data:`WORK_FLOOR`) doing the work a
  healthy VM's collect cannot skip, and nothing else: the three host commands started in
  parallel (systemctl, iptables-save, nft: the same argv), a TCP connect to the endpoint, the
  same five GETs with ``Metadata: true`` (instance 2019-11-01, the versions, instance at the
  newest, the management and monitor tokens), one connection each, the bodies written to a
  JSON file. (collect also reads a dozen small files: DMI, cgroups, agent paths; not here.)

Best and median of each, and its ratio to the floor: the median of each round's ratio (the
machine's speed drifts; a round's ratio cancels it) and best / best. Target (issue 14):
collect + analyze whole process <= 1.3x the floor. That floor does no work, so collect,
analyze and check are also put against the work floor, the same way: what is ours over the
irreducible work (no target of its own). When the target is missed, it says where the time goes:
``-X importtime`` of the ``check`` process (our modules, standard-library modules the floor
does not load) and what dataclass creation and regular-expression compilation cost at import.

Every process is pointed at the emulator (``--endpoint`` and ``IMDS_RUNBOOK_ENDPOINT``; proxy
variables removed), so it does not need the namespace; ``make bench`` runs it there anyway.

    .venv/bin/python benchmarks/bench_collect.py [--runs N] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_check import check_command, ensure_bytecode  # noqa: E402

from imds_helpers.emulator import Emulator  # noqa: E402

PY = sys.executable
FLOOR = [PY, "-c", "import json, http.client"]

# The irreducible work of a healthy VM's collect, in the standard library: argv[1] the endpoint
# (http://host:port), argv[2] the output file, argv[3] the commands (JSON list of argv lists).
WORK_FLOOR = r"""
import http.client, json, os, socket, subprocess, sys
url, out, commands = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
host, port = url.split("//", 1)[1].rsplit(":", 1)
env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
procs = []
for argv in commands:
    try:
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, env=env))
    except OSError as err:
        procs.append(err)
socket.create_connection((host, int(port)), timeout=2).close()
def get(path):
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", path, headers={"Metadata": "true"})
    response = conn.getresponse()
    body = response.read().decode("utf-8", "replace")
    conn.close()
    return {"path": path, "status": response.status, "headers": response.getheaders(), "body": body}
http_ = [get("/metadata/instance?api-version=2019-11-01&format=json"), get("/metadata/versions")]
newest = max(json.loads(http_[1]["body"])["apiVersions"])
http_.append(get(f"/metadata/instance?api-version={newest}&format=json"))
for audience in ("https%3A%2F%2Fmanagement.azure.com%2F", "https%3A%2F%2Fmonitor.azure.com%2F"):
    http_.append(get(f"/metadata/identity/oauth2/token?api-version=2018-02-01&resource={audience}"))
ran = []
for argv, proc in zip(commands, procs):
    if isinstance(proc, OSError):
        ran.append({"argv": argv, "error": str(proc)})
        continue
    stdout, stderr = proc.communicate(timeout=5)
    ran.append({"argv": argv, "rc": proc.returncode, "stdout": stdout.decode(), "stderr": stderr.decode()})
with open(out, "w", encoding="utf-8") as f:
    json.dump({"commands": ran, "http": http_}, f)
"""
TARGET = 1.3
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def environment(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    env["IMDS_RUNBOOK_ENDPOINT"] = endpoint
    return env


def timed(argv: list[str], env: dict[str, str], expect: tuple[int, ...] = (0,)) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode not in expect:
        raise SystemExit(f"bench_collect: {' '.join(argv[-6:])} exited {done.returncode}: {done.stderr.strip()[:300]}")
    return elapsed, done.stdout


def work_floor_command(url: str, out: Path) -> list[str]:
    from imds_helpers.collect.hostcmd import evidence_commands   # the argv collect runs on this OS

    return [PY, "-c", WORK_FLOOR, url, str(out), json.dumps([list(argv) for argv in evidence_commands()])]


def measure(url: str, runs: int, bundle: Path) -> tuple[dict[str, list[float]], str]:
    cmd = check_command()
    env = environment(url)
    collect = [*cmd, "collect", "--target", "vm", "--endpoint", url, "--out", str(bundle)]
    analyze = [*cmd, "analyze", str(bundle)]
    check = [*cmd, "check", "--target", "vm", "--endpoint", url, "--json"]
    work_out = bundle.with_name("work-floor.json")
    work = work_floor_command(url, work_out)
    times: dict[str, list[float]] = {"floor": [], "work floor": [], "collect": [], "analyze": [],
                                     "collect && analyze": [], "check": []}

    def floor() -> None:
        times["floor"].append(timed(FLOOR, env)[0])

    def work_floor() -> None:
        times["work floor"].append(timed(work, env)[0])
        done = json.loads(work_out.read_text(encoding="utf-8"))
        if [x["status"] for x in done["http"]] != [200] * 5 or len(done["commands"]) != len(json.loads(work[-1])):
            raise SystemExit("bench_collect: the work floor did not get its five answers and command outputs")

    def pair() -> None:
        t_collect = timed(collect, env)[0]
        t_analyze, out = timed(analyze, env)
        if not out.startswith("imds-runbook check: target vm") or "Verdict: OK" not in out:
            raise SystemExit(f"bench_collect: analyze of the healthy bundle did not say OK:\n{out[-500:]}")
        times["collect"].append(t_collect)
        times["analyze"].append(t_analyze)
        times["collect && analyze"].append(t_collect + t_analyze)

    def one() -> None:
        elapsed, out = timed(check, env)
        if json.loads(out)["verdict"] != "ok":
            raise SystemExit("bench_collect: check of the healthy emulator did not say ok")
        times["check"].append(elapsed)

    units = [floor, work_floor, pair, one]
    for unit in units:            # warm the file cache; not counted
        unit()
    for key in times:
        times[key].clear()
    for i in range(runs):
        k = i % len(units)
        for unit in units[k:] + units[:k]:
            unit()
    return times, bundle.read_text(encoding="utf-8")


def ratios(values: list[float], floor: list[float]) -> tuple[float, float, float]:
    """Quartiles of the per-round ratios: (q1, median, q3)."""
    per_round = [v / f for v, f in zip(values, floor)]
    q1, median, q3 = statistics.quantiles(per_round, n=4) if len(per_round) > 1 else (per_round[0],) * 3
    return q1, median, q3


def report(times: dict[str, list[float]], runs: int) -> float:
    floor = times["floor"]
    labels = {
        "floor": 'python3 -c "import json, http.client"',
        "work floor": "work floor (3 commands, connect, 5 GETs)",
        "collect": "imds-runbook collect --out F",
        "analyze": "imds-runbook analyze F",
        "collect && analyze": "collect --out F && analyze F (2 processes)",
        "check": "check --json (collect + analyze, 1 process)",
    }
    print(f"whole processes, healthy VM emulator, {runs} interleaved rounds")
    print(f"  {'':<44} {'best':>7} {'median':>7}  {'ratio to floor: median (IQR), best/best':<40}")
    worst = 0.0
    for key, label in labels.items():
        values = times[key]
        line = f"  {label:<44} {min(values) * 1000:5.0f}ms {statistics.median(values) * 1000:5.0f}ms"
        if key != "floor":
            q1, median, q3 = ratios(values, floor)
            line += f"  {median:5.2f}x ({q1:.2f}-{q3:.2f})  {min(values) / min(floor):5.2f}x"
            if key in ("collect && analyze", "check"):
                line += f"   target <= {TARGET}x {'met' if median <= TARGET else 'MISSED'}"
                worst = max(worst, median)
        print(line)
    work = times["work floor"]
    print("\nagainst the work floor (the same work in plain standard library: the irreducible work; no target)")
    print(f"  {'':<44} {'ratio: median (IQR), best/best':<32} {'ours over the work, median ms':>30}")
    for key in ("collect", "collect && analyze", "check"):
        q1, median, q3 = ratios(times[key], work)
        ours = statistics.median(v - w for v, w in zip(times[key], work)) * 1000
        print(f"  {labels[key]:<44} {median:5.2f}x ({q1:.2f}-{q3:.2f})  {min(times[key]) / min(work):5.2f}x"
              f"  {ours:+19.0f} ms")
    spent = statistics.median(w - f for w, f in zip(work, floor)) * 1000
    print(f"  (the work floor itself: {ratios(work, floor)[1]:.2f}x the import floor, {spent:+.0f} ms for the work)")
    return worst


# --- where the time goes ----------------------------------------------------------------------

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def import_times(argv: list[str], env: dict[str, str], runs: int = 3) -> dict[str, float]:
    """Median self time (ms) of every module the process imports, from ``-X importtime``."""
    samples: list[dict[str, int]] = []
    for _ in range(runs):
        done = subprocess.run([PY, "-X", "importtime", *argv], capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=120)
        samples.append({m.group(4): int(m.group(1)) for m in map(_IMPORT_LINE.match, done.stderr.splitlines()) if m})
    return {name: statistics.median(s.get(name, 0) for s in samples) / 1000 for name in samples[0]}


MEASURE_IMPORT = r"""
import dataclasses, re, sys, time
spent = {"dataclass": [0.0, 0], "re": [0.0, 0]}
def timed(kind, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[kind][0] += time.perf_counter() - start
            spent[kind][1] += 1
    return wrapper
dataclasses._process_class = timed("dataclass", dataclasses._process_class)
re._compile = timed("re", re._compile)
start = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
print(time.perf_counter() - start, *(x for pair in spent.values() for x in pair))
"""


SECOND_RUN = r"""
import contextlib, io, sys, time
from imds_helpers.cli import main
argv = sys.argv[1:]
with contextlib.redirect_stdout(io.StringIO()):
    start = time.perf_counter()
    main(argv)                                  # imports what check needs, then runs it
    first = time.perf_counter() - start
    start = time.perf_counter()
    main(argv)                                  # everything imported: the work alone
print(first, time.perf_counter() - start)
"""


def _top(times: dict[str, float], n: int = 8) -> list[tuple[str, float]]:
    return sorted(times.items(), key=lambda item: -item[1])[:n]


def where_the_time_goes(url: str, profile: bool) -> None:
    env = environment(url)
    check_args = ["check", "--target", "vm", "--endpoint", url, "--json"]
    start_up = min(timed([PY, "-c", "pass"], env)[0] for _ in range(5))
    firsts, seconds = [], []
    for _ in range(5):
        first, second = map(float, timed([PY, "-c", SECOND_RUN, *check_args], env, expect=(0,))[1].split())
        firsts.append(first)
        seconds.append(second)
    print(f"\nwhere the time goes (best of 5): interpreter start (python -c pass) {start_up * 1000:.0f} ms; "
          f"check in a warm process: first call (imports + work) {min(firsts) * 1000:.0f} ms, "
          f"second call (the work alone) {min(seconds) * 1000:.0f} ms")
    script = check_command()[-1] if len(check_command()) == 1 else None
    argv = [script] if script else ["-m", "imds_helpers"]
    check_modules = import_times([*argv, *check_args], env)
    floor_modules = import_times(FLOOR[1:], env)
    ours = {m: t for m, t in check_modules.items() if m.split(".")[0] == "imds_helpers"}
    stdlib = {m: t for m, t in check_modules.items() if m not in floor_modules and m not in ours}
    print("imports (python -X importtime, self times, median of 3; importtime inflates them)")
    print(f"  floor's imports                 {sum(floor_modules.values()):6.1f} ms ({len(floor_modules)} modules)")
    print(f"  check's imports                 {sum(check_modules.values()):6.1f} ms ({len(check_modules)} modules)")
    print(f"    imds_helpers modules          {sum(ours.values()):6.1f} ms ({len(ours)}): "
          + ", ".join(f"{m.removeprefix('imds_helpers.')} {t:.1f}" for m, t in _top(ours)))
    print(f"    standard library beyond floor {sum(stdlib.values()):6.1f} ms ({len(stdlib)}): "
          + ", ".join(f"{m} {t:.1f}" for m, t in _top(stdlib)))
    done = subprocess.run([PY, "-c", MEASURE_IMPORT, *sorted(ours)], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    if done.returncode == 0:
        total, dc_s, dc_n, re_s, re_n = map(float, done.stdout.split())
        print(f"  importing those modules (no importtime): {total * 1000:.1f} ms, of which {int(dc_n)} dataclasses "
              f"created {dc_s * 1000:.1f} ms, {int(re_n)} re.compile calls {re_s * 1000:.1f} ms")
    if profile:
        done = subprocess.run([PY, "-m", "cProfile", "-s", "cumtime", *argv, *check_args],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
        lines = done.stdout.splitlines()
        start = next((i for i, line in enumerate(lines) if "Ordered by" in line), None)
        if start is not None:
            print("\n  python -m cProfile -s cumtime (check --json), top 30:")
            print("\n".join("  " + line for line in lines[start + 2:start + 33]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="interleaved rounds (default 11)")
    parser.add_argument("--profile", action="store_true",
                        help="always say where the time goes, with a cProfile of check "
                             "(default: only when the target is missed)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    ensure_bytecode()
    with Emulator(mode="vm", scenario="vm-healthy", rate_limits=False) as emu, \
            tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
        times, text = measure(emu.base_url, args.runs, Path(tmp) / "evidence.json")
        if emu.canary in text:
            raise SystemExit("bench_collect: the bundle holds the emulator's canary")
        print(f"bundle of a healthy VM: {len(text.encode()) / 1000:.1f} KB")
        worst = report(times, args.runs)
        if args.profile or worst > TARGET:
            where_the_time_goes(emu.base_url, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
