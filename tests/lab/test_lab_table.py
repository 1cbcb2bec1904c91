"""The lab table (imds_helpers/emulator/lab_scenarios.py) is tied to the fault matrix and to the
runbook's own verdict: every case's cause is what the matrix expects for its scenario AND what
the pipeline names when run against the lab's machine; distractors are real codes the verdict
does not name. Also the table's shape: enough distinct faults on both tracks, three hints each."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from imds_helpers.emulator import SCENARIOS
from imds_helpers.emulator.lab_scenarios import KERNEL_FAULTS, LAB_BY_KEY, LAB_CASES
from imds_helpers.model.catalog import CATALOG
from imds_helpers.model.errors import UsageError
from imds_helpers.runbooks import fault_lab
from imds_helpers.runbooks.fault_lab import Lab

from tests.matrix.fault_matrix import MATRIX, matches

IDS = [c.key for c in LAB_CASES]


def test_enough_distinct_faults_on_both_tracks():
    scenarios = [c.scenario for c in LAB_CASES]
    assert len(set(scenarios)) == len(scenarios) >= 15
    tracks = [c.track for c in LAB_CASES]
    assert tracks.count("vm") >= 5 and tracks.count("arc") >= 5
    assert {c.difficulty for c in LAB_CASES} == {1, 2, 3}
    assert len(LAB_BY_KEY) == len(LAB_CASES)


@pytest.mark.parametrize("case", LAB_CASES, ids=IDS)
def test_row_shape(case):
    assert case.scenario in SCENARIOS
    assert case.cause in CATALOG and CATALOG[case.cause].status.value in ("fail", "warn")
    assert len(case.distractors) >= 3 and len(set(case.distractors)) == len(case.distractors)
    assert case.cause not in case.distractors
    assert all(d in CATALOG for d in case.distractors), [d for d in case.distractors if d not in CATALOG]
    assert len(case.hints) == 3 and len(set(case.hints)) == 3 and all(len(h) > 20 for h in case.hints)
    assert case.difficulty in (1, 2, 3)
    assert case.kernel in ("", *KERNEL_FAULTS)
    assert len(case.story) > 60 and case.fix and case.proof
    assert case.scenario not in case.story + " ".join(case.hints)


@pytest.mark.parametrize("case", LAB_CASES, ids=IDS)
def test_cause_is_what_the_fault_matrix_expects(case):
    rows = [m for m in MATRIX if m.scenario == case.scenario and not m.args]
    assert rows, f"{case.scenario} has no plain row in the fault matrix"
    expected = {check: code for m in rows for check, code in m.expect.items() if code != "-"}
    assert any(matches(code, case.cause) for code in expected.values()), (case.cause, expected)
    for distractor in case.distractors:
        assert not any(matches(code, distractor) for code in expected.values()), distractor


def _verdict_problems(case) -> list[str]:
    """What contradicts the row when the pipeline diagnoses the lab's own machine ([] if nothing)."""
    with Lab(case=case) as lab:
        with pytest.raises(UsageError, match="grade your diagnosis first"):
            lab.verdict()
        lab.grade(case.cause)
        verdict = lab.verdict()
        codes = verdict.codes()
    problems = [] if case.cause in codes else [f"cause {case.cause} not in {codes}"]
    problems += [f"distractor {d} named" for d in sorted(set(case.distractors) & set(codes))]
    if verdict.to_dict()["verdict"] not in ("fail", "warn"):
        problems.append(f"verdict {verdict.to_dict()['verdict']}")
    return problems


@pytest.mark.timeout(180)
def test_cause_is_what_the_runbook_verdict_names():
    """The lab's own machine (real kernel fault where it makes one), diagnosed by the pipeline, for
    every case. The cases run side by side (each its own emulator): most of the time is the slow
    and silent services' deadlines, waited out together."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = dict(zip(IDS, pool.map(_verdict_problems, LAB_CASES)))
    assert {key: problems for key, problems in found.items() if problems} == {}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", [c for c in LAB_CASES if c.kernel], ids=[c.key for c in LAB_CASES if c.kernel])
def test_kernel_case_simulated_gives_the_same_cause(case, monkeypatch):
    """Without the rights to make the kernel fault, the emulator's simulation takes its place."""
    monkeypatch.setattr(fault_lab, "kernel_faults_possible", lambda: False)
    with Lab(case=case) as lab:
        assert lab.simulated == fault_lab.SIMULATED_KERNEL
        grade = lab.grade(case.cause)
        assert grade.correct and "simulated" in grade.made_by
        assert case.cause in lab.verdict().codes()


def _rules() -> str:
    return subprocess.run(["iptables", "-w", "5", "-S", "INPUT"], capture_output=True, text=True, timeout=10).stdout


@pytest.mark.timeout(120)
def test_kernel_case_makes_a_real_drop_rule_and_removes_it():
    if not fault_lab.kernel_faults_possible():
        pytest.skip("needs root in a private network namespace with iptables (tests/isolated.sh as root)")
    case = next(c for c in LAB_CASES if c.kernel == "iptables DROP")
    with Lab(case=case) as lab:
        rule = f"-A INPUT -i lo -p tcp -m tcp --dport {lab._emu.port} -j DROP"
        assert rule in _rules()
        assert lab._emu.scenario_settings["transport"] is None       # the kernel drops, not the emulator
        assert lab.probe("/metadata/instance", {"api-version": "2021-02-01"}).error == "connect_timeout"
        assert "real kernel fault" in lab.grade(case.cause).made_by
        assert lab.simulated == fault_lab.REAL_KERNEL
    assert rule not in _rules()
