"""Every emulator scenario through the API and through `imds-runbook check --json`: the named
finding codes, and the emulator's canary nowhere in any output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from imds_helpers.api import check_options, run_checks
from imds_helpers.emulator import SCENARIOS, Emulator

from .fault_matrix import MATRIX, problems

# The doctor-style listing too, for a healthy, an identity, a garbage and an Arc case.
TEXT_TOO = {"vm-healthy", "vm-no-identity", "vm-malformed-json", "arc-healthy", "arc-wrong-secret"}
IDS = [f"{c.scenario}{'+' + '+'.join(c.args[1::2]) if c.args else ''}" for c in MATRIX]


def test_every_scenario_has_a_row():
    assert sorted({c.scenario for c in MATRIX}) == sorted(SCENARIOS)


def _args(case, emu):
    mode = SCENARIOS[case.scenario].mode
    args = ["--target", mode, "--endpoint", emu.base_url, *case.args]
    if mode == "arc":
        args += ["--tokens-dir", str(emu.key_dir)]
    return args


@pytest.mark.parametrize("case", MATRIX, ids=IDS)
def test_api(case):
    mode = SCENARIOS[case.scenario].mode
    with Emulator(mode=mode, scenario=case.scenario) as emu:
        args = dict(zip(case.args[0::2], case.args[1::2]))
        report = run_checks(check_options(
            target=mode, endpoint=emu.base_url, client_ids=[args["--client-id"]] if "--client-id" in args else [],
            tokens_dir=str(emu.key_dir) if mode == "arc" else None))
        data = report.to_dict()
        assert problems(case, data) == []
        assert emu.canary not in json.dumps(data) and emu.canary not in repr(report)


@pytest.mark.parametrize("case", MATRIX, ids=IDS)
def test_cli_json_and_text(case):
    mode = SCENARIOS[case.scenario].mode
    with Emulator(mode=mode, scenario=case.scenario) as emu:
        run = subprocess.run([sys.executable, "-m", "imds_helpers", "check", "--json", "--timeout", str(case.cli_timeout),
                              *_args(case, emu)], capture_output=True, text=True, timeout=120)
        assert run.returncode == (1 if case.fails or json.loads(run.stdout)["verdict"] != "ok" else 0), run.stderr
        assert run.stderr == ""
        data = json.loads(run.stdout)
        assert problems(case, data) == []
        for check in data["checks"]:
            assert {"id", "status", "code", "title", "detail", "fix", "elapsed_ms", "commands"} <= set(check)
            assert set(check["commands"]) == {"curl", "powershell"}
        outputs = [run.stdout, run.stderr, json.dumps(emu.request_log)]
        if case.scenario in TEXT_TOO:
            text = subprocess.run([sys.executable, "-m", "imds_helpers", "check", "--timeout", "2", *_args(case, emu)],
                                  capture_output=True, text=True, timeout=120)
            assert "Traceback" not in text.stderr and text.stdout.splitlines()[-1].startswith("Verdict: ")
            outputs += [text.stdout, text.stderr]
        for output in outputs:
            assert emu.canary not in output
