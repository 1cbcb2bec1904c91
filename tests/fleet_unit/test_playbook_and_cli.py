"""The playbook that ships with the package, its callback, the event reader and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imds_helpers.fleet.ansible_run import (
    PLAYBOOK,
    PLAYBOOK_DIR,
    EventReader,
    log_problem,
    playbook_command,
)

from .conftest import ANSIBLE_PLAYBOOK, NO_ANSIBLE

needs_ansible = pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason=NO_ANSIBLE)
DEFAULTS = PLAYBOOK_DIR / "roles" / "imds_collect" / "defaults" / "main.yml"
TASKS = PLAYBOOK_DIR / "roles" / "imds_collect" / "tasks" / "main.yml"
# the interface with the fleet rig and the README: these variable names, no others
INVENTORY_VARS = {"imds_target", "imds_client_ids", "imds_object_ids", "imds_msi_res_ids", "imds_resources",
                  "imds_timeout", "imds_tokens_dir", "imds_expect_hostname", "imds_expect_smbios_uuid",
                  "imds_expect_vm_id"}


def test_the_role_defaults_name_the_inventory_interface():
    defaults = yaml.safe_load(DEFAULTS.read_text())
    assert INVENTORY_VARS <= set(defaults)
    assert set(defaults) - INVENTORY_VARS == {"imds_proxy_comparison", "imds_endpoint", "imds_become", "imds_python",
                                               "imds_shell_collector", "imds_collect_timeout", "imds_max_bundle_bytes"}
    assert defaults["imds_become"] is False and defaults["imds_collect_timeout"] == 300


def _action():
    import importlib.util

    spec = importlib.util.spec_from_file_location("imds_collect_action",
                                                  PLAYBOOK_DIR / "action_plugins" / "imds_collect.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_role_passes_every_variable_to_the_one_collection_task():
    (task,) = yaml.safe_load(TASKS.read_text())
    args = task["imds_collect"]
    defaults = set(yaml.safe_load(DEFAULTS.read_text()))
    passed = {value.strip("{} ").split()[0] for value in args.values()}
    assert passed == defaults - {"imds_become"} | {"imds_probe", "imds_out_dir"}
    assert task["become"] == "{{ imds_become | bool }}" and "imds_collect_timeout" in task["timeout"]
    # the bundle is never an argument: nothing to hide with no_log, and the record reaches the callback
    assert "no_log" not in task


@needs_ansible
def test_the_action_asks_only_for_the_selectors_that_are_set():
    action = _action()
    assert action.collect_argv({}) == []
    assert action.collect_argv({"target": "vm", "timeout": 10, "resources": [], "client_ids": "",
                                "tokens_dir": "", "proxy_comparison": "False"}) == ["--target=vm", "--timeout=10"]
    # a list, one string (an inventory that forgot the brackets), and ansible-core 2.17's text forms
    assert action.collect_argv({"client_ids": ["a", "b"], "object_ids": "c", "msi_res_ids": None,
                                "proxy_comparison": "True", "endpoint": "http://127.0.0.1:8080"}) == [
        "--endpoint=http://127.0.0.1:8080", "--client-id=a", "--client-id=b", "--object-id=c", "--proxy-comparison"]
    with pytest.raises(ValueError):
        action.collect_argv({"resources": {"a": 1}})
    with pytest.raises(ValueError):
        action.collect_argv({"tokens_dir": "/x\n--endpoint=http://evil"})
    with pytest.raises(ValueError):
        action.collect_argv({"client_ids": ["x"] * 101})
    # the shell collector takes the same selectors as separate words, and has no --proxy-comparison
    pairs = action.selectors({"target": "arc", "client_ids": ["-a"], "tokens_dir": "/t d", "proxy_comparison": True})
    assert action.collector_argv(pairs, joined=False) == [
        "--target", "arc", "--tokens-dir", "/t d", "--client-id", "-a", "--proxy-comparison"]
    # ... as its own usage says (the script is S1's: this follows it)
    script = PLAYBOOK_DIR.parents[1] / "collect" / "imds-collect.sh"
    usage = subprocess.run(["sh", str(script), "--help"], capture_output=True, text=True, timeout=10).stdout
    for option in [o for _, o in action.TEXTS + action.LISTS] + ["--proxy-comparison"]:
        assert (option in usage) == (option not in action.SHELL_LACKS), option
    assert [action._usable(v) for v in ("3.10.0", "3.9.18", "3.13.1", "4.0.0", "3.1.0", "", "masked")] == [
        True, False, True, True, False, False, False]


@needs_ansible
def test_the_action_knows_the_fleets_folder_rules():
    from imds_helpers.fleet import fleet_hosts as fh
    from imds_helpers.fleet.sidecar import _HOST_NAME

    action = _action()
    assert action.RESERVED_NAMES == fh.RESERVED_NAMES and action.HOST_NAME.pattern == _HOST_NAME.pattern
    assert action.RECORD_SCHEMA == fh.RECORD_SCHEMA and action.KIND == "imds-runbook/evidence"
    from imds_helpers.model.evidence import KIND

    assert action.KIND == KIND


def test_the_example_inventory_uses_the_interface():
    inventory = yaml.safe_load((PLAYBOOK_DIR / "inventory.example.yml").read_text())
    names: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.startswith("imds_"):
                    names.add(key)
                walk(value)

    walk(inventory)
    assert names <= set(yaml.safe_load(DEFAULTS.read_text())) and {"imds_target", "imds_expect_vm_id"} <= names


@needs_ansible
def test_ansible_accepts_the_playbook_and_the_example_inventory(tmp_path):
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "--syntax-check", "-i", str(PLAYBOOK_DIR / "inventory.example.yml"),
                           str(PLAYBOOK)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = subprocess.run([ANSIBLE_PLAYBOOK, "--list-hosts", "-i", str(PLAYBOOK_DIR / "inventory.example.yml"),
                             str(PLAYBOOK)], capture_output=True, text=True, timeout=120)
    assert {"web-01", "web-02", "onprem-db-01"} <= set(listed.stdout.split())


@needs_ansible
def test_the_callback_writes_only_records_and_failures_bounded_and_redacted(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("imds_fleet_events",
                                                  PLAYBOOK_DIR / "callback_plugins" / "imds_fleet_events.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(module.ENV, str(events))
    callback = module.CallbackModule()

    class Host:
        def get_name(self):
            return "web-01"

    class Task:
        ignore_unreachable = False

        def get_name(self):
            return "Collect"

    class Result:
        def __init__(self, data):
            self.result, self.host, self.task = data, Host(), Task()

    jwt = "eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.c2ln"
    record = {"ansible_facts": {"imds_fleet": {"host": "web-01", "collect": {"stderr": jwt}}}}
    callback.v2_runner_on_ok(Result({"stdout": "a whole bundle", "changed": True}))       # not a record: nothing
    callback.v2_runner_on_ok(Result(record))
    callback.v2_runner_on_failed(Result(dict(record, msg="the probe exited with code 2")))  # a record all the same
    callback.v2_runner_on_unreachable(Result(dict(record, msg="ssh: connect ... refused")))
    callback.v2_runner_on_failed(Result({"msg": "boom " + "x" * 5000}))
    callback.v2_runner_on_failed(Result({"msg": "ignored"}), ignore_errors=True)
    callback.v2_runner_on_unreachable(Result({"msg": f"Bearer {jwt}"}))
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["record", "record", "record", "failed", "unreachable"]
    assert lines[0]["record"]["collect"]["stderr"] == "<redacted>"
    assert len(lines[3]["msg"]) == module.MAX_MSG and "a whole bundle" not in events.read_text()
    assert jwt not in events.read_text()
    monkeypatch.delenv(module.ENV)
    module.CallbackModule().v2_runner_on_failed(Result({"msg": "x"}))      # without the variable: silent
    assert len(events.read_text().splitlines()) == 5


def test_the_event_reader_takes_whole_lines_only(tmp_path):
    path = tmp_path / "events.jsonl"
    reader = EventReader(path)
    assert reader.read() == []                     # not there yet
    path.write_bytes(b'{"event": "start", "hosts": ["a"]}\n{"event": "rec')
    assert [e["event"] for e in reader.read()] == ["start"]
    with open(path, "ab") as handle:
        handle.write(b'ord", "host": "a", "record": {}}\nnot json\n[1]\n\n')
    assert [e["event"] for e in reader.read()] == ["record"]
    assert reader.problems == ["an event line that is not a JSON object was dropped"] * 2   # "not json", [1]
    with open(path, "ab") as handle:
        handle.write(b"x" * (300 * 1024))                # no newline, and longer than any record
    assert reader.read() == [] and "longer than" in reader.problems[-1]


def test_log_problem_names_the_telling_line(tmp_path):
    log = tmp_path / "ansible.log"
    log.write_text("PLAY [x]\n[WARNING]: one\n[ERROR]: the inventory is broken\nmore\n")
    assert log_problem(log) == "[ERROR]: the inventory is broken"
    log.write_text("[WARNING]: first\n[WARNING]: Unable to parse /x as an inventory source\nskipping: no hosts matched\n")
    assert log_problem(log) == "[WARNING]: Unable to parse /x as an inventory source"
    assert log_problem(tmp_path / "missing.log") == ""


def test_the_operators_options_come_last(tmp_path):
    command = playbook_command("inv.yml", extra_vars_file=tmp_path / "v.json", limit="web*", forks=10,
                               extra_args=["-u", "admin", "-e", "imds_become=true"], executable="/x/ansible-playbook")
    assert command == ["/x/ansible-playbook", "-i", "inv.yml", str(PLAYBOOK), "-e", f"@{tmp_path / 'v.json'}",
                       "--limit", "web*", "--forks", "10", "-u", "admin", "-e", "imds_become=true"]


def _cli(*args: str, prelude: str = "pass") -> subprocess.CompletedProcess:
    code = f"{prelude}; from imds_helpers.cli import main; raise SystemExit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_without_ansible_core_one_line_says_what_to_install(tmp_path):
    proc = _cli("fleet", "-i", str(tmp_path / "inv"), prelude="import sys; sys.modules['ansible'] = None")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("imds-runbook fleet: needs the 'fleet' extra: pip install 'imds-runbook[fleet]' "
                           "(missing: ansible-core)\n")


@pytest.mark.parametrize("args, needle", [
    (["--forks", "0"], "--forks"),
    (["--forks", "many"], "invalid int value"),
    (["--workers", "99"], "--workers"),
    (["--collect-timeout", "0"], "--collect-timeout"),
])
def test_bad_usage_is_one_line_exit_2_nothing_written(tmp_path, args, needle):
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all: {}\n")
    proc = _cli("fleet", "-i", str(inventory), "--out", str(tmp_path / "out"), *args)
    assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_the_inventory_is_required():
    proc = _cli("fleet")
    assert proc.returncode == 2 and "-i/--inventory" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_help_names_the_interface():
    proc = _cli("fleet", "--help")
    assert proc.returncode == 0
    for option in ("-i INVENTORY", "--limit PATTERN", "--forks N", "--out DIR", "--probe PYZ"):
        assert option in proc.stdout


def test_extra_ansible_options_after_the_double_dash_are_kept():
    from imds_helpers.cli import build_parser

    args = build_parser("fleet").parse_args(["fleet", "-i", "inv", "--forks", "3", "--", "-u", "admin", "-vv"])
    assert (args.inventory, args.forks, args.ansible_args) == ("inv", 3, ["-u", "admin", "-vv"])
    assert os.path.basename(str(Path(PLAYBOOK))) == "collect.yml"
