"""``imds-runbook demo`` (``make demo``): the main job on the embedded emulator.

Runs the runbooks with papermill on emulated hosts - healthy and broken in the ways support
engineers meet most - writes the per-host reports under ``reports/``, prints the summary
table, and checks that each host got the verdict it was built to show. Nothing leaves the
machine: every host's emulator listens on loopback inside its own kernel.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imds_helpers.model.catalog import (ARC_KEY_ROOT_ONLY, ARC_KEY_UNREADABLE, ARC_OK_CHAIN, NET_TCP_TIMEOUT,
                                  PROXY_NOT_BYPASSED, TOKEN_OK, TOKEN_UAMI_NOT_ATTACHED)
from imds_helpers.runbooks.resources import data_dir

DEMO_DIR = data_dir("parameters") / "demo"

# host (= parameter file name) -> the finding codes that host must show (any of).
EXPECTED: dict[str, tuple[str, ...]] = {
    "web-healthy": (TOKEN_OK,),
    "web-missing-uami": (TOKEN_UAMI_NOT_ATTACHED,),
    "web-proxy-no-bypass": (PROXY_NOT_BYPASSED,),
    "web-firewalled": (NET_TCP_TIMEOUT,),
    "arc-healthy": (ARC_OK_CHAIN,),
    "arc-key-unreadable": (ARC_KEY_ROOT_ONLY, ARC_KEY_UNREADABLE),  # root-only as root, else unreadable
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="output folder (default: reports/<UTC timestamp>/)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="hosts run at the same time (default 2)")


def run(args: argparse.Namespace) -> int:
    from imds_helpers.cli import run as run_cli

    files = [DEMO_DIR / f"{host}.yaml" for host in EXPECTED]
    out = args.out if args.out is not None else run_cli.default_out_dir()
    run_args = argparse.Namespace(param_files=files, notebook="auto", out=out, workers=args.workers,
                                  timeout=300.0, cell_timeout=60.0, kernel="python3", notebooks_dir=None)
    run_cli.run(run_args)  # exit 1 is expected: most demo hosts are broken on purpose
    return _verify(out)


def _verify(out: Path) -> int:
    """Each demo host must show what it was built to show."""
    from imds_helpers.fleet.sidecar import SidecarError, read_sidecar

    missing = []
    lines = ["", "Demo check (each host shows what it was built to show):"]
    for host, codes in EXPECTED.items():
        try:
            found = {c["code"] for c in read_sidecar(out / host / f"{host}.json")["checks"]}
        except (SidecarError, OSError) as err:
            found, note = set(), f" ({err})"
        else:
            note = ""
        hit = sorted(found & set(codes))
        lines.append(f"  {'OK  ' if hit else 'MISS'} {host:<20} expected {' or '.join(codes)}{note}")
        if not hit:
            missing.append(host)
    sys.stdout.write("\n".join(lines) + "\n")
    return 1 if missing else 0
