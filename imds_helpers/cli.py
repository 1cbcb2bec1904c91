"""``imds-runbook`` command line: a table of subcommands, each in its own light module.

Each command module exposes ``configure(parser)`` and ``run(args) -> int``. Modules are
imported only for the chosen command (plus argument set-up), so ``imds-runbook check``
never imports pandas or Jupyter.

Exit codes: 0 ok, 1 findings (warn / fail), 2 bad usage (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn, Sequence

from imds_helpers import __version__
from imds_helpers.errors import UsageError, one_line

PROG = "imds-runbook"

# name -> (module, one-line help). Adding a command is adding a row.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("imds_helpers.check_cli", "diagnose IMDS / Arc HIMDS reachability and tokens, layer by layer"),
    "emulator": ("imds_helpers.emulator.cli", "serve an emulated IMDS or Arc HIMDS with fault scenarios"),
    "demo": ("imds_helpers.demo", "run the runbooks on emulated healthy and broken hosts; write reports/"),
    "lab": ("imds_helpers.lab", "JupyterLab on the runbooks with an emulated IMDS running"),
    "run": ("imds_helpers.run_cli", "run a runbook per host parameter file (papermill) and summarise"),
    "report": ("imds_helpers.report_cli", "tabulate a folder of runbook results (table, CSV, HTML, markdown)"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad usage as a single line and exit code 2 (bounded, without a
    URL's password: argparse quotes what was typed)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {one_line(message)}\n")
        raise SystemExit(2)


def build_parser(only: str | None = None) -> OneLineParser:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        if name != only:
            # Still listed in --help, but its module is not imported.
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        module = importlib.import_module(module_name)
        module.configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except UsageError as err:
        sys.stderr.write(f"{PROG} {args.command}: error: {err}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
