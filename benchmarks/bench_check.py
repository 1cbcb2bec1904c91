"""How fast does ``imds-runbook check`` give a verdict? (a script, not a timed test)

1. Healthy emulator: the whole ``imds-runbook check`` process (the console script, bytecode
   compiled as pip leaves it) vs ``python -c "import requests"`` (target: within 1.5x) - the
   median ratio of N back-to-back pairs, with quartiles. Inside the namespace, again with the
   three wireserver rules WALinuxAgent puts on every Azure Linux VM, so that the firewall check
   has real rules to read.
2. IMDS dropped by a firewall: an iptables DROP rule for 169.254.169.254:80 inside the private
   namespace; ``imds-runbook check`` with default settings (target: a named verdict within 5 s)
   vs the guide's curl, which waits for the kernel's SYN retries (about two minutes).

    tests/isolated.sh .venv/bin/python benchmarks/bench_check.py [--runs N] [--curl-cap S]

Part 2 needs the namespace and iptables; without them it says so and skips. ``--curl-cap``
bounds the curl wait (default 150 s; 0 skips curl).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imds_helpers.emulator import Emulator  # noqa: E402

PY = sys.executable
SEED_CURL = ["curl", "-s", "-H", "Metadata:true", "--noproxy", "*",
             "http://169.254.169.254/metadata/instance?api-version=2019-11-01&format=json"]


def timed(argv: list[str], timeout: float = 300) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return time.perf_counter() - start, done


def check_command() -> list[str]:
    """The ``imds-runbook`` console script the issue measures (``python -m`` adds runpy)."""
    script = Path(PY).with_name("imds-runbook")
    return [str(script)] if script.exists() else [PY, "-m", "imds_helpers"]


def ensure_bytecode() -> None:
    # requests was byte-compiled by pip; an editable install of ours was not, and with
    # PYTHONDONTWRITEBYTECODE set every start would compile our sources again. Compare like
    # with like, as a regular pip install (or `make bytecode`) leaves it.
    compileall.compile_dir(str(REPO / "imds_helpers"), quiet=1)


# What WALinuxAgent installs on every Azure Linux VM (wireserver 168.63.129.16: DNS and root
# only). They do not touch IMDS, but with them the check reads and evaluates real rules.
WALINUXAGENT_RULES = (
    ["-t", "security", "-A", "OUTPUT", "-d", "168.63.129.16/32", "-p", "tcp", "--dport", "53", "-j", "ACCEPT"],
    ["-t", "security", "-A", "OUTPUT", "-d", "168.63.129.16/32", "-p", "tcp", "-m", "owner", "--uid-owner", "0",
     "-j", "ACCEPT"],
    ["-t", "security", "-A", "OUTPUT", "-d", "168.63.129.16/32", "-p", "tcp", "-m", "conntrack", "--ctstate",
     "INVALID,NEW", "-j", "DROP"],
)


def pairs(check: list[str], runs: int) -> tuple[float, float, list[float]]:
    """Medians of ours and the baseline, and the ratio of each back-to-back pair."""
    baseline = [PY, "-c", "import requests"]
    timed(check), timed(baseline)  # warm the file cache
    ours, base = [], []
    for _ in range(runs):
        ours.append(timed(check)[0])
        base.append(timed(baseline)[0])
    # This machine's speed drifts between runs; the ratio of each back-to-back pair cancels it.
    return statistics.median(ours), statistics.median(base), [o / b for o, b in zip(ours, base)]


def report_pairs(title: str, result: tuple[float, float, list[float]]) -> None:
    mo, mb, ratios = result
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    print(title)
    print(f"   python -c 'import requests'   {mb * 1000:7.0f} ms")
    print(f"   imds-runbook check            {mo * 1000:7.0f} ms")
    print(f"   ratio                         {median:7.2f}x   (quartiles {q1:.2f}-{q3:.2f}; target <= 1.5x)")


def healthy(runs: int) -> None:
    ensure_bytecode()
    # Back-to-back runs would exceed IMDS's 5 requests/s and wait out 429s: measure the tool,
    # not the rate limit.
    with Emulator(mode="vm", scenario="vm-healthy", rate_limits=False) as emu:
        check = [*check_command(), "check", "--target", "vm", "--endpoint", emu.base_url]
        report_pairs(f"1. healthy emulator, whole process (median of {runs} back-to-back pairs)", pairs(check, runs))
        if os.environ.get("IMDS_RUNBOOK_NETNS") == "1" and shutil.which("iptables"):
            for rule in WALINUXAGENT_RULES:
                subprocess.run(["iptables", *rule], check=True)
            try:
                report_pairs("   ... with WALinuxAgent's three wireserver rules loaded (as on an Azure VM)",
                             pairs(check, runs))
            finally:
                for rule in WALINUXAGENT_RULES:
                    subprocess.run(["iptables", *[("-D" if w == "-A" else w) for w in rule]], check=True)


def firewalled(curl_cap: float) -> None:
    print("2. IMDS dropped by iptables (DROP 169.254.169.254:80), default settings")
    if os.environ.get("IMDS_RUNBOOK_NETNS") != "1" or not shutil.which("iptables"):
        print("   skipped: needs tests/isolated.sh's namespace and iptables")
        return
    rule = ["OUTPUT", "-d", "169.254.169.254", "-p", "tcp", "--dport", "80", "-j", "DROP"]
    with Emulator(mode="vm", host="169.254.169.254", port=80):
        subprocess.run(["iptables", "-I", *rule], check=True)
        try:
            elapsed, done = timed([*check_command(), "check", "--target", "vm", "--json"])
            report = json.loads(done.stdout)
            tcp = next(c for c in report["checks"] if c["id"] == "network.tcp")
            print(f"   imds-runbook check            {elapsed:7.1f} s   verdict {report['verdict']}, "
                  f"{tcp['code']} ({tcp['title']})   (target <= 5 s)")
            if curl_cap > 0 and shutil.which("curl"):
                try:
                    elapsed, done = timed(SEED_CURL, timeout=curl_cap)
                    print(f"   guide's curl                  {elapsed:7.1f} s   exit {done.returncode}")
                except subprocess.TimeoutExpired:
                    print(f"   guide's curl                  > {curl_cap:.0f} s   (still waiting; stopped)")
        finally:
            subprocess.run(["iptables", "-D", *rule], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--curl-cap", type=float, default=150.0)
    args = parser.parse_args()
    healthy(args.runs)
    firewalled(args.curl_cap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
