"""What the fault lab shows a trainee around :mod:`imds_helpers.runbooks.fault_lab`'s own results:
the case, the requests to try by hand, the choices, the hints taken, the answer and what comes
after it - as markdown in the lab notebook (notebooks/04_fault_lab.ipynb) and as text lines in the
terminal (``imds-runbook lab --exam``), from one place.

Before a case is graded these show only what :class:`~imds_helpers.runbooks.fault_lab.Lab` shows
(story, target, URLs, lettered choices, hints): never the scenario. Nothing here prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from imds_helpers.model.endpoints import COMMAND_API_VERSION, INSTANCE_PATH
from imds_helpers.model.textsafe import markdown_safe, terminal_safe

#: The instance request of the primer and the runbooks (IMDS and HIMDS both accept this version).
INSTANCE = (INSTANCE_PATH, {"api-version": COMMAND_API_VERSION})
HOW_TO_ANSWER = ("Set `answer` to a cause's letter or code (and, if you like, `fix` to a fix's letter) and run "
                 "this cell again - or pass them as parameters: `papermill ... -p answer B -p fix D`.")
HOW_TO_HINT = "No hint taken. Stuck? Set `hints` to 1, 2 or 3 and run this cell: each level costs points ({costs})."


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[str, ...]
    code: bool = False          # commands: a code block in markdown, indented in the terminal


@dataclass(frozen=True)
class View:
    sections: tuple[Section, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"sections": [{"title": s.title, "lines": list(s.lines), "code": s.code} for s in self.sections]}

    def text(self) -> str:
        """Terminal lines: every line terminal-safe, commands indented."""
        out: list[str] = []
        for s in self.sections:
            out += ([f"{s.title}:"] if s.title else []) + [("  " if s.code or s.title else "") + terminal_safe(line)
                                                           for line in s.lines]
        return "\n".join(out) + "\n"

    def _repr_markdown_(self) -> str:
        parts = []
        for s in self.sections:
            head = [f"**{markdown_safe(s.title)}**"] if s.title else []
            if s.code:
                body = [terminal_safe(line) for line in s.lines]
                fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", "\n".join(body))), default=0))
                parts.append("\n\n".join(head + [f"{fence}\n" + "\n".join(body) + f"\n{fence}"]))
            else:
                items = ["- " + markdown_safe(line[2:]) if line.startswith("- ") else markdown_safe(line)
                         for line in s.lines]
                bullets = all(line.startswith("- ") for line in s.lines)
                parts.append("\n\n".join(head + (["\n".join(items)] if bullets else items)))
        return "\n\n".join(parts)


def case(lab: Any) -> View:
    """The symptom as reported and where the emulated service listens."""
    where = [f"The {'Arc agent' if lab.target == 'arc' else 'VM'}'s metadata service (emulated) answers at "
             f"{lab.base_url}."]
    if lab.tokens_dir:
        where.append(f"Its key files (the Arc challenge) are written to {lab.tokens_dir}.")
    return View((Section("The case", (lab.story,)), Section("", tuple(where))))


def by_hand(lab: Any) -> View:
    """The instance and token requests as curl / PowerShell lines, to run from a terminal."""
    lines = lab.curl(*INSTANCE).splitlines() + lab.curl(*lab.token_request()).splitlines()
    return View((Section("Try it by hand (curl, then PowerShell)", tuple(lines), code=True),))


def choices(lab: Any) -> View:
    """The lettered causes and fixes to choose from."""
    causes = tuple(f"- {c.letter}: {c.code} - {c.title}" for c in lab.choices)
    fixes = tuple(f"- {c.letter}: {c.title}" for c in lab.fixes)
    return View((Section("Causes (answer)", causes), Section("Fixes (optional: fix)", fixes)))


def hints(lab: Any, upto: int) -> View:
    """Hints 1..``upto`` (taking one records it: it costs points when graded)."""
    from imds_helpers.runbooks.fault_lab import HINT_COST

    if not upto:
        return View((Section("", (HOW_TO_HINT.format(costs=", ".join(f"{c}" for c in HINT_COST) + " points"),)),))
    taken = [lab.hint(level) for level in range(1, int(upto) + 1)]
    return View(tuple(Section(f"Hint {h.level} (costs {h.cost})", (h.text,)) for h in taken))


def answer(lab: Any, given: str, fix: str = "") -> Any:
    """The grade of ``given`` (a letter or a code) and ``fix``; how to answer when ``given`` is empty."""
    if not str(given or "").strip():
        return View((Section("", (HOW_TO_ANSWER,)),))
    return lab.grade(given, fix or None)


def after(lab: Any) -> Any:
    """The runbook's full verdict once graded; until then, why it is not shown."""
    if not lab.graded:
        return View((Section("", ("The runbook's verdict names the cause: it is shown once you have answered.",)),))
    return lab.verdict()
