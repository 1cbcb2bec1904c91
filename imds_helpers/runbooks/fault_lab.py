"""The blind fault lab: a hidden fault, the primer's probes, a diagnosis to choose, a grade.

    lab = Lab(seed=7, track="vm")        # starts an emulator with a case drawn from the seed
    lab.story                             # the symptom as reported; never the scenario's name
    lab.probe("/metadata/instance", {"api-version": "2021-02-01"})   # raw exchanges (primer.get)
    lab.curl("/metadata/instance", {...}) # the same request as curl / PowerShell lines
    lab.token_claims()                    # a token's claims, or the error (primer.token_claims)
    lab.challenge()                       # Arc: the 401 -> key file -> Basic walk
    lab.files()                           # Arc: the tokens directory as ls -l shows it
    lab.hint(1)                           # three levels, each costs points
    lab.choices, lab.fixes                # lettered causes (cause + distractors) and fixes
    grade = lab.grade("B", fix="D")       # right or wrong, proof, points, time taken
    lab.verdict()                         # the runbook's full verdict, only after grade()
    lab.close()                           # or use Lab as a context manager

The cases are the rows of :mod:`imds_helpers.emulator.lab_scenarios`; a seed draws them in a
fixed order (:func:`draw`), so a class given one seed gets the same cases and an instructor's
:func:`answer_key` says which. :func:`exam` runs several cases and returns a :class:`ScoreSheet`.

Hidden means: the scenario's name and the case's key appear in nothing the lab shows before the
answer - story, choices, probes, URLs, repr, files, environment (tests/lab/test_lab_hidden.py
scans them). A fault that needs the kernel (``LabCase.kernel``) is made for real - an iptables
DROP rule on lo for the emulator's port, removed on close - only when running as root in a
private network namespace with iptables; otherwise the emulator's own simulation gives the same
symptom through the same probes. ``Lab.simulated`` says which of the two this machine does
(the same words for every case, so it gives nothing away); ``Grade.made_by`` says how this case's
fault was made. Nothing here prints.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from imds_helpers.emulator.lab_scenarios import IPTABLES_DROP, LAB_CASES, LabCase
from imds_helpers.model import commands
from imds_helpers.model.catalog import CATALOG
from imds_helpers.model.endpoints import ARC_API_VERSION, MANAGEMENT, TOKEN_API_VERSION, TOKEN_PATH
from imds_helpers.model.errors import UsageError
from imds_helpers.model.findings import Report
from imds_helpers.model.textsafe import terminal_safe
from imds_helpers.runbooks import primer
from imds_helpers.runbooks.tables import ResultTable

TRACKS = ("vm", "arc", "all")
DIFFICULTIES = (1, 2, 3)
HINT_COST = (1, 2, 3)          # points a hint of level 1, 2, 3 costs (each level once)
CAUSE_POINTS = 10              # the right cause, before hints
FIX_POINTS = 2                 # the right fix, on top
MAX_POINTS = CAUSE_POINTS + FIX_POINTS
MAX_COUNT = 50                 # cases per draw / exam
MAX_SEED = 2 ** 63 - 1
MAX_PATH_CHARS = 2000
MAX_FILES = 200                # entries files() lists
LETTERS = "ABCDEFGHIJ"
KERNEL_TIMEOUT_S = 10.0
HIDDEN_LABEL = "hidden"        # what the emulator shows for the scenario's name (request log, repr)

# The same words for every case (naming the kernel fault would name the one case that has it).
REAL_KERNEL = ("Faults that need the kernel are made for real here (root in a private network namespace); "
               "the others are made by the emulator.")
SIMULATED_KERNEL = ("Every fault is made by the emulator here: faults that need the kernel are simulated with the "
                    "same symptom through the same probes (not root in a private network namespace, or a kernel "
                    "tool missing).")


# -- drawing ---------------------------------------------------------------------------------
def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        try:
            seed = int(str(seed).strip(), 10)
        except ValueError:
            raise UsageError(f"must be a whole number, got {str(seed)[:40]!r}", argument="seed") from None
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"must be 0..{MAX_SEED}, got {seed}", argument="seed")
    return seed


def _check_track(track: Any) -> str:
    if track not in TRACKS:
        raise UsageError(f"must be one of {', '.join(TRACKS)}, got {str(track)[:40]!r}", argument="track")
    return track


def _check_difficulty(difficulty: Any) -> int | None:
    if difficulty is None or difficulty == "any":
        return None
    if isinstance(difficulty, bool) or difficulty not in DIFFICULTIES:
        raise UsageError(f"must be 1, 2, 3 or None (any), got {str(difficulty)[:40]!r}", argument="difficulty")
    return int(difficulty)


def _check_count(count: Any, name: str = "count") -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise UsageError(f"must be a whole number 1..{MAX_COUNT}, got {str(count)[:40]!r}", argument=name)
    return count


def pool(track: str = "all", difficulty: int | None = None) -> tuple[LabCase, ...]:
    """The lab cases of a track and difficulty, in table order."""
    track, difficulty = _check_track(track), _check_difficulty(difficulty)
    return tuple(c for c in LAB_CASES if track in ("all", c.track) and difficulty in (None, c.difficulty))


def draw(seed: int, track: str = "all", difficulty: int | None = None, count: int = 1) -> tuple[LabCase, ...]:
    """``count`` cases for ``seed``: always the same ones in the same order; distinct while the
    track and difficulty have enough cases, then the next shuffled round of them."""
    seed, count = _check_seed(seed), _check_count(count)
    cases = pool(track, difficulty)
    if not cases:
        raise UsageError(f"no lab case is {track} with difficulty {difficulty}", argument="difficulty")
    rng = random.Random(f"imds-lab:{seed}:{track}:{difficulty}")
    drawn: list[LabCase] = []
    while len(drawn) < count:
        batch = list(cases)
        rng.shuffle(batch)
        drawn.extend(batch)
    return tuple(drawn[:count])


def answer_key(seed: int, track: str = "all", count: int = 1, difficulty: int | None = None) -> list[dict[str, Any]]:
    """The instructor's view of what ``seed`` draws: round, scenario, cause and fix per case."""
    return [{"round": n, "key": case.key, "scenario": case.scenario, "track": case.track,
             "difficulty": case.difficulty, "cause": case.cause, "title": CATALOG[case.cause].title,
             "fix": case.fix, "story": case.story}
            for n, case in enumerate(draw(seed, track, difficulty, count))]


# -- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    letter: str
    code: str          # the finding code (causes); "" for a fix
    title: str         # the catalog title (causes) or the fix's text

    def to_dict(self) -> dict[str, str]:
        return {"letter": self.letter, "code": self.code, "title": self.title}


@dataclass(frozen=True)
class Hint:
    level: int
    text: str
    cost: int

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "text": self.text, "cost": self.cost}

    def _repr_markdown_(self) -> str:
        return f"**Hint {self.level}** (costs {self.cost} point{'s' if self.cost != 1 else ''}): {self.text}"


@dataclass(frozen=True)
class FileFact:
    """One directory entry as ``ls -l`` would show it (lstat: a symlink is not followed)."""

    path: str
    kind: str          # file | directory | symlink | fifo | socket | character device | block device | other
    mode: str          # e.g. -rw-r-----
    uid: int
    gid: int
    size: int
    target: str = ""   # a symlink's target

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "mode": self.mode, "uid": self.uid, "gid": self.gid,
                "size": self.size, "target": self.target}


@dataclass(frozen=True)
class Grade:
    correct: bool
    answer: str                 # the code chosen
    answer_title: str
    cause: str                  # the right code
    cause_title: str
    fix_correct: bool | None    # None: no fix chosen
    hints_used: int
    points: int
    max_points: int
    proof: str
    fix: str                    # the right fix
    seconds: float
    next: str                   # how to get the next case
    scenario: str = ""          # the emulator scenario it was (shown once answered)
    made_by: str = ""           # how this case's fault was made (kernel rule or emulator)

    def to_dict(self) -> dict[str, Any]:
        return {"correct": self.correct, "answer": self.answer, "answer_title": self.answer_title,
                "cause": self.cause, "cause_title": self.cause_title, "fix_correct": self.fix_correct,
                "hints_used": self.hints_used, "points": self.points, "max_points": self.max_points,
                "proof": self.proof, "fix": self.fix, "seconds": round(self.seconds, 1), "next": self.next,
                "scenario": self.scenario, "made_by": self.made_by}

    def _repr_markdown_(self) -> str:
        head = ("**Right.**" if self.correct else
                f"**Not this time.** You chose {self.answer} ({_md(self.answer_title)}).")
        fix = {None: "no fix chosen", True: "right fix", False: "wrong fix"}[self.fix_correct]
        return "\n\n".join([
            f"{head} The cause is **{self.cause}: {_md(self.cause_title)}**.",
            f"Points: **{self.points} / {self.max_points}** ({fix}; {self.hints_used} hint(s); "
            f"{self.seconds:.0f} s).",
            f"**Proof.** {_md(self.proof)}",
            f"**Fix.** {_md(self.fix)}",
            f"*How the fault was made:* {_md(self.made_by)} (scenario `{self.scenario}`).",
            f"*Next:* {_md(self.next)}"])


@dataclass(frozen=True)
class LabVerdict:
    """The runbook's full verdict on the lab's machine (after grading)."""

    report: Report

    def to_dict(self) -> dict[str, Any]:
        return self.report.to_dict()

    @property
    def table(self) -> ResultTable:
        from imds_helpers.runbooks.runbook import verdict_table

        return verdict_table(self.report, caption=f"Verdict: {self.report.verdict.value.upper()}")

    def codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.report.checks)

    def _repr_html_(self) -> str:
        return self.table._repr_html_()

    def __str__(self) -> str:
        return str(self.table)


@dataclass(frozen=True)
class ScoreRow:
    round: int
    story: str
    answer: str
    cause: str
    correct: bool
    fix_correct: bool | None
    hints_used: int
    points: int
    max_points: int
    seconds: float
    scenario: str

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "story": self.story, "answer": self.answer, "cause": self.cause,
                "correct": self.correct, "fix_correct": self.fix_correct, "hints_used": self.hints_used,
                "points": self.points, "max_points": self.max_points, "seconds": round(self.seconds, 1),
                "scenario": self.scenario}


@dataclass(frozen=True)
class ScoreSheet:
    seed: int
    track: str
    difficulty: int | None
    rows: tuple[ScoreRow, ...] = field(default_factory=tuple)
    trainee: str = ""              # who sat the exam, as they gave it (escaped where shown)

    @property
    def total(self) -> int:
        return sum(r.points for r in self.rows)

    @property
    def max_total(self) -> int:
        return sum(r.max_points for r in self.rows)

    @property
    def correct(self) -> int:
        return sum(r.correct for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "imds-runbook-lab-scores", "trainee": self.trainee, "seed": self.seed, "track": self.track,
                "difficulty": self.difficulty, "total": self.total, "max_total": self.max_total,
                "correct": self.correct, "cases": len(self.rows), "rows": [r.to_dict() for r in self.rows]}

    def to_markdown(self) -> str:
        lines = [f"# Fault lab score sheet{f' of {_md(self.trainee)}' if self.trainee else ''} (seed {self.seed}, "
                 f"track {self.track}{'' if self.difficulty is None else f', difficulty {self.difficulty}'})", "",
                 f"**{self.total} / {self.max_total} points**, {self.correct} of {len(self.rows)} causes right.", "",
                 "| round | story | answer | correct cause | right | fix | hints | points | seconds |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            story = r.story if len(r.story) <= 80 else r.story[:77] + "..."
            fix = {None: "-", True: "yes", False: "no"}[r.fix_correct]
            lines.append(f"| {r.round} | {_cell(story)} | {_cell(r.answer)} | {r.cause} | "
                         f"{'yes' if r.correct else 'no'} | {fix} | {r.hints_used} | {r.points} / {r.max_points} | "
                         f"{r.seconds:.0f} |")
        return "\n".join(lines) + "\n"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _md(text: str) -> str:
    return terminal_safe(text).replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")


def _cell(text: str) -> str:
    return terminal_safe(text).replace("|", "\\|")


# -- the kernel ----------------------------------------------------------------------------
def private_network_namespace() -> bool:
    """True where this process's network namespace is not init's, or holds nothing but loopback
    (tests/isolated.sh makes one; a real machine always has an interface). Asked of the kernel,
    not of an environment variable: a variable could claim a namespace on a real machine, where
    a rule would touch its own firewall."""
    try:
        if os.readlink("/proc/self/ns/net") != os.readlink("/proc/1/ns/net"):
            return True
    except OSError:
        pass
    try:
        import socket

        return [name for _, name in socket.if_nameindex()] == ["lo"]
    except OSError:
        return False


def kernel_faults_possible() -> bool:
    """Root, in a private network namespace, with iptables: the lab may add real rules."""
    return (hasattr(os, "geteuid") and os.geteuid() == 0 and private_network_namespace()
            and shutil.which("iptables") is not None)


class _DropRule:
    """``iptables -I INPUT -i lo -p tcp --dport PORT -j DROP`` while it lives."""

    def __init__(self, port: int) -> None:
        self.spec = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(port), "-j", "DROP"]
        self.added = self._run("-I")

    def _run(self, action: str) -> bool:
        try:
            done = subprocess.run(["iptables", "-w", "5", action, *self.spec], capture_output=True,
                                  timeout=KERNEL_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    def remove(self) -> None:
        if self.added:
            self.added = not self._run("-D")


# -- the lab ---------------------------------------------------------------------------------
class Lab:
    """One hidden case: the emulator runs from the constructor until :meth:`close` (or the end
    of a ``with`` block). ``round`` is the n-th case the seed draws (0 = first); ``case`` (a
    row of the table) bypasses the draw, for instructors and tests. ``timeout``: how long each
    probe waits for its whole answer, like curl's --max-time (default 5 s, the runbook's read timeout)."""

    def __init__(self, seed: int = 0, track: str = "all", difficulty: int | None = None, round: int = 0,
                 *, case: LabCase | None = None, timeout: float = 5.0) -> None:
        self.seed = _check_seed(seed)
        self.track = _check_track(track)
        self.difficulty = _check_difficulty(difficulty)
        if isinstance(round, bool) or not isinstance(round, int) or not 0 <= round < MAX_COUNT:
            raise UsageError(f"must be a whole number 0..{MAX_COUNT - 1}, got {str(round)[:40]!r}", argument="round")
        self.round = round
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0.1 <= timeout <= 60:
            raise UsageError(f"must be 0.1..60 seconds, got {str(timeout)[:40]!r}", argument="timeout")
        self.timeout = float(timeout)
        self._case = case if case is not None else draw(self.seed, self.track, self.difficulty, round + 1)[round]
        rng = random.Random(f"imds-lab-choices:{self.seed}:{round}:{self._case.key}")
        codes = list(self._case.codes)
        rng.shuffle(codes)
        self.choices = tuple(Choice(LETTERS[i], code, CATALOG[code].title) for i, code in enumerate(codes))
        fixes = [self._case.fix] + [CATALOG[c].fix for c in self._case.distractors]
        fixes = list(dict.fromkeys(fixes))
        rng.shuffle(fixes)
        self.fixes = tuple(Choice(LETTERS[i], "", text) for i, text in enumerate(fixes))
        self._hints: dict[int, Hint] = {}
        self._grade: Grade | None = None
        self._graded_with: tuple[str, str | None] | None = None
        self._verdict: LabVerdict | None = None
        self._rule: _DropRule | None = None
        self._emu: Any = None
        self._closed = False
        self._start()
        self._started = time.monotonic()

    def _start(self) -> None:
        from imds_helpers.emulator import Emulator

        case = self._case
        if case.kernel == IPTABLES_DROP and kernel_faults_possible():
            # The service is healthy behind the rule: the kernel drops the SYNs, not the emulator.
            emu = Emulator(mode=case.track, scenario=case.scenario, scenario_params={"transport": None},
                           label=HIDDEN_LABEL)
            rule = _DropRule(emu.port)
            if rule.added:
                self._emu, self._rule = emu, rule
                self._made_by = f"a real kernel fault: {IPTABLES_DROP} on lo for the service's port"
                return
            emu.close()
        self._emu = Emulator(mode=case.track, scenario=case.scenario, label=HIDDEN_LABEL)
        self._made_by = ("simulated by the emulator (the same symptom the kernel fault gives)" if case.kernel
                        else "made by the emulator")

    # ---- what the trainee sees ---------------------------------------------------------------
    @property
    def story(self) -> str:
        return self._case.story

    @property
    def target(self) -> str:
        return self._case.track

    @property
    def base_url(self) -> str:
        return self._emu.base_url

    @property
    def tokens_dir(self) -> str | None:
        return str(self._emu.key_dir) if self.target == "arc" else None

    @property
    def simulated(self) -> str:
        """How this machine makes the lab's faults (the same words for every case)."""
        return REAL_KERNEL if kernel_faults_possible() else SIMULATED_KERNEL

    @property
    def hints_used(self) -> int:
        return len(self._hints)

    @property
    def graded(self) -> bool:
        return self._grade is not None

    def _running(self) -> None:
        if self._closed:
            raise UsageError("this lab case is closed; start the next one")

    def probe(self, path: str, params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
              metadata: bool = True) -> primer.Exchange:
        """One raw GET against the lab's service, as curl -i shows it (redacted, bounded)."""
        self._running()
        return primer.get(self.base_url, _check_path(path), _check_mapping(params, "params"),
                          headers=_check_mapping(headers, "headers"), metadata=bool(metadata), timeout=self.timeout)

    def curl(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """The curl and PowerShell lines for that request (the Arc token path: the challenge walk)."""
        path, params = _check_path(path), _check_mapping(params, "params") or {}
        if self.target == "arc" and path.rstrip("/") == TOKEN_PATH:
            made = commands.arc_challenge(self.base_url, path, params)
        else:
            made = commands.http_get(self.base_url, path, params)
        return f"{made.curl}\n{made.powershell}"

    def token_claims(self, resource: str = MANAGEMENT) -> dict[str, Any]:
        """A token's decoded claims (the token itself is dropped), or the error, as the primer shows."""
        self._running()
        return primer.token_claims(self.base_url, _check_text(resource, "resource"), timeout=self.timeout)

    def challenge(self, resource: str = MANAGEMENT) -> primer.Conversation:
        """Arc: the 401 -> key file -> Basic walk, as the primer teaches it."""
        self._running()
        if self.target != "arc":
            raise UsageError("the challenge is the Arc flow; this case is an Azure VM (use probe)")
        return primer.arc_challenge(self.base_url, str(self.tokens_dir), resource, timeout=self.timeout)

    def token_request(self) -> tuple[str, dict[str, str]]:
        """The token request's path and parameters for this case's service (for probe/curl)."""
        version = ARC_API_VERSION if self.target == "arc" else TOKEN_API_VERSION
        return TOKEN_PATH, {"api-version": version, "resource": MANAGEMENT}

    def files(self) -> tuple[FileFact, ...]:
        """Arc: the tokens directory as ``ls -l`` shows it (what a challenge wrote there)."""
        self._running()
        if self.tokens_dir is None:
            raise UsageError("a VM has no Arc tokens directory; this case is an Azure VM")
        names = sorted(os.listdir(self.tokens_dir))[:MAX_FILES]
        return tuple(fact for name in names if (fact := stat_path(os.path.join(self.tokens_dir, name))))

    def stat(self, path: str) -> FileFact | None:
        """One path as ``ls -ld`` shows it (e.g. a realm); None if it does not exist."""
        return stat_path(_check_text(path, "path"))

    def hint(self, level: int) -> Hint:
        if isinstance(level, bool) or level not in (1, 2, 3):
            raise UsageError(f"must be 1, 2 or 3, got {str(level)[:40]!r}", argument="hint level")
        if level not in self._hints:
            self._hints[level] = Hint(level, self._case.hints[level - 1], HINT_COST[level - 1])
        return self._hints[level]

    # ---- answering ---------------------------------------------------------------------------
    def _resolve(self, answer: Any, options: tuple[Choice, ...], what: str, by_code: bool) -> Choice:
        text = str(answer).strip() if answer is not None else ""
        for choice in options:
            if text.upper() == choice.letter or (by_code and text.upper() == choice.code.upper()):
                return choice
        letters = ", ".join(c.letter for c in options)
        raise UsageError(f"choose one of {letters}{' or its code' if by_code else ''}, got {text[:40]!r}",
                         argument=what)

    def grade(self, answer: str, fix: str | None = None) -> Grade:
        """Grade the diagnosis (a letter of :attr:`choices` or its code) and, optionally, the fix
        (a letter of :attr:`fixes`). A case is graded once; the same answer again gives the same grade."""
        chosen = self._resolve(answer, self.choices, "answer", by_code=True)
        fixed = None if fix in (None, "") else self._resolve(fix, self.fixes, "fix", by_code=False)
        key = (chosen.letter, fixed.letter if fixed else None)
        if self._grade is not None:
            if key != self._graded_with:
                raise UsageError("this case is graded already; start the next one for another try")
            return self._grade
        seconds = time.monotonic() - self._started
        case = self._case
        correct = chosen.code == case.cause
        fix_correct = None if fixed is None else fixed.title == case.fix
        cost = sum(h.cost for h in self._hints.values())
        points = (max(0, CAUSE_POINTS - cost) if correct else 0) + (FIX_POINTS if fix_correct else 0)
        self._grade = Grade(
            correct=correct, answer=chosen.code, answer_title=chosen.title, cause=case.cause,
            cause_title=CATALOG[case.cause].title, fix_correct=fix_correct, hints_used=len(self._hints),
            points=points, max_points=MAX_POINTS, proof=case.proof, fix=case.fix, seconds=seconds,
            next=f"the next case of this seed is round {self.round + 1} (same seed and track)",
            scenario=case.scenario, made_by=self._made_by)
        self._graded_with = key
        return self._grade

    def verdict(self) -> LabVerdict:
        """The runbook's full verdict on this machine; only once the case is graded."""
        if self._grade is None:
            raise UsageError("the verdict shows the answer: grade your diagnosis first (lab.grade(...))")
        if self._verdict is None:
            self._running()
            from imds_helpers.analyze.pipeline import Pipeline, check_options
            from imds_helpers.collect import LiveHost

            opts = check_options(target=self.target, endpoint=self.base_url, tokens_dir=self.tokens_dir)
            self._verdict = LabVerdict(Pipeline(opts, LiveHost()).run_all())
        return self._verdict

    # ---- life cycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._rule is not None:
                self._rule.remove()
        finally:
            if self._emu is not None:
                self._emu.close()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("graded" if self._grade else "open")
        return f"<Lab seed={self.seed} round={self.round} track={self.target} {state} url={self.base_url}>"


class EndOfExam(Exception):
    """Raised by an answer function when its trainee is gone (end of input, Ctrl-C): this round
    and the ones left are unanswered, and the sheet is still made."""


def exam(seed: int, count: int, track: str = "all", answer_fn: Callable[[Lab], Any] | None = None,
         difficulty: int | None = None, graded: Callable[[Grade | None, dict[str, Any]], None] | None = None,
         trainee: str = "") -> ScoreSheet:
    """``count`` hidden cases in a row, each answered by ``answer_fn(lab)`` -> ``(answer, fix,
    hints_used)`` (or ``(answer, fix)``), or None for a round left unanswered (0 points, the cause
    from the answer key); raising :class:`EndOfExam` leaves this round and the rest unanswered
    without starting them. Hints the function took with ``lab.hint`` count too; ``hints_used``
    charges levels 1..n. ``graded(grade or None, the round's answer-key row)`` is told after each
    round. Returns the score sheet."""
    seed, count = _check_seed(seed), _check_count(count)
    track, difficulty = _check_track(track), _check_difficulty(difficulty)
    if not callable(answer_fn):
        raise UsageError("exam needs an answer function: answer_fn(lab) -> (answer, fix, hints_used)")
    rows, ended = [], False
    for n, truth in enumerate(answer_key(seed, track, count, difficulty)):
        if ended:
            rows.append(_unanswered(n, truth, 0, 0.0))
            continue
        with Lab(seed, track, difficulty, round=n) as lab:
            started = time.monotonic()
            try:
                given = answer_fn(lab)
            except EndOfExam:
                ended, given = True, None
            if given is None:
                rows.append(_unanswered(n, truth, lab.hints_used, time.monotonic() - started))
                if graded:
                    graded(None, truth)
                continue
            given = tuple(given) if isinstance(given, (tuple, list)) else (given,)
            answer, fix, hints = (given + (None, 0)[len(given) - 1:])[:3] if given else (None, None, 0)
            if isinstance(hints, bool) or not isinstance(hints, int) or not 0 <= hints <= 3:
                raise UsageError(f"must be 0..3, got {str(hints)[:40]!r}", argument="hints_used")
            for level in range(1, hints + 1):
                lab.hint(level)
            grade = lab.grade(answer, fix)
            rows.append(ScoreRow(round=n, story=lab.story, answer=grade.answer, cause=grade.cause,
                                 correct=grade.correct, fix_correct=grade.fix_correct, hints_used=grade.hints_used,
                                 points=grade.points, max_points=grade.max_points, seconds=grade.seconds,
                                 scenario=grade.scenario))
            if graded:
                graded(grade, truth)
    return ScoreSheet(seed=seed, track=track, difficulty=difficulty, rows=tuple(rows), trainee=str(trainee)[:64])


def _unanswered(n: int, truth: Mapping[str, Any], hints_used: int, seconds: float) -> ScoreRow:
    return ScoreRow(round=n, story=truth["story"], answer="", cause=truth["cause"], correct=False, fix_correct=None,
                    hints_used=hints_used, points=0, max_points=MAX_POINTS, seconds=seconds,
                    scenario=truth["scenario"])


# -- helpers -------------------------------------------------------------------------------
def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_PATH_CHARS or "\0" in value:
        raise UsageError(f"must be a non-empty text of at most {MAX_PATH_CHARS} characters", argument=name)
    return value


def _check_path(path: Any) -> str:
    path = _check_text(path, "path")
    if not path.startswith("/") or any(ch in path for ch in "?# \r\n\t"):
        raise UsageError(f"give the path only, starting with / (parameters go in params), got {path[:60]!r}",
                         argument="path")
    return path


def _check_mapping(value: Any, name: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or len(value) > 20:
        raise UsageError("must be a mapping of at most 20 names to texts", argument=name)
    out = {}
    for key, item in value.items():
        out[_check_text(str(key), name)] = str(item)[:MAX_PATH_CHARS]
    return out


_KINDS = ((stat.S_ISLNK, "symlink"), (stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "fifo"),
          (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def stat_path(path: str) -> FileFact | None:
    """``path`` as ``ls -ld`` shows it; a symlink is not followed (its target is shown)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "other")
    target = ""
    if kind == "symlink":
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
    return FileFact(path=path, kind=kind, mode=stat.filemode(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                    size=st.st_size, target=target)
