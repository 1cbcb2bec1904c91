"""``imds-runbook lab`` (``make lab``): training.

    imds-runbook lab [--scenario S] [--port P] [--dry-run]      JupyterLab on the runbooks (the primer first), an
                                                                emulated IMDS running
    imds-runbook lab --blind [--seed N] [--track vm|arc|all] [--difficulty D] [--round R]
                                                                the blind fault lab (notebooks/04_fault_lab.ipynb)
    imds-runbook lab --exam --seed N [--count 5] [--track T] [--difficulty D] [--out DIR]
                                                                hidden faults in a row in the terminal; a score sheet
    imds-runbook lab --answer-key --seed N [--count C] [--track T] [--difficulty D]
                                                                what a seed draws (the instructor's side)

Without a mode, the notebooks are pointed at the emulator through ``IMDS_RUNBOOK_ENDPOINT`` (the
one documented override); the Arc runbook reaches an emulated HIMDS through its
``emulator_scenario`` parameter, e.g. ``emulator_scenario = "arc-healthy"``.

``--blind`` writes a copy of the lab notebook with the parameters filled in (papermill's
injection, nothing executed) into ``--dir`` and opens it; the notebook starts the hidden fault
itself. ``--exam`` prints, per round, the symptom story, the emulator's URL and the curl lines to
try from another terminal, then reads ``hint``, ``choices``, ``answer X [fix Y]`` or ``skip`` from
standard input (a file works; its end, or Ctrl-C, leaves the remaining rounds unanswered) and writes
the score sheet as JSON and markdown. Nothing printed before an answer names the fault. JupyterLab listens
on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

from imds_helpers.model.endpoints import OVERRIDE_ENV
from imds_helpers.model.errors import UsageError
from imds_helpers.model.textsafe import terminal_safe
from imds_helpers.runbooks.resources import data_dir, is_installed_copy

NOTEBOOKS_DIR = data_dir("notebooks")
LAB_NOTEBOOK = "04_fault_lab.ipynb"
PRIMER_NOTEBOOK = "00_imds_primer.ipynb"   # what JupyterLab opens first without a mode
DEFAULT_SCENARIO = "vm-healthy"
DEFAULT_PORT = 8888                      # JupyterLab's, on 127.0.0.1
DEFAULT_DIR = Path("imds-runbook-lab")   # where notebooks are copied to work on
DEFAULT_EXAM_COUNT = 5
SHEET_NAME = "score-sheet"       # DIR/score-sheet.json and DIR/score-sheet.md
NAME = re.compile(r"[\w][\w .-]{0,63}")     # a trainee's name: on the sheet and in its file names
MAX_LINE = 1000                  # an exam command longer than this is refused, not read on

# mode -> the options it takes (argparse dests). An option given to a mode that does not take it
# is bad usage, so that "lab --exam --scenario x" cannot silently ignore what was asked.
MODES: dict[str, frozenset[str]] = {
    "runbooks": frozenset({"scenario", "port", "dry_run", "dir"}),
    "blind": frozenset({"seed", "track", "difficulty", "round", "port", "dry_run", "dir"}),
    "exam": frozenset({"seed", "track", "difficulty", "count", "out", "name"}),
    "answer_key": frozenset({"seed", "track", "difficulty", "count"}),
}
FLAGS = {"scenario": "--scenario", "port": "--port", "dry_run": "--dry-run", "dir": "--dir", "seed": "--seed",
         "track": "--track", "difficulty": "--difficulty", "round": "--round", "count": "--count", "out": "--out",
         "name": "--name"}
MODE_FLAGS = {"runbooks": "lab without a mode", "blind": "--blind", "exam": "--exam", "answer_key": "--answer-key"}


def configure(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--blind", action="store_const", dest="mode", const="blind",
                      help="open the blind fault lab notebook: a hidden fault, your diagnosis graded")
    mode.add_argument("--exam", action="store_const", dest="mode", const="exam",
                      help="hidden faults in a row in this terminal; writes a score sheet (JSON + markdown)")
    mode.add_argument("--answer-key", action="store_const", dest="mode", const="answer_key",
                      help="print what a seed draws: round, scenario, cause, fix (for the instructor)")
    parser.set_defaults(mode="runbooks")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="which faults are drawn (--blind: random when not given; --exam, --answer-key: needed)")
    parser.add_argument("--track", choices=("vm", "arc", "all"), default=None,
                        help="Azure VM faults, Arc faults or both (default all)")
    parser.add_argument("--difficulty", type=int, choices=(1, 2, 3), default=None, metavar="D",
                        help="only faults of this difficulty: 1 easy .. 3 hard (default any)")
    parser.add_argument("--count", type=int, default=None, metavar="C",
                        help=f"scenarios in the exam or the answer key (default {DEFAULT_EXAM_COUNT} / 1)")
    parser.add_argument("--round", type=int, default=None, metavar="R",
                        help="--blind: the R-th scenario of the seed, from 0 (the lab's next scenario is R+1)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="--exam: folder for the score sheet (default reports/exam-<UTC timestamp>/)")
    parser.add_argument("--name", default=None, metavar="NAME",
                        help="--exam: the trainee's name, on the sheet and in its file names (score-sheet-NAME.json)")
    parser.add_argument("--scenario", default=None,
                        help=f"without a mode: emulator scenario for the VM runbook (default {DEFAULT_SCENARIO})")
    parser.add_argument("--port", type=int, default=None, help=f"JupyterLab port on 127.0.0.1 (default {DEFAULT_PORT})")
    parser.add_argument("--dry-run", action="store_true", default=None,
                        help="prepare, print the JupyterLab command, stop")
    parser.add_argument("--dir", type=Path, default=None, metavar="DIR",
                        help="where notebooks are copied to work on: the installed package's runbooks, "
                             f"and --blind's lab notebook (default ./{DEFAULT_DIR})")


def _check_options(args: argparse.Namespace) -> None:
    """One line naming an option the chosen mode does not take, a missing --seed or a number
    out of range."""
    from imds_helpers.runbooks.fault_lab import MAX_COUNT, MAX_SEED

    allowed = MODES[args.mode]
    for dest, flag in FLAGS.items():
        if getattr(args, dest, None) is not None and dest not in allowed:
            takers = [MODE_FLAGS[m] for m, options in MODES.items() if dest in options]
            raise UsageError(f"applies to {' and '.join(takers)} only", argument=flag)
    if args.mode in ("exam", "answer_key") and args.seed is None:
        raise UsageError(f"{MODE_FLAGS[args.mode]} needs --seed N (the class's sheets are checked against it)",
                         argument="--seed")
    if args.name is not None and not NAME.fullmatch(args.name):
        raise UsageError("a name of 1-64 letters, digits, spaces, dots, dashes or underscores", argument="--name")
    for dest, low, high in (("seed", 0, MAX_SEED), ("count", 1, MAX_COUNT), ("round", 0, MAX_COUNT - 1),
                            ("port", 1, 65535)):
        value = getattr(args, dest, None)
        if value is not None and not low <= value <= high:
            raise UsageError(f"must be {low}-{high}, got {value}", argument=FLAGS[dest])


def workspace(copy_to: Path, notebooks: Path = NOTEBOOKS_DIR) -> Path:
    """The folder JupyterLab opens: a checkout's notebooks/ as is; the installed package's copies
    are copied to ``copy_to`` first (never overwriting a notebook already there), since runs
    write into the folder and site-packages is not a workspace."""
    if not is_installed_copy(notebooks):
        return notebooks
    import shutil

    copy_to.mkdir(parents=True, exist_ok=True)
    for source in sorted(notebooks.glob("*.ipynb")):
        if not (copy_to / source.name).exists():
            shutil.copy2(source, copy_to / source.name)
    return copy_to


def lab_command(port: int, notebooks: Path = NOTEBOOKS_DIR, open_path: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={notebooks}",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--no-browser"]
    if open_path:
        command.append(f"--LabApp.default_url=/lab/tree/{open_path}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def _launch(command: list[str], env: dict[str, str] | None = None) -> int:
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    return {"runbooks": run_runbooks, "blind": run_blind, "exam": run_exam, "answer_key": run_answer_key}[args.mode](args)


# --- the runbooks, with an emulated IMDS -------------------------------------------------------

def run_runbooks(args: argparse.Namespace) -> int:
    from imds_helpers.emulator import Emulator, get_scenario

    scenario = args.scenario or DEFAULT_SCENARIO
    get_scenario(scenario, "vm")
    with Emulator(mode="vm", scenario=scenario) as vm:
        env = {**os.environ, OVERRIDE_ENV: vm.base_url}
        command = lab_command(args.port or DEFAULT_PORT, workspace(args.dir or DEFAULT_DIR), PRIMER_NOTEBOOK)
        sys.stdout.write(
            f"emulated IMDS ({scenario}) at {vm.base_url}; {OVERRIDE_ENV} points the runbooks at it\n"
            "Arc runbook: set emulator_scenario = \"arc-healthy\" (or another arc-* scenario) in its parameters cell\n"
            f"{' '.join(command)}\n")
        sys.stdout.flush()
        return 0 if args.dry_run else _launch(command, env)


# --- the blind lab: the lab notebook, parameterized, in JupyterLab -----------------------------

def blind_parameters(seed: int, track: str, difficulty: int | None, round_: int) -> dict[str, Any]:
    """The notebook's parameters for one blind run (answer left empty: the trainee answers)."""
    return {"seed": seed, "track": track, "difficulty": difficulty or 0, "round": round_}


def blind_notebook_name(parameters: dict[str, Any]) -> str:
    """Named by what was asked, never by what it draws."""
    level = parameters["difficulty"] or "any"
    return f"fault-lab-seed{parameters['seed']}-{parameters['track']}-d{level}-r{parameters['round']}.ipynb"


def prepare_blind(folder: Path, parameters: dict[str, Any], notebooks: Path = NOTEBOOKS_DIR) -> tuple[Path, bool]:
    """The lab notebook in ``folder`` with ``parameters`` injected (papermill's injected-parameters
    cell, nothing executed) and the committed run's outputs cleared (they show another seed's case);
    an existing copy (the trainee's work) is kept as it is. Returns (path, written)."""
    target = folder / blind_notebook_name(parameters)
    if target.exists():
        return target, False
    import logging

    import nbformat
    import papermill

    nb = nbformat.read(notebooks / LAB_NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    logging.getLogger("papermill").setLevel(logging.WARNING)   # its "Input notebook" chatter
    try:
        folder.mkdir(parents=True, exist_ok=True)
        papermill.execute_notebook(nb, str(target), parameters=parameters, prepare_only=True,
                                   progress_bar=False, log_output=False)
    except OSError as err:
        raise UsageError(f"cannot write {target}: {err.strerror or err}", argument="--dir") from None
    return target, True


def run_blind(args: argparse.Namespace) -> int:
    import secrets

    from imds_helpers.runbooks import fault_lab

    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    track = args.track or "all"
    fault_lab.draw(seed, track, args.difficulty, count=(args.round or 0) + 1)   # bad choices: one line, now
    parameters = blind_parameters(seed, track, args.difficulty, args.round or 0)
    folder = args.dir or DEFAULT_DIR
    notebook, written = prepare_blind(folder, parameters)
    command = lab_command(args.port or DEFAULT_PORT, folder, notebook.name)
    sys.stdout.write(
        f"blind fault lab: seed {seed}, track {track}, difficulty {args.difficulty or 'any'}, round {args.round or 0}\n"
        f"{'wrote' if written else 'reopening your'} {terminal_safe(str(notebook))}\n"
        f"{' '.join(command)}\n")
    sys.stdout.flush()
    return 0 if args.dry_run else _launch(command)


# --- the exam: hidden faults in a row, in the terminal -----------------------------------------

COMMANDS_LINE = "commands: hint | choices | answer X [fix Y] | skip"


class Trainee:
    """One exam round at a time (fault_lab.exam's answer function): shows the case and the
    requests to try, then reads commands until an answer, ``skip`` or the end of the input.
    Returns (cause letter, fix letter or None), None for ``skip``; the end of the input raises
    EndOfExam (this round and the ones left are unanswered)."""

    def __init__(self, stdin: TextIO, stdout: TextIO, count: int, *, seed: int) -> None:
        self.stdin, self.stdout, self.count, self.seed = stdin, stdout, count, seed

    def say(self, *lines: str) -> None:
        self.stdout.write("".join(terminal_safe(line) + "\n" for line in lines))
        self.stdout.flush()

    def read(self) -> str | None:
        """The next command line, stripped; None at the end of the input. A line longer than
        MAX_LINE is read to its end and comes back as one that is not a command."""
        try:
            self.stdout.write("> ")
            self.stdout.flush()
            line = self.stdin.readline(MAX_LINE + 1)
        except KeyboardInterrupt:       # Ctrl-C ends the exam like the end of the input: the sheet is written
            line = ""
        if not line:
            self.say("", "(end of input: this round and the ones left are unanswered)")
            return None
        if len(line) > MAX_LINE:
            while (rest := self.stdin.readline(MAX_LINE + 1)) and not rest.endswith("\n"):
                pass
            line = f"(a line of more than {MAX_LINE} characters)"
        if not _isatty(self.stdin):     # a script: its commands in the transcript, as a terminal echoes them
            self.say(line.strip())
        return line.strip()

    def __call__(self, lab: Any) -> tuple[str, str | None] | None:
        from imds_helpers.runbooks import lab_view
        from imds_helpers.runbooks.fault_lab import EndOfExam

        self.stdout.write(f"\n=== round {lab.round + 1} of {self.count} (seed {self.seed}) ===\n\n"
                          + lab_view.case(lab).text() + "\n" + lab_view.by_hand(lab).text() + "\n")
        self.say(COMMANDS_LINE)
        while (line := self.read()) is not None:
            word, _, rest = line.partition(" ")
            word = word.lower()
            if word == "hint":
                if lab.hints_used >= 3:
                    self.say("no more hints: all three are taken")
                    continue
                hint = lab.hint(lab.hints_used + 1)
                self.say(f"hint {hint.level} (costs {hint.cost}): {hint.text}")
            elif word == "choices":
                self.stdout.write(lab_view.choices(lab).text())
            elif word == "skip":
                return None
            elif word == "answer":
                picked = self._parse_answer(lab, rest)
                if picked is not None:
                    return picked
            elif line:
                self.say(f"not a command: {line[:60]}; {COMMANDS_LINE}")
        raise EndOfExam

    def _parse_answer(self, lab: Any, rest: str) -> tuple[str, str | None] | None:
        words = rest.split()
        cause = _pick(words[0], lab.choices, by_code=True) if words else None
        if cause is None or len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "fix"):
            self.say("answer X [fix Y]: X a cause's letter or code, Y a fix's letter ('choices' lists them)")
            return None
        fix = _pick(words[2], lab.fixes, by_code=False) if len(words) == 3 else None
        if len(words) == 3 and fix is None:
            self.say(f"no fix {words[2][:20]}: 'choices' lists them")
            return None
        return cause, fix


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _pick(value: str, choices: Any, *, by_code: bool) -> str | None:
    """A choice's letter from its letter or (causes) its code, in any case; None if neither."""
    wanted = value.strip().upper()
    return next((c.letter for c in choices if wanted == c.letter or (by_code and wanted == c.code.upper())), None)


def graded_lines(grade: Any) -> list[str]:
    """A graded round: now the cause, and the scenario, may be named."""
    fix = {None: "", True: ", right fix", False: ", wrong fix"}[grade.fix_correct]
    lines = [f"{'RIGHT' if grade.correct else 'WRONG'}: {grade.points} of {grade.max_points} points "
             f"({grade.hints_used} hint(s){fix}, {grade.seconds:.0f} s)"]
    if not grade.correct:
        lines.append(f"you answered {grade.answer} - {grade.answer_title}")
    return lines + [f"the cause: {grade.cause} - {grade.cause_title} (scenario {grade.scenario})",
                    f"the evidence: {grade.proof}", f"the fix: {grade.fix}"]


def said_after(trainee: Trainee):
    """What the terminal shows once a round is over: the grade, or the cause of a round left unanswered."""
    def graded(grade: Any, truth: dict) -> None:
        if grade is not None:
            trainee.say(*graded_lines(grade))
        else:
            trainee.say(f"unanswered: 0 points; the cause: {truth['cause']} - {truth['title']} "
                        f"(scenario {truth['scenario']})")
    return graded


def run_exam(args: argparse.Namespace) -> int:
    from imds_helpers.cli.run import default_out_dir
    from imds_helpers.runbooks import fault_lab

    count = args.count or DEFAULT_EXAM_COUNT
    track = args.track or "all"
    fault_lab.draw(args.seed, track, args.difficulty, count=count)   # bad choices: one line, before anything
    out_dir: Path = args.out if args.out is not None else default_out_dir("exam-")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create {out_dir}: {err.strerror or err}", argument="--out") from None
    trainee = Trainee(sys.stdin, sys.stdout, count, seed=args.seed)
    sheet = fault_lab.exam(args.seed, count, track, trainee, args.difficulty, graded=said_after(trainee),
                           trainee=(args.name or "").strip())
    json_path, md_path = write_sheet(sheet, out_dir)
    trainee.say("", f"total: {sheet.total} of {sheet.max_total} points, {sheet.correct} of {count} causes right",
                f"score sheet: {json_path} and {md_path}")
    return 0


def write_sheet(sheet: Any, out_dir: Path) -> tuple[Path, Path]:
    """DIR/score-sheet[-NAME].json and .md, each written whole (atomically) or not at all."""
    import json

    from imds_helpers.cli.evidence import write_text

    stem = SHEET_NAME + (f"-{re.sub(r'[^A-Za-z0-9._-]+', '-', sheet.trainee)}" if sheet.trainee else "")
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    write_text(json_path, json.dumps(sheet.to_dict(), indent=2) + "\n")
    write_text(md_path, sheet.to_markdown())
    return json_path, md_path


# --- the answer key -----------------------------------------------------------------------------

def run_answer_key(args: argparse.Namespace) -> int:
    from imds_helpers.runbooks import fault_lab

    rows = fault_lab.answer_key(args.seed, args.track or "all", count=args.count or 1, difficulty=args.difficulty)
    out = [f"answer key: seed {args.seed}, track {args.track or 'all'}, difficulty {args.difficulty or 'any'}"]
    for row in rows:
        out.append(f"round {row['round']}: {row['scenario']} -> {row['cause']} {row['title']}")
        out.append(f"  fix: {row['fix']}")
    sys.stdout.write("".join(terminal_safe(line) + "\n" for line in out))
    return 0
