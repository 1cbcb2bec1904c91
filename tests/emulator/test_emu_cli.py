"""``imds-runbook emulator`` as a real subprocess: first stdout line is the URL, --list, signals,
and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import pytest

from emu_client import Client
from imds_helpers.emulator import SCENARIOS

CMD = [sys.executable, "-m", "imds_helpers", "emulator"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "IMDS_EMULATOR_CANARY"}
    env.update(extra)
    return env


@contextmanager
def running(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    proc = subprocess.Popen(CMD + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env or _env(), text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "emulator printed nothing within 15 s"
        url = proc.stdout.readline().strip()
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()


def _stop(proc: subprocess.Popen, sig: int) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=5)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_first_line_is_url_and_signals_exit_zero(sig):
    with running("--scenario", "vm-healthy") as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        assert Client(url).get("/metadata/versions").status == 200
        start = time.monotonic()
        assert _stop(proc, sig) == 0
        assert time.monotonic() - start < 3
        assert "Traceback" not in proc.stderr.read()


def test_mode_inferred_from_scenario_and_key_dir(tmp_path):
    with running("--scenario", "arc-healthy", "--key-dir", str(tmp_path)) as (proc, url):
        r = Client(url).token(api_version="2020-06-01")
        assert r.status == 401
        realm = r.headers["WWW-Authenticate"].split("=", 1)[1]
        assert os.path.dirname(realm) == str(tmp_path) and os.path.isfile(realm)
        assert _stop(proc, signal.SIGTERM) == 0
    assert list(tmp_path.iterdir()) == []           # pending key files removed at exit


def test_canary_from_flag_and_env():
    with running("--canary", "imdsrbcanaryfeedfacefeedface") as (proc, url):
        assert "imdsrbcanaryfeedfacefeedface" in Client(url).token().json()["access_token"]
    with running(env=_env(IMDS_EMULATOR_CANARY="imdsrbcanary0000111122223333")) as (proc, url):
        assert "imdsrbcanary0000111122223333" in Client(url).token().json()["access_token"]


def test_param_override():
    with running("--scenario", "vm-updating", "--param", "for_seconds=0.3") as (proc, url):
        c = Client(url)
        assert c.instance().status == 410
        time.sleep(0.35)
        assert c.instance().status == 200


def test_scenario_file_is_reread(tmp_path):
    path = tmp_path / "scenario"
    path.write_text("vm-healthy\n")
    with running("--scenario-file", str(path)) as (proc, url):
        c = Client(url)
        assert c.token().status == 200
        path.write_text("vm-throttled\n")
        deadline = time.monotonic() + 5
        while c.token().status != 429:
            assert time.monotonic() < deadline, "scenario file change not picked up"
            time.sleep(0.1)


def test_list_prints_every_scenario():
    out = subprocess.run(CMD + ["--list"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stderr == ""
    lines = out.stdout.splitlines()
    assert len(lines) == len(SCENARIOS)
    for line, row in zip(lines, SCENARIOS.values()):
        name, mode, description = line.split(None, 2)
        assert (name, mode, description) == (row.name, row.mode, row.description)


@pytest.mark.parametrize("args,needle", [
    (["--scenario", "vm-healty"], "vm-healthy"),
    (["--scenario", "arc-healthy", "--mode", "vm"], "arc mode"),
    (["--port", "abc"], "--port"),
    (["--port", "70000"], "--port"),
    (["--host", "10.255.255.1"], "--host"),
    (["--mode", "arc", "--key-dir", "/nonexistent/imds-emulator-keys"], "--key-dir"),
    (["--param", "bogus=1"], "--param"),
    (["--canary", "no spaces allowed"], "--canary"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    out = subprocess.run(CMD + args, capture_output=True, text=True, timeout=30, env=_env())
    assert out.returncode == 2, out
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith("imds-runbook emulator: error:") and needle in lines[0]
