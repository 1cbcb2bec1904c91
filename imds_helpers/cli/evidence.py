"""``imds-runbook collect`` (on the host) and ``imds-runbook analyze`` (anywhere).

    imds-runbook collect --out evidence.json        # on the VM: exit 0 once a bundle is written
    imds-runbook analyze evidence.json [--json]     # anywhere: check's output and exit codes

``collect`` takes check's selectors; it judges nothing and exits 0 whatever the bundle shows
(2 on bad usage). ``analyze`` reads bundles (files, or folders of ``*.json``), bounded and
checked against the schema before a line is printed: a bad bundle is one line and exit 2.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from imds_helpers.model.errors import UsageError

if TYPE_CHECKING:   # the runbooks read bundles through this module without the command line
    import argparse

MAX_BUNDLES = 100_000


def configure_collect(parser: argparse.ArgumentParser) -> None:
    from imds_helpers.cli import check as check_cli

    check_cli.configure(parser)
    # check's own output switches mean nothing here: collect prints the bundle or writes it.
    for action in list(parser._actions):
        if action.dest in ("json", "save_evidence"):
            parser._remove_action(action)
            for group in parser._action_groups:
                if action in group._group_actions:
                    group._group_actions.remove(action)
            for option in action.option_strings:
                parser._option_string_actions.pop(option, None)
    parser.add_argument("--out", metavar="FILE", default="-",
                        help="where to write the bundle ('-': standard output, the default)")
    parser.add_argument("--digest", action="store_true",
                        help="write the evidence digest instead of the bundle: at most 4,096 bytes, what Azure "
                             "Run Command's 'invoke' returns whole (analyze reads it like a bundle)")


def output_path(value: str, *, argument: str) -> Path:
    """A file to write, checked before any work: its folder exists; it is not a folder, a
    symlink, a FIFO or a socket. A character device (``/dev/null``, a terminal) is written in
    place, never replaced (see :func:`write_bundle`)."""
    import stat

    path = Path(value)
    if path.is_symlink():
        raise UsageError(f"{value} is a symlink; give a regular file path", argument=argument)
    if path.is_dir():
        raise UsageError(f"{value} is a folder; give a file path", argument=argument)
    if not path.parent.is_dir():
        raise UsageError(f"folder {path.parent} does not exist", argument=argument)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return path
    except OSError as err:
        raise UsageError(f"{value}: {err.strerror or err}", argument=argument) from None
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
        raise UsageError(f"{value} is not a regular file; give a file path", argument=argument)
    return path


def write_bundle(path: Path, bundle: Mapping[str, Any]) -> None:
    from imds_helpers.model.evidence import dumps

    write_text(path, dumps(bundle) + "\n")


def write_text(path: Path, text: str) -> None:
    """``text`` into ``path``: atomically, or into a character device in place."""
    from imds_helpers.fleet.sidecar import atomic_write_text

    import stat

    if path.exists() and stat.S_ISCHR(path.stat().st_mode):
        # /dev/null, a terminal: written into. The atomic write renames a temporary file over
        # its target, which would replace the device node with a regular file.
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    atomic_write_text(path, text)


def run_collect(args: argparse.Namespace) -> int:
    from imds_helpers.collect.hostcmd import CommandPrefetch, evidence_commands

    out = None if args.out == "-" else output_path(args.out, argument="--out")
    collecting = gc.isenabled()
    gc.disable()
    try:
        with CommandPrefetch(evidence_commands()) as prefetch:
            from imds_helpers.api import check_options
            from imds_helpers.collect import collect

            opts = check_options(
                target=args.target, endpoint=args.endpoint, resources=args.resource, client_ids=args.client_id,
                object_ids=args.object_id, msi_res_ids=args.msi_res_id, timeout=args.timeout,
                proxy_comparison=args.proxy_comparison, tokens_dir=args.tokens_dir, runner=prefetch,
            )
            bundle = collect(opts)
    finally:
        if collecting:
            gc.enable()
    if args.digest:
        from imds_helpers.model.digest import encode

        text = encode(bundle)
    else:
        from imds_helpers.model.evidence import dumps

        text = dumps(bundle) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        write_text(out, text)
        sys.stderr.write(f"imds-runbook collect: wrote {out} ({out.stat().st_size} bytes); "
                         f"analyze it anywhere with: imds-runbook analyze {out}\n")
    return 0


def configure_analyze(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundles", metavar="BUNDLE_OR_DIR", nargs="+",
                        help="evidence bundles written by collect, digests (collect --digest), or what "
                             "'az vm run-command invoke' / 'az connectedmachine run-command show' printed "
                             "(a folder: every *.json in it)")
    parser.add_argument("--json", action="store_true",
                        help="print JSON instead of the listing: check's object for one bundle, JSON Lines for several")


def bundle_paths(values: list[str]) -> list[Path]:
    paths: list[Path] = []
    for value in values:
        path = Path(value)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if not p.is_symlink())
            if not found:
                raise UsageError(f"folder {value} holds no *.json bundle", argument="BUNDLE_OR_DIR")
            paths += found
        else:
            paths.append(path)
        if len(paths) > MAX_BUNDLES:
            raise UsageError(f"more than {MAX_BUNDLES} bundles", argument="BUNDLE_OR_DIR")
    return paths


def read_bundle(path: Path) -> dict[str, Any]:
    """One bundle from disk: a regular file (no symlink, no FIFO), bounded, schema-checked. The
    file may hold a bundle, a digest, or a Run Command answer around either
    (:func:`imds_helpers.model.runcommand.load_any`)."""
    from imds_helpers.model import evidence
    from imds_helpers.model.runcommand import load_any
    from imds_helpers.fleet.sidecar import read_regular_file

    try:
        data = read_regular_file(path, evidence.MAX_BUNDLE_BYTES + 1)   # one more: "too large", not "not JSON"
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: {err}", argument="BUNDLE_OR_DIR") from None
    try:
        return load_any(data)
    except UsageError as err:
        raise UsageError(f"{path}: {err}", argument="BUNDLE_OR_DIR") from None


def judge(path: Path, *, as_json: bool, many: bool) -> tuple[str, int]:
    """One bundle read, checked, analyzed and rendered: (text, exit code). Raises UsageError for
    a bundle that cannot be analyzed. ``many``: as one of several (a header line; JSON as one
    compact line with ``bundle`` and ``host``)."""
    from imds_helpers.analyze import analyze
    from imds_helpers.cli.check import exit_code, render, render_json
    from imds_helpers.model.textsafe import terminal_safe

    bundle = read_bundle(path)
    report = analyze(bundle)
    hostname = bundle["host"]["hostname"]
    if not many:
        return render(report, bundle["duration_ms"], as_json=as_json), exit_code(report)
    if as_json:
        return render_json(report, bundle["duration_ms"], bundle=str(path), host=hostname), exit_code(report)
    header = f"== {terminal_safe(str(path))} ({terminal_safe(hostname)})\n"
    return header + render(report, bundle["duration_ms"], as_json=False), exit_code(report)


def _judge_chunk(paths: list[str], as_json: bool) -> list[tuple[str, int] | str]:
    """A worker's share: each bundle's (text, exit code), or the one line naming its problem."""
    done: list[tuple[str, int] | str] = []
    for path in paths:
        try:
            done.append(judge(Path(path), as_json=as_json, many=True))
        except UsageError as err:
            done.append(str(err))
    return done


PARALLEL_FROM = 64      # bundles; fewer are quicker judged here than by starting workers
CHUNK = 50


def run_analyze(args: argparse.Namespace) -> int:
    """Every bundle judged before a line is printed (a bad one: one line, exit 2, nothing else);
    many bundles on every core. Several bundles with --json: JSON Lines, one report per line."""
    paths = bundle_paths(args.bundles)
    if len(paths) == 1:
        text, code = judge(paths[0], as_json=args.json, many=False)
        sys.stdout.write(text + "\n")
        return code
    results: list[tuple[str, int] | str] = []
    workers = min(os.cpu_count() or 1, 8)
    if len(paths) < PARALLEL_FROM or workers == 1:
        results = _judge_chunk([str(p) for p in paths], args.json)
    else:
        from concurrent.futures import ProcessPoolExecutor

        chunks = [[str(p) for p in paths[i:i + CHUNK]] for i in range(0, len(paths), CHUNK)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(_judge_chunk, chunks, [args.json] * len(chunks)):
                results.extend(done)
    bad = next((r for r in results if isinstance(r, str)), None)
    if bad is not None:
        raise UsageError(bad.split(": ", 1)[1] if bad.startswith("BUNDLE_OR_DIR: ") else bad, argument="BUNDLE_OR_DIR")
    judged = [r for r in results if not isinstance(r, str)]
    sys.stdout.write(("\n" if args.json else "\n\n").join(text for text, _ in judged) + "\n")
    return max(code for _, code in judged)


class _Command:
    """The table in cli.py wants a module per command; these two share this one."""

    def __init__(self, configure, run) -> None:
        self.configure = configure
        self.run = run


collect_command = _Command(configure_collect, run_collect)
analyze_command = _Command(configure_analyze, run_analyze)

__all__ = ["analyze_command", "bundle_paths", "collect_command", "output_path", "read_bundle", "write_bundle",
           "write_text"]
