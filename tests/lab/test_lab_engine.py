"""The lab engine (imds_helpers/runbooks/fault_lab.py): the seed's draw, the lettered choices,
hints and points, grading, the verdict only after grading, the exam's score sheet, bad input."""

from __future__ import annotations

import json
import time

import pytest

from imds_helpers.emulator.lab_scenarios import LAB_BY_KEY, LAB_CASES
from imds_helpers.model.errors import UsageError
from imds_helpers.runbooks import fault_lab
from imds_helpers.runbooks.fault_lab import (CAUSE_POINTS, FIX_POINTS, HINT_COST, MAX_POINTS, EndOfExam, Lab, answer_key,
                                             draw, exam, pool)

QUICK = LAB_BY_KEY["lab01"]        # answers at once: no timeouts in these tests


def _one_line_usage_error(call, *args, **kwargs) -> str:
    with pytest.raises(UsageError) as caught:
        call(*args, **kwargs)
    text = str(caught.value)
    assert "\n" not in text and text
    return text


# -- draw ------------------------------------------------------------------------------------------
def test_draw_is_deterministic_and_depends_on_the_seed():
    assert draw(7, count=5) == draw(7, count=5)
    orders = {tuple(c.key for c in draw(seed, count=5)) for seed in range(20)}
    assert len(orders) > 10                     # seeds really choose
    assert draw(7, count=3) == draw(7, count=5)[:3]


@pytest.mark.parametrize("track", ["vm", "arc"])
def test_tracks_draw_their_own_cases(track):
    drawn = draw(3, track, count=len(pool(track)))
    assert {c.track for c in drawn} == {track}
    assert sorted(c.key for c in drawn) == sorted(c.key for c in LAB_CASES if c.track == track)  # distinct


def test_all_track_mixes_and_more_than_the_pool_repeats_after_a_full_round():
    everything = draw(11, "all", count=len(LAB_CASES))
    assert sorted(c.key for c in everything) == sorted(LAB_BY_KEY)
    small = pool("arc", 1)
    assert len(small) == 1
    assert draw(2, "arc", 1, count=3) == small * 3


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_difficulty_filters(difficulty):
    drawn = draw(5, "all", difficulty, count=len(pool("all", difficulty)))
    assert {c.difficulty for c in drawn} == {difficulty}
    assert len({c.key for c in drawn}) == len(drawn)


@pytest.mark.parametrize("kwargs, argument", [
    ({"seed": "abc"}, "seed"), ({"seed": -1}, "seed"), ({"seed": 2 ** 64}, "seed"), ({"seed": 1.5}, "seed"),
    ({"track": "linux"}, "track"), ({"track": None}, "track"), ({"difficulty": 4}, "difficulty"),
    ({"difficulty": True}, "difficulty"), ({"count": 0}, "count"), ({"count": 51}, "count"),
])
def test_bad_draw_input_is_one_line(kwargs, argument):
    args = {"seed": 1, **kwargs}
    assert _one_line_usage_error(draw, **args).startswith(argument + ":")


def test_bad_lab_input_is_one_line_and_starts_nothing():
    assert _one_line_usage_error(Lab, seed="x").startswith("seed:")
    assert _one_line_usage_error(Lab, 1, "windows").startswith("track:")
    assert _one_line_usage_error(Lab, 1, round=-1).startswith("round:")
    for timeout in (0, 61, "5", True, float("nan")):
        assert _one_line_usage_error(Lab, 1, timeout=timeout).startswith("timeout:")


def test_answer_key_lists_what_the_seed_draws():
    key = answer_key(9, "all", count=4)
    assert [row["key"] for row in key] == [c.key for c in draw(9, "all", count=4)]
    assert [row["round"] for row in key] == [0, 1, 2, 3]
    assert all(row["cause"] == LAB_BY_KEY[row["key"]].cause and row["scenario"] for row in key)
    json.dumps(key)


# -- one case --------------------------------------------------------------------------------------
def test_choices_are_the_cause_and_distractors_lettered_and_stable():
    with Lab(case=QUICK) as one, Lab(case=QUICK) as two:
        assert one.choices == two.choices
        assert [c.letter for c in one.choices] == list("ABCDE"[:len(QUICK.codes)])
        assert sorted(c.code for c in one.choices) == sorted(QUICK.codes)
        assert QUICK.fix in [f.title for f in one.fixes] and len(one.fixes) >= 4
        assert one.target == "vm" and one.tokens_dir is None and one.story == QUICK.story
    with Lab(seed=7, round=0) as drawn:
        assert drawn.story == draw(7)[0].story
    with Lab(seed="7", round=1) as again:                  # a numeric text is a seed too
        assert again.story == draw(7, count=2)[1].story


def _letter(lab, code):
    return next(c.letter for c in lab.choices if c.code == code)


def _fix_letter(lab, right: bool):
    return next(f.letter for f in lab.fixes if (f.title == QUICK.fix) == right)


def test_right_answer_by_letter_scores_full_marks_and_time_is_measured():
    with Lab(case=QUICK) as lab:
        time.sleep(0.3)
        grade = lab.grade(_letter(lab, QUICK.cause).lower())
        assert grade.correct and grade.answer == QUICK.cause and grade.points == CAUSE_POINTS
        assert grade.max_points == MAX_POINTS == CAUSE_POINTS + FIX_POINTS
        assert grade.fix_correct is None and grade.hints_used == 0
        assert 0.3 <= grade.seconds < 30
        assert grade.proof == QUICK.proof and grade.fix == QUICK.fix and "round 1" in grade.next
        assert grade.scenario == QUICK.scenario
        assert "Right" in grade._repr_markdown_() and QUICK.cause in grade._repr_markdown_()
        json.dumps(grade.to_dict())


def test_wrong_answer_by_code_scores_nothing_and_says_the_cause():
    with Lab(case=QUICK) as lab:
        wrong = QUICK.distractors[0]
        grade = lab.grade(wrong.lower(), fix=_fix_letter(lab, right=False))
        assert not grade.correct and grade.answer == wrong and grade.cause == QUICK.cause
        assert grade.points == 0 and grade.fix_correct is False
        assert "Not this time" in grade._repr_markdown_()


def test_hints_cost_points_once_per_level_and_the_right_fix_adds():
    with Lab(case=QUICK) as lab:
        first = lab.hint(1)
        assert (first.level, first.text, first.cost) == (1, QUICK.hints[0], HINT_COST[0])
        lab.hint(1)                                    # asked again: charged once
        assert lab.hint(3).text == QUICK.hints[2]
        assert lab.hints_used == 2
        grade = lab.grade(QUICK.cause, fix=_fix_letter(lab, right=True))
        assert grade.points == CAUSE_POINTS - HINT_COST[0] - HINT_COST[2] + FIX_POINTS == 8
        assert grade.hints_used == 2 and grade.fix_correct is True
    with Lab(case=QUICK) as lab:
        for level in (1, 2, 3):
            lab.hint(level)
        assert lab.grade(QUICK.cause).points == CAUSE_POINTS - sum(HINT_COST) == 4
    _one_line_usage_error(lab.hint, 4)


def test_grading_twice_and_bad_answers():
    with Lab(case=QUICK) as lab:
        assert "choose one of A, B, C, D, E" in _one_line_usage_error(lab.grade, "Z")
        assert _one_line_usage_error(lab.grade, QUICK.cause, fix="Q").startswith("fix:")
        grade = lab.grade(QUICK.cause)
        assert lab.grade(_letter(lab, QUICK.cause)) is grade            # the same answer: the same grade
        assert "graded already" in _one_line_usage_error(lab.grade, QUICK.distractors[0])
        assert lab.graded


def test_verdict_only_after_grading():
    with Lab(case=QUICK) as lab:
        assert "grade your diagnosis first" in _one_line_usage_error(lab.verdict)
        lab.grade("A")
        verdict = lab.verdict()
        assert QUICK.cause in verdict.codes() and verdict.to_dict()["verdict"] == "fail"
        assert lab.verdict() is verdict
        assert QUICK.cause in str(verdict) and QUICK.cause in verdict._repr_html_()


def test_probes_check_their_input_and_stop_with_the_lab():
    with Lab(case=QUICK) as lab:
        assert lab.probe("/metadata/instance", {"api-version": "2021-02-01"}).status == 200
        path, params = lab.token_request()
        assert lab.probe(path, params).status == 400
        assert lab.probe("/metadata/instance", {"api-version": "2021-02-01"}, metadata=False).status == 400
        assert "curl" in lab.curl(path, params) and "Invoke-RestMethod" in lab.curl(path, params)
        for bad in ("http://example.com/metadata", "metadata/instance", "/metadata?x=1", "/a b", ""):
            assert _one_line_usage_error(lab.probe, bad).startswith("path:")
        assert "Arc" in _one_line_usage_error(lab.challenge)
        _one_line_usage_error(lab.files)
    assert "closed" in _one_line_usage_error(lab.probe, "/metadata/instance")


def test_arc_probes_walk_the_challenge_and_list_the_tokens_directory():
    case = LAB_BY_KEY["lab21"]          # the key file is too large
    with Lab(case=case) as lab:
        assert lab.target == "arc" and lab.tokens_dir
        walk = lab.challenge()
        assert walk.exchanges[0].status == 401 and walk.exchanges[-1].error == "key refused"
        files = lab.files()
        assert [(f.kind, f.size) for f in files] == [("file", 5000)]
        assert lab.stat(files[0].path) == files[0] and lab.stat("/nonexistent/x.key") is None
        assert "realm=$(curl" in lab.curl(*lab.token_request())


# -- the exam --------------------------------------------------------------------------------------
def test_exam_of_five_scores_right():
    seed = 4
    key = {row["round"]: row for row in answer_key(seed, "all", count=5)}
    plan = {0: ("right", None, 0), 1: ("wrong", None, 0), 2: ("right", None, 1), 3: ("right", "right", 0),
            4: ("right", "wrong", 3)}
    expected = {0: 10, 1: 0, 2: 10 - 1, 3: 10 + 2, 4: 10 - 6}

    def answer_fn(lab):
        row = key[lab.round]
        assert lab.story == row["story"]
        cause, fix, hints = plan[lab.round]
        answer = row["cause"] if cause == "right" else next(c.code for c in lab.choices if c.code != row["cause"])
        fix_letter = None if fix is None else next(f.letter for f in lab.fixes
                                                   if (f.title == row["fix"]) == (fix == "right"))
        return answer, fix_letter, hints

    sheet = exam(seed, 5, "all", answer_fn)
    assert [r.points for r in sheet.rows] == [expected[n] for n in range(5)]
    assert sheet.total == sum(expected.values()) == 35 and sheet.max_total == 5 * MAX_POINTS == 60
    assert sheet.correct == 4
    assert [r.correct for r in sheet.rows] == [True, False, True, True, True]
    assert [r.hints_used for r in sheet.rows] == [0, 0, 1, 0, 3]
    assert [r.scenario for r in sheet.rows] == [key[n]["scenario"] for n in range(5)]
    data = json.loads(json.dumps(sheet.to_dict()))
    assert data["total"] == 35 and data["max_total"] == 60 and len(data["rows"]) == 5
    assert sum(r["points"] for r in data["rows"]) == data["total"]
    markdown = sheet.to_markdown()
    assert "**35 / 60 points**, 4 of 5 causes right" in markdown
    assert markdown.count("\n| ") == 6      # header + 5 rows


def test_exam_rounds_left_unanswered_score_nothing_and_name_the_cause():
    key = answer_key(3, "vm", count=4)
    told = []

    def answer_fn(lab):
        if lab.round == 0:
            return key[0]["cause"], None              # (answer, fix): no hints
        if lab.round == 1:
            return None                               # skipped
        raise EndOfExam                               # the trainee is gone: rounds 2 and 3 unanswered

    sheet = exam(3, 4, "vm", answer_fn, graded=lambda grade, truth: told.append((grade is not None, truth["round"])))
    assert [r.points for r in sheet.rows] == [CAUSE_POINTS, 0, 0, 0]
    assert [r.answer for r in sheet.rows][1:] == ["", "", ""]
    assert [r.cause for r in sheet.rows] == [row["cause"] for row in key]
    assert [r.scenario for r in sheet.rows] == [row["scenario"] for row in key]
    assert told == [(True, 0), (False, 1), (False, 2)]      # round 3 was never started


def test_exam_checks_its_input():
    _one_line_usage_error(exam, 1, 0, "all", lambda lab: "A")
    _one_line_usage_error(exam, 1, 1, "all", None)
    assert _one_line_usage_error(exam, 1, 1, "all", lambda lab: ("A", None, 9)).startswith("hints_used:")


def test_simulated_says_the_same_for_every_case():
    said = set()
    for key in ("lab01", "lab11", "lab16"):
        with Lab(case=LAB_BY_KEY[key]) as lab:
            said.add(lab.simulated)
    assert said == {fault_lab.REAL_KERNEL if fault_lab.kernel_faults_possible() else fault_lab.SIMULATED_KERNEL}
