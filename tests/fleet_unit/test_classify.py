"""A host that cannot be diagnosed is a named status with its reason: judged on the records the
real playbook produced (fixtures/records.json: real SSH to a real sshd, real Pythons missing,
old and masked - collected by the real shell collector instead -, a real probe and shell
collector failing and hanging, a probe printing garbage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imds_helpers.fleet import fleet_hosts as fh
from imds_helpers.fleet.sidecar import FLEET_STATUSES, RUN_STATUSES

CASES = [
    # case, status, fragments the reason must hold
    ("ssh-healthy", "collected", []),
    ("local-healthy", "collected", []),
    ("ssh-refused", "unreachable", ["connect to host 127.0.0.1 port 9", "Connection refused"]),
    ("ssh-timeout", "unreachable", ["127.0.0.2 port 2222", "timed out"]),
    ("ssh-auth-failed", "auth_failed", ["SSH authentication failed", "Permission denied (publickey)"]),
    ("ssh-host-key", "auth_failed", ["host key does not match known_hosts", "SHA256:"]),
    # no usable Python: the shell collector (imds-collect.sh) collects instead
    ("python-missing", "collected", []),
    ("python-old", "collected", []),
    ("python-masked", "collected", []),
    ("python-missing-no-shell", "no_python", ["no usable Python >= 3.10", "found: none", "/nonexistent/python3",
                                              "no shell collector was given"]),
    ("shell-bad-usage", "collect_failed", ["the shell collector exited with code 2", "--client-id: not a GUID"]),
    ("shell-timeout", "collect_timeout", ["longer than 2 s", "imds_collect_timeout"]),
    ("probe-timeout", "collect_timeout", ["longer than 2 s", "imds_collect_timeout"]),
    ("probe-bad-usage", "collect_failed", ["exited with code 2", "--client-id: not a GUID"]),
    ("probe-not-json", "collect_failed", ["not a JSON document", "16 bytes"]),
    ("bad-variables", "collect_failed", ["bad task arguments", "line break"]),
]


@pytest.mark.parametrize("case, status, fragments", CASES, ids=[c[0] for c in CASES])
def test_each_captured_case_gets_its_status_and_reason(any_records, case, status, fragments):
    got, reason = fh.classify(any_records[case])
    assert got == status, (case, reason)
    for fragment in fragments:
        assert fragment in reason, (case, reason)
    assert "\n" not in reason and len(reason) <= fh.MAX_REASON
    if status != fh.COLLECTED:
        assert status in FLEET_STATUSES and status in RUN_STATUSES


def test_records_read_the_same_whichever_ansible_core_wrote_them(records):
    oldest = json.loads((Path(__file__).parent / "fixtures" / "records-2.17.json").read_text())
    assert oldest["ansible_core"].startswith("2.17") and set(oldest["records"]) == set(records)
    for case, record in oldest["records"].items():     # the action builds the record: typed in both
        assert record["collect"]["rc"] == records[case]["collect"]["rc"], case
        assert fh.classify(record)[0] == fh.classify(records[case])[0], case
    # text where numbers and flags belong (what Jinja in set_fact gave on 2.17) reads the same
    assert fh.normalize_record({"collect": {"rc": "None", "bytes": "12", "ran": "True", "json": "False"}}) == {
        "collect": {"rc": None, "bytes": 12, "ran": True, "json": False}}
    assert fh.normalize_record(None) == {} and fh.normalize_record({"name_ok": "False"}) == {"name_ok": False}


def test_the_captured_cases_cover_every_fleet_status_but_identity(records):
    # identity_mismatch is decided from bundles (test_identity.py), not from a record
    seen = {fh.classify(record)[0] for record in records.values()}
    assert seen == {fh.COLLECTED} | (set(FLEET_STATUSES) - {"identity_mismatch"})


def test_a_masked_interpreter_is_not_mistaken_for_a_probe_failure(records):
    # the reference's trap: a masked Python exits non-zero like a probe that found findings would
    record = records["python-masked"]
    assert record["python"]["state"] == "found" and not record["python"]["usable"]
    assert record["collector"] == "shell"        # the probe never ran on it: the shell collector did
    assert fh.classify(record)[0] == "collected"
    assert fh.collector_notes(record) == (
        f"collected by the shell collector (imds-collect.sh): no usable Python >= 3.10 (found: "
        f"{record['python']['path']}, which does not run: python3: this interpreter has been masked)",)


@pytest.mark.parametrize("case", ["python-missing", "python-old", "python-masked"])
def test_a_host_without_python_is_collected_by_the_shell_collector(any_records, case):
    record = fh.normalize_record(any_records[case])
    assert not record["python"]["usable"] and record["collector"] == "shell"
    assert record["collect"]["rc"] == 0 and record["collect"]["json"] and record["written"]
    # the selectors the shell has not are dropped and said so, not silently ignored
    dropped = ["--proxy-comparison"] if case == "python-old" else []
    assert record["shell"]["dropped"] == dropped
    assert any("--proxy-comparison" in note for note in fh.collector_notes(record)) == bool(dropped)
    # a host with Python keeps the probe
    assert fh.normalize_record(any_records["local-healthy"])["collector"] == "python"


def test_no_python_names_why_the_shell_collector_did_not_run(records):
    record = json.loads(json.dumps(records["python-missing-no-shell"]))
    assert record["collect"]["ran"] is False and record["collector"] == ""
    # the host lacks a tool the shell collector needs (the check lists the missing ones)
    record["shell"] = {"offered": True, "missing": "curl", "dropped": []}
    status, reason = fh.classify(record)
    assert status == "no_python" and reason.endswith("; the shell collector needs curl, which the host lacks")
    # a record from before the shell collector: the reason it always had
    del record["shell"], record["collector"]
    assert fh.classify(record) == ("no_python", "no usable Python >= 3.10 (found: none; /nonexistent/python3 is not "
                                                "on the PATH)")


def test_the_probe_output_is_judged_on_the_controller_not_on_its_exit_code(records):
    record = records["probe-not-json"]
    assert record["collect"]["rc"] == 0 and record["collect"]["json"] is False and not record["written"]
    assert fh.classify(record)[0] == "collect_failed"


@pytest.mark.parametrize("msg, status, fragment", [
    # Ansible's own words (plugins/connection/ssh.py) for become failures
    ("Task failed: Missing sudo password", "auth_failed", "privilege escalation (become) failed: Missing sudo password"),
    ("Incorrect sudo password", "auth_failed", "privilege escalation"),
    ("Timeout (12s) waiting for privilege escalation prompt: ", "auth_failed", "privilege escalation"),
    ("non-zero return code sudo: a password is required", "auth_failed", "sudo: a password is required"),
    # seen here: su to an account whose shell is nologin
    ("Task failed: Premature end of stream waiting for become success.\n>>> Standard Output\nThis account is "
     "currently not available.", "auth_failed", "privilege escalation (become) failed: Premature end of stream"),
    # OpenSSH's
    ("Failed to connect to the host via ssh: Warning: Permanently added '10.0.0.4' (ED25519) to the list of known "
     "hosts.\r\nadmin@10.0.0.4: Permission denied (publickey,password).", "auth_failed",
     "admin@10.0.0.4: Permission denied (publickey,password)."),
    ("Failed to connect to the host via ssh: No ED25519 host key is known for 10.0.0.9 and you have requested strict "
     "checking.\r\nHost key verification failed.", "auth_failed", "host key verification failed"),
    ("Failed to connect to the host via ssh: ssh: Could not resolve hostname web-99: Name or service not known",
     "unreachable", "Could not resolve hostname web-99"),
    ("Failed to connect to the host via ssh: Connection timed out during banner exchange", "unreachable",
     "banner exchange"),
    ("", "unreachable", "no message"),
])
def test_connection_messages(msg, status, fragment):
    got, reason = fh.classify_connection(msg)
    assert (got, fragment in reason) == (status, True), reason


def test_a_failed_become_on_the_python_check_is_an_authentication_failure(records):
    record = json.loads(json.dumps(records["local-healthy"]))
    record["reach"] = {"unreachable": False, "failed": True, "msg": "non-zero return code sudo: a password is required"}
    record["python"] = {"state": "", "path": "", "version": "", "usable": False, "asked": "python3"}
    assert fh.classify(record) == ("auth_failed", "privilege escalation (become) failed: sudo: a password is required")


def test_no_record_is_still_a_result():
    assert fh.classify(None)[0] == "collect_failed"
    assert "without a result" in fh.classify({})[1]
    status, reason = fh.classify(None, "Task failed: Failed to connect to the host via ssh: u@h: Permission denied (publickey).")
    assert status == "auth_failed" and "Permission denied" in reason
    status, reason = fh.classify(None, "Task failed: Premature end of stream waiting for become success.")
    assert status == "auth_failed" and "become" in reason
    status, reason = fh.classify(None, "Task failed: module crashed")
    assert status == "collect_failed" and reason == "Ansible stopped on this host: module crashed"


def test_an_inventory_name_no_folder_can_carry(records):
    record = dict(records["local-healthy"], host="../etc", name_ok=False)
    status, reason = fh.classify(record)
    assert status == "collect_failed" and "'../etc' cannot name a folder" in reason and "ansible_host" in reason


def test_hostile_text_from_a_host_stays_one_bounded_line_without_secrets(records):
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQifQ.c2lnbmF0dXJl"
    record = json.loads(json.dumps(records["probe-bad-usage"]))
    record["collect"]["stderr"] = f"first\n\x1b[2J\x1b]0;owned\x07 Bearer {jwt} {'x' * 2000}\n"
    status, reason = fh.classify(record)
    assert status == "collect_failed"
    assert "\x1b" not in reason and "\x07" not in reason and "\n" not in reason
    assert jwt not in reason and "eyJ" not in reason and len(reason) <= fh.MAX_REASON


def test_the_reserved_names():
    assert {"evidence", "summary.csv", "summary.html", "summary.md", "summary.ipynb"} == set(fh.RESERVED_NAMES)
    assert not fh.folder_name_ok("Evidence") and not fh.folder_name_ok("SUMMARY.csv")
    assert fh.folder_name_ok("web-01.contoso.com") and not fh.folder_name_ok("2001:db8::5")


def test_ansible_giving_up_on_the_task_is_a_collection_timeout():
    status, reason = fh.classify(None, "Task failed: Timed out after 360 second(s).")
    assert status == "collect_timeout" and "Timed out after 360" in reason
