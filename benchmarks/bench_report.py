"""How fast is ``imds-runbook report`` on a big fleet? (a script, not a timed test)

Generates N sidecars (default 10,000 hosts, the runner's layout ``<host>/<host>.json``) in a
temporary folder, then times the CLI end to end - a fresh interpreter each time, pandas
import included - for every output format, plus an in-process breakdown. Target:
``report DIR`` (table) under 3 s for 10,000 hosts.

Sidecars (default ``--kind real``) are the committed ``notebooks/sample-results`` - real
pipeline output of emulated hosts, 20-25 KB each with evidence, commands and attempts - under
new host names, 90 % the healthy one. ``--kind small`` is the older synthetic 10-check sidecar
(about 10 KB), which flatters the reader: JSON parsing is most of the work.

    .venv/bin/python benchmarks/bench_report.py [--hosts N] [--repeat R] [--kind real|small] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imds_helpers.fleet.sidecar import SIDECAR_SCHEMA  # noqa: E402

CHECKS = [
    ("platform.detect", "IMDS-PLAT-000", "IMDS-PLAT-002"),
    ("proxy.env", "IMDS-PROXY-000", "IMDS-PROXY-001"),
    ("network.route", "IMDS-NET-000", "IMDS-NET-001"),
    ("network.tcp", "IMDS-NET-000", "IMDS-NET-002"),
    ("metadata.instance", "IMDS-META-000", "IMDS-META-003"),
    ("metadata.versions", "IMDS-META-000", "IMDS-META-005"),
    ("token.system.management", "IMDS-TOKEN-000", "IMDS-TOKEN-004"),
    ("token.system.monitor", "IMDS-TOKEN-000", "IMDS-TOKEN-004"),
    ("token.user.client_id", "IMDS-TOKEN-000", "IMDS-TOKEN-006"),
    ("token.expiry", "IMDS-TOKEN-000", "IMDS-TOKEN-009"),
]


def make_sidecar(host: str, rng: random.Random) -> dict:
    checks = []
    for check_id, ok_code, bad_code in CHECKS:
        roll = rng.random()
        status = "fail" if roll < 0.03 else "warn" if roll < 0.06 else "skip" if roll < 0.08 else "ok"
        code = ok_code if status in ("ok", "skip") else bad_code
        elapsed = round(rng.lognormvariate(2.5, 0.8), 1)
        checks.append({
            "id": check_id, "status": status, "code": code, "title": f"title of {code}",
            "detail": f"{check_id}: {status} after {elapsed} ms",
            "explanation": "Why this matters, in two sentences of catalogue text. " * 2,
            "fix": "" if status == "ok" else f"What to do about {code}, from the catalogue.",
            "elapsed_ms": elapsed,
            "evidence": {"endpoint": "http://169.254.169.254", "attempt": 1, "proxy": None},
            "commands": {"curl": f"curl -sS -H Metadata:true 'http://169.254.169.254/metadata/{check_id}'",
                         "powershell": "Invoke-RestMethod -Headers @{Metadata='true'} -Uri ..."},
            "attempts": [{"method": "GET", "url": "http://169.254.169.254/metadata/instance",
                          "status": 200, "error": None, "elapsed_ms": elapsed,
                          "headers": {"Content-Type": "application/json"}, "body_excerpt": "{...}"}],
        })
    tally = {s: sum(c["status"] == s for c in checks) for s in ("ok", "warn", "fail", "skip")}
    verdict = "fail" if tally["fail"] else "warn" if tally["warn"] else "ok"
    return {
        "schema": SIDECAR_SCHEMA, "host": host, "notebook": "01_azure_vm_imds",
        "started_at": "2026-11-26T08:00:00Z", "duration_s": round(rng.uniform(1, 5), 3),
        "parameters": {"endpoint": "", "timeout_s": 10.0}, "verdict": verdict, "target": "vm",
        "endpoint": "http://169.254.169.254", "tally": tally,
        "platform": {"kind": "azure_vm", "os": "linux"}, "checks": checks,
        "run": {"status": "ok" if verdict == "ok" else "findings", "error": None,
                "duration_s": 3.0, "notebook_path": None, "html_path": None},
    }


SAMPLES = REPO / "notebooks" / "sample-results"
HEALTHY_SAMPLE = "web-01.json"


def real_sidecar(host: str, rng: random.Random, samples: dict[str, dict]) -> dict:
    """A committed sample (real pipeline output) under a new host name; mostly the healthy one."""
    name = HEALTHY_SAMPLE if rng.random() < 0.9 else rng.choice(sorted(samples))
    data = json.loads(json.dumps(samples[name]))
    data["host"] = host
    data["started_at"] = f"2026-11-26T08:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
    return data


def generate(folder: Path, hosts: int, kind: str = "real") -> int:
    rng = random.Random(4)
    samples = {p.name: json.loads(p.read_text()) for p in sorted(SAMPLES.glob("*.json"))}
    size = 0
    for i in range(hosts):
        host = f"vm-{i:05d}"
        (folder / host).mkdir(parents=True, exist_ok=True)
        sidecar = real_sidecar(host, rng, samples) if kind == "real" else make_sidecar(host, rng)
        text = json.dumps(sidecar, indent=1)
        (folder / host / f"{host}.json").write_text(text)
        size += len(text)
    (folder / "vm-broken").mkdir(exist_ok=True)
    (folder / "vm-broken" / "vm-broken.json").write_text('{"schema": "' + SIDECAR_SCHEMA + '", ')
    return size


def time_cli(folder: Path, fmt: str, repeat: int) -> tuple[float, float, int]:
    times, code = [], 0
    out = folder.parent / f"report.{fmt}"
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "imds_helpers", "report", str(folder),
                               "--format", fmt, "--output", str(out)],
                              cwd=REPO, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        code = done.returncode
        if code not in (0, 1):
            raise SystemExit(f"report failed: {done.stderr.strip()}")
    return min(times), statistics.median(times), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kind", choices=("real", "small"), default="real",
                        help="real: committed sample sidecars (default); small: the 10-check synthetic one")
    parser.add_argument("--keep", type=Path, default=None, help="generate here and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        folder = (args.keep or Path(tmp)) / "results"
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        size = generate(folder, args.hosts, args.kind)
        print(f"generated {args.hosts:,} {args.kind} sidecars ({size / 1e6:.1f} MB, "
              f"{size / args.hosts / 1e3:.1f} KB each) in {time.perf_counter() - t0:.1f} s")

        import pandas  # noqa: F401  (import cost is part of the CLI numbers, not of these)
        from imds_helpers.fleet import report

        t0 = time.perf_counter()
        df = report.load_results(folder)
        t_load = time.perf_counter() - t0
        steps = {"load_results": t_load}
        for name, fn in (("summary_table", report.summary_table),
                         ("status_matrix", report.status_matrix),
                         ("top_findings", report.top_findings),
                         ("latency_table", report.latency_table),
                         ("render_text_report", report.render_text_report),
                         ("render_html", report.render_html)):
            t0 = time.perf_counter()
            fn(df)
            steps[name] = time.perf_counter() - t0
        print(f"\nin-process ({len(df):,} rows):")
        for name, seconds in steps.items():
            print(f"  {name:<20} {seconds:6.2f} s")

        print(f"\nend to end: imds-runbook report DIR --format F  (best / median of {args.repeat})")
        print(f"  {'format':<10} {'best s':>7} {'median s':>9}  exit  target")
        for fmt in ("table", "csv", "markdown", "html"):
            best, median, code = time_cli(folder, fmt, args.repeat)
            target = ("< 3 s " + ("met" if median < 3 else "MISSED")) if fmt == "table" else ""
            print(f"  {fmt:<10} {best:7.2f} {median:9.2f}  {code:>4}  {target}")
        if args.keep:
            print(f"\nkept: {folder}")


if __name__ == "__main__":
    main()
