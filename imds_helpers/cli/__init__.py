"""``imds-runbook`` command line: a table of subcommands, each in its own light module.

Each command module exposes ``configure(parser)`` and ``run(args) -> int``. Modules are
imported only for the chosen command (plus argument set-up), so ``imds-runbook check``
never imports pandas or Jupyter.

Exit codes: 0 ok, 1 findings (warn / fail), 2 bad usage (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Callable, NoReturn, Sequence

from imds_helpers import __version__
from imds_helpers.model.errors import UsageError, one_line

PROG = "imds-runbook"

# The optional-dependencies of pyproject.toml, by what each brings: extra -> {distribution: import
# name}. `pip install imds-runbook` is the standard-library core (check, emulator); a command that
# needs an extra checks for it before it starts and, when it is missing, says so in one line.
EXTRAS: dict[str, dict[str, str]] = {
    "notebooks": {"papermill": "papermill", "nbconvert": "nbconvert", "ipykernel": "ipykernel",
                  "pandas": "pandas", "matplotlib": "matplotlib", "pyyaml": "yaml"},
    "lab": {"jupyterlab": "jupyterlab"},
    "fleet": {"ansible-core": "ansible"},
}

# name -> (module, one-line help, extras it needs). Adding a command is adding a row.
COMMANDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "check": ("imds_helpers.cli.check", "diagnose IMDS / Arc HIMDS reachability and tokens, layer by layer", ()),
    "collect": ("imds_helpers.cli.evidence:collect_command",
                "on the host: ask every check's questions and write the evidence bundle (judges nothing)", ()),
    "analyze": ("imds_helpers.cli.evidence:analyze_command",
                "anywhere: judge evidence bundles from collect (check's output and exit codes)", ()),
    "collector-script": ("imds_helpers.cli.collector_script",
                         "print imds-collect.sh, the collector for hosts without Python (POSIX sh + curl)", ()),
    "emulator": ("imds_helpers.emulator.cli", "serve an emulated IMDS or Arc HIMDS with fault scenarios", ()),
    "demo": ("imds_helpers.cli.demo", "run the runbooks on emulated healthy and broken hosts; write reports/",
             ("notebooks",)),
    "lab": ("imds_helpers.cli.lab", "training: JupyterLab on the primer and runbooks with an emulated IMDS; "
            "--blind: a hidden fault to diagnose; --exam: several, scored; --answer-key", ("notebooks", "lab")),
    "run": ("imds_helpers.cli.run", "run a runbook per host parameter file (papermill) and summarise",
            ("notebooks",)),
    "report": ("imds_helpers.cli.report", "tabulate a folder of runbook results (table, CSV, HTML, markdown)",
               ("notebooks",)),
    "fleet": ("imds_helpers.cli.fleet", "collect from every host of an Ansible inventory, render a runbook per host",
              ("notebooks", "fleet")),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None   # finds it without importing it
    except (ImportError, ValueError):
        return False


def missing_extras(extras: Sequence[str], installed: Callable[[str], bool] = _installed) -> str | None:
    """The one line that says which extras to install (None when all are there): the extras
    with a missing package, the pip command, and those packages."""
    wanting = {extra: [dist for dist, module in EXTRAS[extra].items() if not installed(module)] for extra in extras}
    wanting = {extra: missing for extra, missing in wanting.items() if missing}
    if not wanting:
        return None
    names = list(wanting)
    what = f"the {names[0]!r} extra" if len(names) == 1 else f"the {' and '.join(map(repr, names))} extras"
    missing = ", ".join(dist for dists in wanting.values() for dist in dists)
    return f"needs {what}: pip install '{PROG}[{','.join(names)}]' (missing: {missing})"


def _load(name: str):
    """A command's module, or ``module:attribute`` for commands that share one."""
    module_name, _, attribute = name.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


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
    for name, (module_name, help_text, _extras) in COMMANDS.items():
        if name != only:
            # Still listed in --help, but its module is not imported.
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        _load(module_name).configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    module_name, _help, extras = COMMANDS[args.command]
    needs = missing_extras(extras)
    if needs:
        sys.stderr.write(f"{PROG} {args.command}: {needs}\n")
        return 2
    try:
        return int(_load(module_name).run(args) or 0)
    except ModuleNotFoundError as err:
        # A package of an extra that the table above does not list for this command (or that
        # went away after the check): the same one line, never a traceback.
        top = (err.name or "").partition(".")[0]
        extra = next((extra for extra, dists in EXTRAS.items() if top in dists.values()), None)
        if extra is None:
            raise
        sys.stderr.write(f"{PROG} {args.command}: {missing_extras([extra], lambda module: module != top)}\n")
        return 2
    except UsageError as err:
        sys.stderr.write(f"{PROG} {args.command}: error: {err}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
