"""``imds-runbook lab --exam | --answer-key | --blind`` as a trainee and an instructor use them: real
processes, real emulators, stdin from a script. The expected scores are computed from the engine's
answer key and point rules, never written down; the exam's output before each answer is scanned for
the scenario's name, and every output for the emulators' canary."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from imds_helpers.runbooks import fault_lab

ROOT = Path(__file__).resolve().parents[2]
CANARY = "imdsrbcanaryl2c11f00d"
SEED = 11


def _lab(*args: str, cwd: Path, stdin: str = "", timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "IMDS_EMULATOR_CANARY": CANARY, "IMDS_RUNBOOK_ENDPOINT": "http://127.0.0.1:9",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "imds_helpers", "lab", *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def _hidden_names(key: list[dict]) -> set[str]:
    """What must not show before an answer: every drawn case's scenario name and internal key."""
    return {row["scenario"] for row in key} | {row["key"] for row in key}


def _fix_letters(seed: int, track: str, rounds: int) -> list[dict[str, str]]:
    """Per round, the right fix's letter and a wrong one (the letters are shuffled per case)."""
    letters = []
    for n in range(rounds):
        with fault_lab.Lab(seed, track, None, round=n) as lab:
            right = next(c.letter for c in lab.fixes if c.title == fault_lab.answer_key(seed, track, n + 1)[n]["fix"])
            letters.append({"right": right, "wrong": next(c.letter for c in lab.fixes if c.letter != right)})
    return letters


def test_an_exam_of_five_is_scored_from_the_answer_key(tmp_path):
    key = fault_lab.answer_key(SEED, "all", count=5)
    cases = fault_lab.draw(SEED, "all", None, 5)
    fixes = _fix_letters(SEED, "all", 5)
    script = [
        ["hint", f"answer {key[0]['cause']}"],                                     # right, one hint
        [f"answer {cases[1].distractors[0]}"],                                     # wrong
        ["hint", "hint", "choices", f"answer {key[2]['cause'].lower()} fix {fixes[2]['right']}"],  # right + fix
        ["what now", "answer ZZ", "answer", "skip"],                               # unanswered
        [f"answer {key[4]['cause']} fix {fixes[4]['wrong']}"],                     # right, wrong fix
    ]
    cost = fault_lab.HINT_COST
    expected = [  # (answer, correct, fix_correct, hints, points)
        (key[0]["cause"], True, None, 1, fault_lab.CAUSE_POINTS - cost[0]),
        (cases[1].distractors[0], False, None, 0, 0),
        (key[2]["cause"], True, True, 2, fault_lab.CAUSE_POINTS - cost[0] - cost[1] + fault_lab.FIX_POINTS),
        ("", False, None, 0, 0),
        (key[4]["cause"], True, False, 0, fault_lab.CAUSE_POINTS),
    ]
    out = tmp_path / "sheets"
    proc = _lab("--exam", "--seed", str(SEED), "--count", "5", "--out", str(out), cwd=tmp_path,
                stdin="".join(line + "\n" for lines in script for line in lines))
    assert proc.returncode == 0, proc.stderr

    sheet = json.loads((out / "score-sheet.json").read_text())
    rows = [(r["answer"], r["correct"], r["fix_correct"], r["hints_used"], r["points"]) for r in sheet["rows"]]
    assert rows == expected
    assert [r["cause"] for r in sheet["rows"]] == [row["cause"] for row in key]
    assert sheet["total"] == sum(e[4] for e in expected) and sheet["max_total"] == 5 * fault_lab.MAX_POINTS
    assert all(r["seconds"] >= 0 for r in sheet["rows"]) and sheet["seed"] == SEED
    markdown = (out / "score-sheet.md").read_text()
    assert f"**{sheet['total']} / {sheet['max_total']} points**" in markdown and markdown.count("\n| ") == 6
    assert f"score sheet: {out / 'score-sheet.json'}" in proc.stdout

    # Each round's output up to its grade names no case of the seed; the grade then does.
    rounds = re.split(r"^=== round \d of 5 ", proc.stdout, flags=re.M)[1:]
    assert len(rounds) == 5
    hidden = _hidden_names(key)
    for n, text in enumerate(rounds):
        before, graded, after = re.split(r"^(RIGHT|WRONG|unanswered):", text, maxsplit=1, flags=re.M)
        assert not [name for name in hidden if name in before], (n, before)
        assert key[n]["story"] in before and "curl -sS" in before and "Invoke-RestMethod" in before
        assert key[n]["scenario"] in after
    assert "hint 2 (costs 2)" in rounds[2] and "Causes (answer):" in rounds[2]
    assert "not a command: what now" in rounds[3]
    for text in (proc.stdout, proc.stderr, markdown, json.dumps(sheet)):
        assert CANARY not in text


def test_the_end_of_the_input_leaves_the_rounds_unanswered_and_the_sheet_is_written(tmp_path):
    key = fault_lab.answer_key(SEED, "vm", count=3)
    proc = _lab("--exam", "--seed", str(SEED), "--track", "vm", "--count", "3", "--out", str(tmp_path),
                cwd=tmp_path, stdin=f"answer {key[0]['cause']}\nhint\n")
    assert proc.returncode == 0, proc.stderr
    sheet = json.loads((tmp_path / "score-sheet.json").read_text())
    assert [(r["answer"], r["points"], r["hints_used"]) for r in sheet["rows"]] == [
        (key[0]["cause"], fault_lab.CAUSE_POINTS, 0), ("", 0, 1), ("", 0, 0)]
    assert [r["cause"] for r in sheet["rows"]] == [row["cause"] for row in key]
    assert proc.stdout.count("=== round") == 2 and "end of input" in proc.stdout   # round 3 never shown


def test_a_named_sheet_says_whose_it_is(tmp_path):
    key = fault_lab.answer_key(SEED, "arc", count=1)
    proc = _lab("--exam", "--seed", str(SEED), "--track", "arc", "--count", "1", "--out", str(tmp_path),
                "--name", "Ann O_Neil", cwd=tmp_path, stdin=f"answer {key[0]['cause']}\n")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["score-sheet-Ann-O_Neil.json", "score-sheet-Ann-O_Neil.md"]
    sheet = json.loads((tmp_path / "score-sheet-Ann-O_Neil.json").read_text())
    assert sheet["trainee"] == "Ann O_Neil" and sheet["total"] == fault_lab.CAUSE_POINTS
    assert (tmp_path / "score-sheet-Ann-O_Neil.md").read_text().startswith("# Fault lab score sheet of Ann O\\_Neil")


def test_the_answer_key_says_what_a_seed_draws(tmp_path):
    proc = _lab("--answer-key", "--seed", str(SEED), "--count", "4", "--track", "arc", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    rounds = [line for line in lines if line.startswith("round ")]
    assert rounds == [f"round {row['round']}: {row['scenario']} -> {row['cause']} {row['title']}"
                      for row in fault_lab.answer_key(SEED, "arc", count=4)]
    assert all(row["scenario"].startswith("arc-") for row in fault_lab.answer_key(SEED, "arc", count=4))
    assert lines[0] == f"answer key: seed {SEED}, track arc, difficulty any" and proc.stderr == ""


def test_blind_dry_run_prepares_the_notebook_without_naming_the_case(tmp_path):
    work = tmp_path / "work"
    proc = _lab("--blind", "--seed", str(SEED), "--track", "arc", "--round", "1", "--dry-run", "--dir", str(work),
                cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (notebook,) = work.glob("*.ipynb")
    nb = nbformat.read(notebook, as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert {"seed = 11", 'track = "arc"', "round = 1", "difficulty = 0"} <= set(injected.source.splitlines())
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")   # no other seed's case
    command = proc.stdout.splitlines()[-1]
    assert "--ServerApp.ip=127.0.0.1" in command and f"--LabApp.default_url=/lab/tree/{notebook.name}" in command
    assert f"--notebook-dir={work}" in command
    hidden = _hidden_names(fault_lab.answer_key(SEED, "arc", count=2))
    seen = proc.stdout + proc.stderr + notebook.name + notebook.read_text()
    assert not [name for name in hidden if name in seen] and CANARY not in seen

    # The trainee's work is never overwritten: the same lab again reopens it.
    notebook.write_text(notebook.read_text().replace("round = 1", "round = 1  # mine"))
    again = _lab("--blind", "--seed", str(SEED), "--track", "arc", "--round", "1", "--dry-run", "--dir", str(work),
                 cwd=tmp_path, timeout=60)
    assert again.returncode == 0 and "reopening" in again.stdout and "# mine" in notebook.read_text()


@pytest.mark.parametrize("args, names", [
    (("--exam",), "--seed"),
    (("--answer-key",), "--seed"),
    (("--exam", "--seed", "1", "--count", "0"), "--count"),
    (("--exam", "--seed", "1", "--count", str(fault_lab.MAX_COUNT + 1)), "--count"),
    (("--answer-key", "--seed", "-3"), "--seed"),
    (("--answer-key", "--seed", str(fault_lab.MAX_SEED + 1)), "--seed"),
    (("--answer-key", "--seed", "x1"), "--seed"),
    (("--exam", "--seed", "1", "--track", "mars"), "--track"),
    (("--exam", "--seed", "1", "--difficulty", "7"), "--difficulty"),
    (("--blind", "--count", "3"), "--count"),
    (("--blind", "--round", str(fault_lab.MAX_COUNT)), "--round"),
    (("--exam", "--seed", "1", "--scenario", "vm-healthy"), "--scenario"),
    (("--answer-key", "--seed", "1", "--out", "x"), "--out"),
    (("--exam", "--answer-key", "--seed", "1"), "--answer-key"),
    (("--exam", "--seed", "1", "--out", "file/sub"), "--out"),
    (("--exam", "--seed", "1", "--name", "../../etc/x"), "--name"),
    (("--exam", "--seed", "1", "--name", "a\x1b[2Jb"), "--name"),
    (("--answer-key", "--seed", "1", "--name", "Ann"), "--name"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, names):
    (tmp_path / "file").write_text("a file, not a folder")
    proc = _lab(*args, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("imds-runbook lab") and names in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]          # nothing written


def test_without_a_mode_the_runbooks_open_on_the_primer_with_an_emulator(tmp_path):
    proc = _lab("--dry-run", "--scenario", "vm-no-identity", "--port", "18999", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    url, _arc, command = proc.stdout.splitlines()
    assert url.startswith("emulated IMDS (vm-no-identity) at http://127.0.0.1:")
    assert "--ServerApp.ip=127.0.0.1 --ServerApp.port=18999" in command
    assert "--LabApp.default_url=/lab/tree/00_imds_primer.ipynb" in command
    bad = _lab("--scenario", "vm-nope", "--dry-run", cwd=tmp_path, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "vm-nope" in bad.stderr


def test_ctrl_c_at_the_prompt_ends_the_exam_and_the_sheet_is_written(tmp_path):
    import select
    import signal

    env = {**os.environ, "IMDS_EMULATOR_CANARY": CANARY, "IMDS_RUNBOOK_ENDPOINT": "http://127.0.0.1:9",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "imds_helpers", "lab", "--exam", "--seed", str(SEED), "--count", "2",
                             "--out", str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    try:
        seen = b""
        while not seen.endswith(b"> "):                       # the first prompt: it waits for a command
            assert select.select([proc.stdout], [], [], 60)[0], seen
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, seen
            seen += chunk
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    sheet = json.loads((tmp_path / "score-sheet.json").read_text())
    assert [r["answer"] for r in sheet["rows"]] == ["", ""] and sheet["total"] == 0
    assert b"score sheet:" in out
