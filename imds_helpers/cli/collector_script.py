"""``imds-runbook collector-script``: print the POSIX sh collector (imds_helpers/collect/imds-collect.sh),
byte for byte as shipped, for hosts without Python and for Azure Run Command:

    imds-runbook collector-script > imds-collect.sh
    sh imds-collect.sh --digest                 # on a host: the digest instead of the bundle

    # Azure Run Command ('set --' gives the script its arguments; README: "Through Azure Run Command")
    az vm run-command invoke -g RG -n VM --command-id RunShellScript \
        --scripts "$(printf 'set -- --digest\n'; imds-runbook collector-script)" > vm.json
    imds-runbook analyze vm.json
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources

SCRIPT = "imds-collect.sh"


def script_bytes() -> bytes:
    """The shipped script (package data of imds_helpers.collect). The probe (imds-probe.pyz)
    carries only the Python modules: there it is one line naming where to get it, exit 2."""
    from imds_helpers.model.errors import UsageError

    try:
        return resources.files("imds_helpers.collect").joinpath(SCRIPT).read_bytes()
    except OSError:
        raise UsageError(f"this copy of imds-runbook does not carry {SCRIPT} (imds-probe.pyz holds only the Python "
                         "collector): print it with an installed imds-runbook") from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Run it as: sh imds-collect.sh [OPTIONS] (its options: sh imds-collect.sh --help); the evidence "
                     "bundle, or with --digest the digest, is written to standard output.")


def run(args: argparse.Namespace) -> int:
    sys.stdout.flush()
    sys.stdout.buffer.write(script_bytes())
    sys.stdout.buffer.flush()
    return 0


__all__ = ["SCRIPT", "configure", "run", "script_bytes"]
