"""The Python API of ``Emulator``: attributes, scenario switching, shutdown, logging, binding."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from emu_client import ARM, Client
from imds_helpers.emulator import SCENARIOS, Emulator, server
from imds_helpers.model.errors import UsageError


def test_public_attributes(vm):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", vm.base_url)
    assert vm.host == "127.0.0.1" and vm.base_url.endswith(f":{vm.port}") and vm.port > 0
    assert vm.mode == "vm" and vm.scenario == "vm-healthy" and vm.key_dir is None
    assert re.fullmatch(r"imdsrbcanary[0-9a-f]{16}", vm.canary)
    ids = vm.identities
    assert set(ids["system_assigned"]) >= {"client_id", "object_id", "msi_res_id"}
    assert [set(u) >= {"client_id", "object_id", "msi_res_id"} for u in ids["user_assigned"]] == [True]
    assert "/Microsoft.ManagedIdentity/userAssignedIdentities/" in ids["user_assigned"][0]["msi_res_id"]
    assert vm.canary not in repr(vm) and "vm-healthy" in repr(vm)
    assert vm._thread.daemon


def test_canaries_differ_per_emulator(make_emulator):
    assert make_emulator().canary != make_emulator().canary


def test_context_manager_closes():
    with Emulator() as emu:
        port = emu.port
        assert Client(emu.base_url).get("/metadata/versions").status == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    emu.close()     # idempotent


def test_set_scenario_switches_while_running(vm, vmc):
    assert vmc.token().status == 200
    vm.set_scenario("vm-throttled")
    assert vm.scenario == "vm-throttled" and vmc.token().status == 429
    vm.set_scenario("vm-updating", for_seconds=0.2)
    assert vmc.instance().status == 410
    time.sleep(0.25)
    assert vmc.instance().status == 200
    vm.set_scenario("vm-healthy")
    assert vmc.token().status == 200
    assert [e["scenario"] for e in vm.request_log][:2] == ["vm-healthy", "vm-throttled"]


def test_set_scenario_rejects_other_mode_and_unknown(vm):
    with pytest.raises(UsageError, match="arc mode"):
        vm.set_scenario("arc-healthy")
    with pytest.raises(UsageError, match="did you mean"):
        vm.set_scenario("vm-heathy")
    assert vm.scenario == "vm-healthy"


def test_scenario_params_override(make_emulator, client):
    emu = make_emulator(scenario="vm-healthy", scenario_params={"user_assigned": 3, "system_assigned": False})
    assert len(emu.identities["user_assigned"]) == 3
    assert client(emu).token().status == 400
    assert emu.scenario_settings["user_assigned"] == 3


@pytest.mark.parametrize("scenario", ["vm-accept-then-hang", "vm-slow-drip", "vm-slow-headers"])
def test_close_is_prompt_with_hung_connections(scenario):
    emu = Emulator(scenario=scenario)
    socks = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", emu.port), timeout=2)
        s.sendall(b"GET /metadata/versions HTTP/1.1\r\nHost: x\r\nMetadata: true\r\n\r\n")
        socks.append(s)
    time.sleep(0.2)
    start = time.monotonic()
    emu.close()
    assert time.monotonic() - start < 1.5
    for s in socks:
        s.close()


def test_close_is_prompt_with_idle_keepalive_connection(vm):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", vm.port, timeout=3)
    conn.request("GET", "/metadata/versions", headers={"Metadata": "true"})
    conn.getresponse().read()
    start = time.monotonic()
    vm.close()
    assert time.monotonic() - start < 1.5
    conn.close()


def test_request_log_fields_and_redaction(vm, vmc):
    vmc.token(headers={"Authorization": "Bearer eyJhbGciOi.secret.part", "X-Forwarded-For": "1.2.3.4"})
    entry = vm.request_log[-1]
    assert entry["method"] == "GET" and entry["path"] == "/metadata/identity/oauth2/token"
    assert entry["query"] == {"api-version": "2018-02-01", "resource": ARM}
    assert entry["headers"]["Authorization"] == "<redacted>" and entry["headers"]["X-Forwarded-For"] == "1.2.3.4"
    assert entry["status"] == 400 and "secret.part" not in repr(vm.request_log)


def test_request_log_is_thread_safe(vm):
    c = Client(vm.base_url)
    threads = [threading.Thread(target=lambda: c.get("/metadata/versions")) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(vm.request_log) == 10


# --- constructor validation ---------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "aws"}, "mode"),
    ({"canary": "has space"}, "canary"),
    ({"canary": "short"}, "canary"),
    ({"port": 70000}, "port"),
    ({"os_type": "macOS"}, "os type"),
    ({"scenario": "arc-healthy"}, "arc mode"),
    ({"scenario": "nope"}, "unknown scenario"),
    ({"mode": "arc", "key_dir": "/nonexistent/imds-emulator"}, "does not exist"),
    ({"mode": "arc", "key_dir": "/etc/hostname"}, "not a directory"),
    ({"scenario_params": {"bogus": 1}}, "unknown scenario parameter"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(UsageError, match=match):
        Emulator(**kwargs)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_key_dir(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(UsageError, match="not writable"):
            Emulator(mode="arc", key_dir=str(tmp_path))
    finally:
        tmp_path.chmod(0o700)


def test_port_in_use_is_usage_error(vm):
    with pytest.raises(UsageError, match="cannot listen"):
        Emulator(port=vm.port)


# --- binding rule ------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_always_allowed(host, monkeypatch):
    monkeypatch.setattr(server, "only_loopback_interface", lambda: False)
    server.check_bind_allowed(host, allow_remote=False)


@pytest.mark.parametrize("host", ["169.254.169.254", "0.0.0.0", "10.0.0.4", "::"])
def test_non_loopback_needs_allow_remote_or_lo_only_namespace(host, monkeypatch):
    monkeypatch.setattr(server, "only_loopback_interface", lambda: False)
    with pytest.raises(UsageError, match="allow-remote"):
        server.check_bind_allowed(host, allow_remote=False)
    server.check_bind_allowed(host, allow_remote=True)
    monkeypatch.setattr(server, "only_loopback_interface", lambda: True)
    server.check_bind_allowed(host, allow_remote=False)


@pytest.mark.parametrize("allow_remote", [False, True])
def test_host_names_are_refused_without_resolving(allow_remote):
    with pytest.raises(UsageError, match="not an IP address"):
        server.check_bind_allowed("imds.example.invalid", allow_remote=allow_remote)


def test_only_loopback_interface_matches_this_machine():
    names = [n for _, n in socket.if_nameindex()]
    assert server.only_loopback_interface() == (names == ["lo"])


def test_ipv6_loopback(make_emulator):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        emu = make_emulator(host="::1")
    except UsageError as err:
        pytest.skip(f"::1 not bindable here: {err}")
    assert emu.base_url == f"http://[::1]:{emu.port}"
    assert Client(emu.base_url).get("/metadata/versions").status == 200


def test_arc_mode_attributes(arc):
    assert arc.mode == "arc" and arc.scenario == "arc-healthy" and os.path.isdir(arc.key_dir)
    assert arc.identities["user_assigned"] == [] and arc.identities["system_assigned"]


def test_import_is_light():
    code = ("import sys, imds_helpers.emulator, imds_helpers.emulator.cli; "
            "from imds_helpers.emulator import Emulator, SCENARIOS; "
            "bad = [m for m in ('pandas', 'papermill', 'jupyter_client', 'nbformat', 'IPython', 'requests', 'yaml') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_scenarios_mapping_is_read_only():
    with pytest.raises(TypeError):
        SCENARIOS["x"] = None  # type: ignore[index]


def test_request_log_is_bounded(monkeypatch):
    import requests

    import imds_helpers.emulator.server as server

    monkeypatch.setattr(server, "REQUEST_LOG_LIMIT", 5)
    with server.Emulator(mode="vm", rate_limits=False) as emu:
        session = requests.Session()
        session.trust_env = False
        for _ in range(12):
            session.get(emu.base_url + "/metadata/versions", headers={"Metadata": "true"}, timeout=5)
        assert len(emu.request_log) == 5 and emu.request_log_dropped == 7
        assert all(entry["path"] == "/metadata/versions" for entry in emu.request_log)


def test_canary_from_the_environment_applies_to_in_process_emulators(monkeypatch):
    # A trainer sets one canary and greps for it; emulators a runbook starts in its kernel
    # (emulator_scenario) are in-process ones.
    monkeypatch.setenv("IMDS_EMULATOR_CANARY", "imdsrbcanarytrainer0001")
    with Emulator(mode="vm") as emu:
        assert emu.canary == "imdsrbcanarytrainer0001"
    with Emulator(mode="vm", canary="imdsrbcanaryexplicit01") as emu:
        assert emu.canary == "imdsrbcanaryexplicit01"       # an explicit one wins
    monkeypatch.setenv("IMDS_EMULATOR_CANARY", "bad canary!")
    with pytest.raises(UsageError) as err:
        Emulator(mode="vm")
    assert err.value.argument == "IMDS_EMULATOR_CANARY"
