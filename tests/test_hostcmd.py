"""The host command runner: timeouts and errors as evidence, and commands started ahead."""

from __future__ import annotations

import os
import stat
import time

import pytest

from imds_helpers.collect.hostcmd import CommandPrefetch, evidence_commands, run_command


def test_run_command_output_and_exit_code():
    out = run_command(["sh", "-c", "echo hello; echo oops >&2; exit 3"])
    assert (out.returncode, out.stdout, out.stderr.strip(), out.error, out.ok) == (3, "hello\n", "oops", None, False)


def test_run_command_missing_binary():
    out = run_command(["imds-runbook-no-such-program"])
    assert (out.returncode, out.error) == (None, "not_found")


def test_run_command_not_executable(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(stat.S_IRUSR)
    if os.access(script, os.X_OK):
        pytest.skip("this user can execute any file")
    assert run_command([str(script)]).error == "permission_denied"


def test_run_command_timeout_is_bounded():
    start = time.monotonic()
    out = run_command(["sleep", "5"], timeout=0.3)
    assert out.error == "timeout" and out.returncode is None
    assert time.monotonic() - start < 2.0


# --- commands started ahead of the step that reads them ---------------------------------------

def test_prefetched_command_ran_while_the_caller_did_other_work():
    slow = ("sh", "-c", "sleep 0.4; echo ready")
    with CommandPrefetch([slow]) as prefetch:
        time.sleep(0.5)
        asked = time.monotonic()
        out = prefetch(slow, 2.0)
        waited = time.monotonic() - asked
    assert (out.stdout, out.returncode, out.error) == ("ready\n", 0, None)
    assert waited < 0.2                     # it had finished already
    assert out.elapsed_ms >= 400            # counted from its start, not from the call


def test_prefetched_output_is_handed_out_once_then_commands_run_anew(tmp_path):
    counter = tmp_path / "runs"
    command = ("sh", "-c", f"echo run >> {counter}; wc -l < {counter}")
    with CommandPrefetch([command]) as prefetch:
        assert prefetch(command, 2.0).stdout.strip() == "1"
        assert prefetch.pending == ()
        assert prefetch(command, 2.0).stdout.strip() == "2"
        assert prefetch(("sh", "-c", "echo other"), 2.0).stdout == "other\n"


def test_timeout_does_not_wait_for_a_grandchild_holding_the_pipe():
    # The shell is killed; the sleep it started keeps stdout open. Reading until EOF would
    # wait for the sleep - the deadline must hold anyway, and the output so far is kept.
    start = time.monotonic()
    out = run_command(["sh", "-c", "echo partial; sleep 5 & wait"], timeout=0.5)
    assert out.error == "timeout" and "partial" in out.stdout
    assert time.monotonic() - start < 2.0


def test_prefetched_wait_is_bounded_from_the_call():
    with CommandPrefetch([("sleep", "5")]) as prefetch:
        time.sleep(0.3)
        asked = time.monotonic()
        out = prefetch(("sleep", "5"), 0.4)
    assert out.error == "timeout" and out.returncode is None
    assert 0.35 < time.monotonic() - asked < 1.5


def test_prefetched_command_that_finished_long_ago_is_not_a_timeout():
    # A later step (after a 2 s TCP connect timeout, say) still gets the output.
    with CommandPrefetch([("echo", "done")]) as prefetch:
        time.sleep(0.5)
        out = prefetch(("echo", "done"), 0.2)
    assert (out.stdout, out.error) == ("done\n", None)


def test_prefetched_command_with_more_output_than_a_pipe_holds():
    # iptables-save on a busy host prints more than the 64 KiB pipe buffer: the command waits
    # for a reader and must not be reported as hung.
    big = ("sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x")
    with CommandPrefetch([big]) as prefetch:
        time.sleep(0.3)
        out = prefetch(big, 2.0)
    assert out.error is None and len(out.stdout) == 300000


def test_prefetch_errors_are_evidence_and_close_kills_leftovers():
    prefetch = CommandPrefetch([("imds-runbook-no-such-program",), ("sleep", "30")])
    assert prefetch(("imds-runbook-no-such-program",), 2.0).error == "not_found"
    started = time.monotonic()
    prefetch.close()
    assert prefetch.pending == () and time.monotonic() - started < 2.0


def test_a_check_run_reads_every_prefetched_command(make_emulator):
    # Anything prefetched but never read would be wasted work on every quick check.
    from imds_helpers.api import check_options, run_checks

    emu = make_emulator(mode="vm", rate_limits=False)
    with CommandPrefetch(evidence_commands()) as prefetch:
        assert len(prefetch.pending) == len(evidence_commands())
        report = run_checks(check_options(target="vm", endpoint=emu.base_url, runner=prefetch))
        assert prefetch.pending == ()
    assert report.verdict.value in ("ok", "warn")


def test_prefetched_output_older_than_max_age_is_read_again(tmp_path):
    # A notebook run cell by cell reaches the firewall step later; the rules may have changed.
    counter = tmp_path / "runs"
    command = ("sh", "-c", f"echo run >> {counter}; wc -l < {counter}")
    with CommandPrefetch([command], max_age=0.2) as prefetch:
        time.sleep(0.4)
        assert prefetch(command, 2.0).stdout.strip() == "2"        # the prefetched run was dropped
    with CommandPrefetch([("sleep", "30")], max_age=0.0) as prefetch:
        started = time.monotonic()
        assert prefetch(("sleep", "30"), 0.2).error == "timeout"   # a fresh run, its own timeout
        assert time.monotonic() - started < 2.0


def test_a_runbook_prefetches_host_commands_and_reads_them(make_emulator, tmp_path):
    from imds_helpers.runbooks import runbook

    emu = make_emulator(mode="vm", rate_limits=False)
    rb = runbook.start("vm", {"endpoint": emu.base_url, "sidecar_path": str(tmp_path / "s.json")})
    commands = rb._commands
    assert set(commands.pending) <= set(evidence_commands())        # the platform step read systemctl
    rb.proxy(), rb.network()
    assert commands.pending == ()                                   # the network step read the rest
    rb.save()


def test_a_runbook_that_cannot_start_kills_its_prefetched_commands(monkeypatch):
    from imds_helpers.collect import hostcmd
    from imds_helpers.runbooks import runbook
    from imds_helpers.model.errors import UsageError

    started: list[CommandPrefetch] = []
    real = hostcmd.CommandPrefetch

    def spy(commands, max_age=None):
        prefetch = real([("sleep", "30")], max_age=max_age)
        started.append(prefetch)
        return prefetch

    def no_emulator(kind, scenario):
        raise UsageError("cannot listen", argument="--port")

    monkeypatch.setattr(hostcmd, "CommandPrefetch", spy)   # the runbook imports it for live runs only
    monkeypatch.setattr(runbook, "_start_emulator", no_emulator)
    with pytest.raises(UsageError):
        runbook.start("vm", {"emulator_scenario": "vm-healthy"})
    assert started and started[0].pending == ()


def test_more_commands_can_be_started_later_and_none_twice(tmp_path):
    counter = tmp_path / "runs"
    command = ("sh", "-c", f"echo run >> {counter}; wc -l < {counter}")
    with CommandPrefetch([command]) as prefetch:
        prefetch.start([command, ("sh", "-c", "echo later")])
        assert prefetch.pending == (command, ("sh", "-c", "echo later"))
        assert prefetch(command, 2.0).stdout.strip() == "1"             # started once, not twice
        assert prefetch(("sh", "-c", "echo later"), 2.0).stdout == "later\n"


def test_a_session_starts_the_route_lookups_once_the_endpoint_is_known():
    # The platform step chooses the endpoint; the network step's route commands for it then
    # run while the proxy step does. Only route commands here: nothing is sent anywhere.
    from imds_helpers.api import Session, check_options
    from imds_helpers.collect import LiveHost
    from imds_helpers.analyze.network import check_route, ip_route_get, route_commands

    with CommandPrefetch(()) as prefetch:
        session = Session(check_options(target="vm", endpoint="http://169.254.169.254", runner=prefetch))
        assert set(route_commands("http://169.254.169.254", session.host.os_name)) <= set(prefetch.pending)
        check_route("169.254.169.254", machine=LiveHost(run=prefetch, os_name="linux"))
        assert ip_route_get("169.254.169.254") not in prefetch.pending
    with CommandPrefetch(()) as prefetch:
        Session(check_options(target="vm", endpoint="http://127.0.0.1:9", runner=prefetch))
        assert prefetch.pending == ()                                   # loopback: no route to look up
