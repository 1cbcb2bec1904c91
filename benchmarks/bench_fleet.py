"""Issue 15's fleet benchmark: collection against Ansible's own floor, then rendering (a script,
not a timed test). Runs as root inside the private namespace, where the fleet rig can build VMs:

    tests/isolated.sh .venv/bin/python benchmarks/bench_fleet.py [--vms 20] [--forks 10] [--rounds 3]
                                                                 [--render-rounds R]

The rig (tests/fleet/rig.py, the fleet tests' one implementation) is brought up once with N
healthy namespace VMs (``vm-healthy``: each its own netns, sshd, host key and IMDS emulator),
reached over real SSH. Then:

1. Collection against the engine's floor, interleaved (the order alternates each round, and
   every run starts with no SSH connection open, as a fleet run meets its hosts):
   ``ansible all -i INV -m ping --forks F`` against the fleet command's collection phase.
   ``imds-runbook fleet`` cannot be told to stop after collecting, so the phase is run the way
   it runs it: ``ansible-playbook -i INV collect.yml -e @extra-vars.json --forks F`` (the
   command line of :func:`imds_helpers.fleet.ansible_run.playbook_command`, the extra
   variables ``imds_out_dir`` and ``imds_probe`` written as
   :func:`imds_helpers.fleet.fleet_run.run_fleet` writes them), followed through
   :func:`~imds_helpers.fleet.ansible_run.run_playbook` as the command follows it (its events
   file, polled every 0.2 s). The probe is built once; the fleet command builds it on each
   run (its time is printed beside). Median and quartiles of each, and of the per-round ratio.
   Target: collection <= 2x ping. Where the time goes: when the records arrived, and the CPU
   seconds of each run, split between the controller (ansible, its forks, SSH clients and
   masters) and the VMs (sshd, the probe or ping's module, the emulators), counting only this
   run's processes; "cores busy" near the machine's core count means the run was bound by CPU,
   not by waiting.
2. Rendering the reports afterwards: one whole ``run_fleet`` (collection, reports, the fleet
   notebook; its phases printed) writes each host's ``params.yaml`` (``evidence_path`` to the
   bundle, vouched for by ``_fleet.json``); those files are then rendered again, as
   ``imds-runbook run`` renders them (:func:`imds_helpers.fleet.runner.run_hosts`, the
   fleet's own render path), for N/4, N/2 and N hosts with workers 1 and 2. Targets: the time
   per host flat across the sizes within 25% (linear in hosts), and workers=2 over workers=1
   at N hosts > 1.5x (both cores used).

The VMs share this machine's cores with the controller (on a real fleet each host spends its
own CPU): the probe's work on the VMs lands on the same cores as Ansible's, which the CPU
table shows, so the ratio here is an upper bound for a fleet of real machines.

Every run is checked (every host pinged, every bundle back, not carrying its VM's emulator
canary, every report rendered): a wrong answer stops the script with a non-zero exit. Where
the machine cannot build the fleet (not root, not in the namespace, no sshd, no ansible) it
prints one line naming what is missing and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COLLECT_TARGET = 2.0          # collection <= 2x ping
LINEAR_SPREAD = 0.25          # per-host render time within 25% across sizes
SPEED_UP_TARGET = 1.5         # workers=2 over workers=1


def _load_rig():
    """tests/fleet/rig.py, loaded by path as tools/fleet_rig.py loads it."""
    path = REPO / "tests" / "fleet" / "rig.py"
    spec = importlib.util.spec_from_file_location("imds_fleet_rig", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)          # type: ignore[union-attr]
    return module


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(q1, median, q3); one value is its own quartiles."""
    if len(values) == 1:
        return (values[0],) * 3
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


# --------------------------------------------------------------------------- CPU accounting

TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: str, *, children: bool = True) -> float:
    """utime + stime (+ the reaped children's) of a process, in seconds; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / TICK


def _machine_busy() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


class CpuMeter:
    """Where one run's CPU went, counting only this run's own processes (other work on the
    machine is shown apart): the controller (this process, ansible and its forks and SSH
    clients, which it waits for, and the SSH masters, read before they are closed) and the
    VMs (every process in their network namespaces, sshd, the probe or ping's module, the
    emulators, with the children they reaped)."""

    def __init__(self, rig: Any) -> None:
        self.namespaces = set()
        for host in rig.hosts.values():
            for ns in (host.netns, host.platform_netns):
                if ns:
                    self.namespaces.add(os.stat(f"/run/netns/{ns}").st_ino)
        self.masters = tuple(f"ssh: {path}/".encode() for path in {rig.root / "cp", rig.control_dir})

    def masters_alive(self) -> bool:
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        if handle.read(512).startswith(self.masters):
                            return True
                except OSError:
                    continue
        return False

    def _scan(self) -> tuple[float, float]:
        """(the VMs' CPU, the SSH masters')."""
        vms = masters = 0.0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                inode = os.stat(f"/proc/{pid}/ns/net").st_ino
            except OSError:
                continue
            if inode in self.namespaces:
                vms += _proc_cpu(pid)
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    head = handle.read(512)
            except OSError:
                continue
            if head.startswith(self.masters):
                masters += _proc_cpu(pid)
        return vms, masters

    @staticmethod
    def _ours() -> float:
        self_, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime

    def start(self) -> tuple[float, ...]:
        vms, _ = self._scan()
        return (self._ours(), vms, _machine_busy())

    def stop(self, start: tuple[float, ...]) -> dict[str, float]:
        ours, busy = self._ours(), _machine_busy()
        vms, masters = self._scan()
        controller = ours - start[0] + masters
        vm = vms - start[1]
        return {"controller": controller, "vms": vm, "others": max(0.0, busy - start[2] - controller - vm)}


# --------------------------------------------------------------------------- collection


class Collection:
    """The two commands of part 1 against one rig, each run checked."""

    def __init__(self, rig_module: Any, rig: Any, forks: int, work: Path) -> None:
        from imds_helpers.fleet.fleet_run import build_probe

        self.rig_module, self.rig, self.forks, self.work = rig_module, rig, forks, work
        self.env = rig.ansible_env()
        self.ansible = rig_module.ansible_bin("ansible")
        self.playbook = rig_module.ansible_bin("ansible-playbook")
        t0 = time.perf_counter()
        self.probe = build_probe(work / "imds-probe.pyz").resolve()
        self.probe_s = time.perf_counter() - t0
        self.runs = 0
        self.last_out: Path | None = None
        self.last_run: Any = None
        self.last_started = 0.0
        self.meter = CpuMeter(rig)
        self.cpu: dict[str, list[dict[str, float]]] = {"ping": [], "collect": []}

    def close_connections(self) -> None:
        """Every SSH master left by the previous run closed (and gone): each timed run starts cold."""
        cp = self.rig.root / "cp"
        for sock in sorted(cp.iterdir()) if cp.is_dir() else []:
            if sock.is_socket():
                subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "rig"],
                               capture_output=True, timeout=10)
        deadline = time.monotonic() + 5
        while self.meter.masters_alive() and time.monotonic() < deadline:
            time.sleep(0.02)

    def ping(self) -> float:
        self.close_connections()
        cmd = [self.ansible, "all", "-i", str(self.rig.inventory), "-m", "ping", "--forks", str(self.forks)]
        cpu = self.meter.start()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=self.env, cwd=self.work, capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - t0
        self.cpu["ping"].append(self.meter.stop(cpu))
        answered = proc.stdout.count("| SUCCESS")
        if proc.returncode != 0 or answered != len(self.rig.hosts):
            raise SystemExit(f"ansible ping: exit {proc.returncode}, {answered} of {len(self.rig.hosts)} hosts "
                             f"answered:\n{(proc.stdout + proc.stderr)[-2000:]}")
        return seconds

    def collect(self) -> float:
        """The fleet command's collection phase: its playbook, its extra variables, its follower."""
        from imds_helpers.fleet.ansible_run import playbook_command, run_playbook

        self.close_connections()
        self.runs += 1
        out = self.work / f"collect-{self.runs:02d}"
        out.mkdir()
        ansible_dir = out / "_ansible"
        ansible_dir.mkdir()
        vars_file = ansible_dir / "extra-vars.json"
        cpu = self.meter.start()
        started = time.time()
        t0 = time.perf_counter()
        vars_file.write_text(json.dumps({"imds_out_dir": str(out), "imds_probe": str(self.probe)}, indent=1) + "\n",
                             encoding="utf-8")
        command = playbook_command(str(self.rig.inventory), extra_vars_file=vars_file, forks=self.forks,
                                   executable=self.playbook)
        run = run_playbook(command, work_dir=ansible_dir, env=self.env)
        seconds = time.perf_counter() - t0
        self.cpu["collect"].append(self.meter.stop(cpu))
        self._check(run, out)
        self.last_out, self.last_run, self.last_started = out, run, started
        return seconds

    def _check(self, run: Any, out: Path) -> None:
        hosts = self.rig.hosts
        missing = [h for h in hosts if not (out / h / "evidence.json").is_file()]
        if run.returncode != 0 or set(run.records) != set(hosts) or missing:
            raise SystemExit(f"collection: exit {run.returncode}, records from {len(run.records)} of {len(hosts)} "
                             f"hosts, no bundle from {missing[:5]}; see {run.log_path}")
        for name, host in hosts.items():
            data = (out / name / "evidence.json").read_bytes()
            if host.canary.encode() in data:
                raise SystemExit(f"collection: {name}'s bundle carries its emulator's canary (a token leaked)")
            if json.loads(data)["host"]["hostname"] != name:
                raise SystemExit(f"collection: {name}'s bundle is another VM's")


def part_collection(coll: Collection, rounds: int) -> dict[str, list[float]]:
    # One of each first, not timed: imports and file caches warm, the VMs' first logins done.
    coll.ping()
    coll.collect()
    for runs in coll.cpu.values():
        runs.clear()
    times: dict[str, list[float]] = {"ping": [], "collect": []}
    for round_no in range(rounds):
        order = ("ping", "collect") if round_no % 2 == 0 else ("collect", "ping")
        for what in order:
            times[what].append(coll.ping() if what == "ping" else coll.collect())
    return times


def arrival_phases(run: Any, started: float) -> str:
    """The last timed collection's phases, from its events file (each event carries the wall
    time): ansible-playbook's start-up, the check play, the collection play, each host's record."""
    plays, records, end = [], [], None
    try:
        lines = Path(run.events_path).read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            event = json.loads(line)
            t = float(event["t"]) - started
        except (ValueError, KeyError, TypeError):
            continue
        if event.get("event") == "start":
            plays.append(t)
        elif event.get("event") == "record":
            records.append(t)
        elif event.get("event") == "end":
            end = t
    if not records or not plays:
        return "  (the events file has no play start or record times)"
    records.sort()
    q1, med, q3 = quartiles(records)
    parts = [f"first play starts {plays[0]:.2f} s"]
    if len(plays) > 1:
        parts.append(f"collection play {plays[-1]:.2f} s")
    parts.append(f"records {records[0]:.2f} s .. {records[-1]:.2f} s (median {med:.2f} s)")
    if end is not None:
        parts.append(f"play recap {end:.2f} s")
    parts.append(f"the command returns {run.duration_s:.2f} s")
    return "  the last timed collection, from its start: " + ", ".join(parts)


def report_collection(times: dict[str, list[float]], coll: Collection, vms: int, forks: int) -> float:
    ping, collect = times["ping"], times["collect"]
    ratios = [c / p for c, p in zip(collect, ping)]
    with_probe = [(c + coll.probe_s) / p for c, p in zip(collect, ping)]
    rounds = len(ping)
    print(f"\n1. collection against the engine's floor: {vms} VMs, forks {forks}, {rounds} round(s), "
          f"interleaved, no SSH connection open at the start of a run")
    print(f"  {'':<52} {'median':>7} {'quartiles':>13}   ratio to ping: median (quartiles)")
    rows = (("ansible all -m ping", ping, None),
            ("collect.yml as imds-runbook fleet runs it", collect, ratios))
    for label, values, rel in rows:
        q1, med, q3 = quartiles(values)
        line = f"  {label:<52} {med:6.2f}s {q1:6.2f}-{q3:<6.2f}"
        if rel is None:
            line += "   1.00x"
        else:
            r1, rm, r3 = quartiles(rel)
            line += f"   {rm:.2f}x ({r1:.2f}-{r3:.2f})"
        print(line)
    r1, rm, r3 = quartiles(with_probe)
    print(f"  {'  + building the probe (the command does, each run)':<52} {coll.probe_s:6.2f}s {'':13}"
          f"   {rm:.2f}x ({r1:.2f}-{r3:.2f})")
    ratio = quartiles(ratios)[1]
    print(f"collection / ping: {ratio:.2f}x (target <= {COLLECT_TARGET:g}x: "
          f"{'met' if ratio <= COLLECT_TARGET else 'MISSED'})")

    print(arrival_phases(coll.last_run, coll.last_started))
    # Where the time goes: CPU seconds per run, medians.
    cores = os.cpu_count() or 1
    print(f"  where the time goes (CPU seconds per run, medians; {cores} cores):")
    print(f"  {'':<52} {'controller':>10} {'VMs':>6} {'per host':>9} {'cores busy':>11} {'others':>7}")
    for label, key in (("ansible all -m ping", "ping"), ("collect.yml", "collect")):
        runs = coll.cpu[key]
        ctl = statistics.median(r["controller"] for r in runs)
        vm = statistics.median(r["vms"] for r in runs)
        busy = statistics.median((r["controller"] + r["vms"]) / t for r, t in zip(runs, times[key]))
        others = statistics.median(r["others"] for r in runs)
        print(f"  {label:<52} {ctl:9.2f}s {vm:5.2f}s {(ctl + vm) / vms:8.3f}s {busy:10.2f} {others:6.2f}s")
    print("  (controller: ansible, its forks, SSH clients and masters; VMs: sshd, the probe or ping's module, "
          "the emulators; others: the rest of the machine meanwhile)")
    return ratio


# --------------------------------------------------------------------------- rendering


def whole_fleet_run(rig: Any, forks: int, out: Path) -> Any:
    """One ``imds-runbook fleet`` run (in this process): the reports' parameter files, and the
    phases of the whole command for reference."""
    from imds_helpers.fleet.fleet_run import run_fleet

    t0 = time.perf_counter()
    summary = run_fleet(str(rig.inventory), out_dir=out, forks=forks, env=rig.ansible_env(), workers=2)
    seconds = time.perf_counter() - t0
    bad = [h for h in summary.hosts if h.status not in ("ok", "findings")]
    if bad:
        raise SystemExit(f"imds-runbook fleet: {len(bad)} host(s) not diagnosed: {bad[0].host}: "
                         f"{bad[0].status} {bad[0].reason}")
    if summary.notebook_error:
        raise SystemExit(f"imds-runbook fleet: the fleet notebook failed: {summary.notebook_error}")
    notebook_s = summary.duration_s - summary.collect_s - summary.render_s
    print(f"\n2. rendering. One whole fleet run first ({len(summary.hosts)} hosts, forks {forks}, workers 2): "
          f"{seconds:.1f} s = collection {summary.collect_s:.1f} s (probe build included) + reports "
          f"{summary.render_s:.1f} s + fleet notebook and summaries {notebook_s:.1f} s")
    return summary


def render_once(files: Sequence[Path], workers: int, out: Path) -> float:
    from imds_helpers.fleet.runner import run_hosts

    t0 = time.perf_counter()
    summary = run_hosts(files, notebook="auto", out_dir=out, workers=workers, cell_timeout=60, host_timeout=300)
    seconds = time.perf_counter() - t0
    bad = [r for r in summary.rows if r.status not in ("ok", "findings") or not r.html_path]
    if bad or len(summary.rows) != len(files):
        first = bad[0] if bad else None
        raise SystemExit(f"rendering: {len(bad)} of {len(files)} report(s) not rendered"
                         + (f": {first.host}: {first.status} {first.error}" if first else ""))
    return seconds


def part_rendering(files: Sequence[Path], rounds: int,
                   work: Path) -> tuple[list[int], dict[tuple[int, int], list[float]]]:
    n = len(files)
    sizes = sorted({max(1, n // 4), max(1, n // 2), n})
    render_once(files[:1], 1, work / "warm-up")        # forkserver and the notebook stack, once
    times: dict[tuple[int, int], list[float]] = {(s, w): [] for s in sizes for w in (1, 2)}
    for round_no in range(rounds):
        for size in sizes:
            for workers in ((1, 2) if round_no % 2 == 0 else (2, 1)):
                out = work / f"render-{round_no}-{size}-w{workers}"
                times[(size, workers)].append(render_once(files[:size], workers, out))
    return sizes, times


def report_rendering(sizes: list[int], times: dict[tuple[int, int], list[float]]) -> tuple[float, float]:
    rounds = len(times[(sizes[0], 1)])
    print(f"  rendering the fleet's params.yaml files again (run_hosts, as imds-runbook run), {rounds} round(s), "
          "median (quartiles)")
    print(f"  {'hosts':>5}  {'workers=1':>22} {'s/host':>7}  {'workers=2':>22} {'s/host':>7}  {'speed-up':>16}")
    per_host: dict[int, list[float]] = {1: [], 2: []}
    speed_ups: list[float] = []
    for size in sizes:
        line = f"  {size:5d}"
        for workers in (1, 2):
            q1, med, q3 = quartiles(times[(size, workers)])
            per_host[workers].append(med / size)
            line += f"  {med:8.2f}s ({q1:5.2f}-{q3:5.2f}) {med / size:6.2f}s"
        ratios = [a / b for a, b in zip(times[(size, 1)], times[(size, 2)])]
        r1, rm, r3 = quartiles(ratios)
        line += f"  {rm:5.2f}x ({r1:.2f}-{r3:.2f})"
        if size == sizes[-1]:
            speed_ups = ratios
        print(line)
    # The time per host, compared across the sizes that give every worker a host (one host
    # cannot keep two workers busy). An odd size leaves the last slot of 2 workers half empty:
    # 5 hosts take 3 slots, 20% over 2.5, part of the spread at N/4 = 5.
    spreads: dict[int, float] = {}
    parts = []
    for workers, values in per_host.items():
        least = workers
        judged = [(size, v) for size, v in zip(sizes, values) if size >= least]
        if len(judged) >= 2:
            spreads[workers] = max(v for _, v in judged) / min(v for _, v in judged) - 1
            parts.append(f"workers={workers} {spreads[workers]:.0%} ({', '.join(str(n) for n, _ in judged)} hosts)")
        else:
            parts.append(f"workers={workers} n/a (needs two sizes of >= {least} hosts)")
    verdict = ("n/a" if not spreads else "met" if all(v <= LINEAR_SPREAD for v in spreads.values()) else "MISSED")
    print(f"time per host, spread across sizes: {'; '.join(parts)} (linear, within {LINEAR_SPREAD:.0%}: {verdict})")
    speed_up = quartiles(speed_ups)[1]
    print(f"workers=2 vs 1 at {sizes[-1]} hosts: {speed_up:.2f}x (target > {SPEED_UP_TARGET:g}x, both cores used: "
          f"{'met' if speed_up > SPEED_UP_TARGET else 'MISSED'})")
    return max(spreads.values(), default=0.0), speed_up


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=20, help="healthy namespace VMs (default 20)")
    parser.add_argument("--forks", type=int, default=10, help="Ansible forks (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of each part (default 3)")
    parser.add_argument("--render-rounds", type=int, default=None,
                        help="rounds of the rendering part (default: --rounds)")
    args = parser.parse_args()
    for name in ("vms", "forks", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.vms > 200:
        parser.error("--vms: at most 200 (one /24 per rig)")
    render_rounds = args.render_rounds if args.render_rounds is not None else args.rounds
    if render_rounds < 1:
        parser.error("--render-rounds must be at least 1")

    rig_module = _load_rig()
    vms = [rig_module.VM(f"vm-{i:02d}", "vm-healthy") for i in range(args.vms)]
    reason = rig_module.unavailable(vms, ansible=True) or (
        None if rig_module.ansible_bin("ansible") else "needs the ansible command (ansible-core)")
    if reason:
        print(f"bench_fleet: skipped: the fleet rig {reason}")
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        root = Path(tmp)
        try:
            with rig_module.fleet(root, vms, forks=args.forks) as rig:
                measure(rig_module, rig, args, render_rounds, root)
        except rig_module.RigError as err:     # bring-up or teardown: which VM and why, canaries masked
            print(f"bench_fleet: the fleet rig: {err}", file=sys.stderr)
            return 1
    return 0


def measure(rig_module: Any, rig: Any, args: argparse.Namespace, render_rounds: int, root: Path) -> None:
    print(f"fleet rig: {len(rig.hosts)} healthy namespace VMs (vm-healthy) up in {rig.timings['up_s']:.1f} s; "
          f"Ansible {_ansible_version(rig_module)}, {os.cpu_count()} CPUs")
    work = root / "work"
    work.mkdir()
    coll = Collection(rig_module, rig, args.forks, work)
    times = part_collection(coll, args.rounds)
    report_collection(times, coll, args.vms, args.forks)
    summary = whole_fleet_run(rig, args.forks, root / "fleet-out")
    files = [Path(h.sidecar_path).parent / "params.yaml" for h in summary.hosts]
    sizes, render_times = part_rendering(files, render_rounds, root / "render")
    report_rendering(sizes, render_times)


def _ansible_version(rig_module: Any) -> str:
    try:
        out = subprocess.run([rig_module.ansible_bin("ansible-playbook"), "--version"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    first = out.splitlines()[0] if out else "?"
    return first.replace("ansible-playbook ", "")


if __name__ == "__main__":
    sys.exit(main())
