"""Platform detection on fake file trees and fake command runners, and the command runner."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import pytest

from imds_helpers.api import check_options, run_checks
from imds_helpers.collect import LiveHost
from imds_helpers.model.errors import UsageError
from imds_helpers.collect.hostcmd import CommandOutput
from imds_helpers.analyze.platform import HIMDS_ENDPOINT, IMDS_ENDPOINT, detect_platform, normalise_endpoint

REPO = Path(__file__).resolve().parents[1]
AZURE_TAG = "7783-7084-3265-9085-8269-3286-77"
UUID = "527c2691-029f-fe4c-b1f4-a4da7ebac2cf"
RUNNING = "LoadState=loaded\nActiveState=active\nSubState=running\n"
STOPPED = "LoadState=loaded\nActiveState=inactive\nSubState=dead\n"
NOT_FOUND = "LoadState=not-found\nActiveState=inactive\nSubState=dead\n"
ARC_ENV = {"IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token",
           "IMDS_ENDPOINT": "http://localhost:40342"}


class FakeRun:
    """Answers by program name; anything else is 'not installed'. Records every call."""

    def __init__(self, **outputs: str | CommandOutput) -> None:
        self.outputs = outputs
        self.calls: list[tuple[tuple[str, ...], float]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandOutput:
        self.calls.append((tuple(argv), timeout))
        out = self.outputs.get(argv[0])
        if out is None:
            return CommandOutput(tuple(argv), None, error="not_found")
        if isinstance(out, CommandOutput):
            return out
        return CommandOutput(tuple(argv), 0, out)


def tree(tmp_path: Path, *, tag: str | None = None, vendor: str = "", product: str = "", uuid: str | None = None,
         himds: bool = False, efi: bool = False, dockerenv: bool = False, cgroup: str | None = None) -> str:
    dmi = tmp_path / "sys/class/dmi/id"
    dmi.mkdir(parents=True)
    for name, value in (("chassis_asset_tag", tag), ("sys_vendor", vendor or None), ("product_name", product or None),
                        ("product_uuid", uuid)):
        if value is not None:
            (dmi / name).write_text(value + "\n")
    if himds:
        binary = tmp_path / "opt/azcmagent/bin/himds"
        binary.parent.mkdir(parents=True)
        binary.write_text("")
    if efi:
        (tmp_path / "sys/firmware/efi").mkdir(parents=True)
    if dockerenv:
        (tmp_path / ".dockerenv").write_text("")
    if cgroup is not None:
        (tmp_path / "proc/1").mkdir(parents=True)
        (tmp_path / "proc/1/cgroup").write_text(cgroup)
    return str(tmp_path)


def host(**kw) -> LiveHost:
    """The live machine detect_platform now takes: the old env/root/run/os_name keywords, recorded."""
    return LiveHost(**kw)


def codes(result) -> list[str]:
    return [c.code for c in result.checks]


def test_azure_vm_by_asset_tag(tmp_path):
    root = tree(tmp_path, tag=AZURE_TAG, vendor="Microsoft Corporation", product="Virtual Machine", uuid=UUID)
    run = FakeRun(systemctl=NOT_FOUND)
    result = detect_platform(host=host(env={}, root=root, run=run, os_name="linux"))
    assert (result.kind, result.target, result.endpoint) == ("vm", "vm", IMDS_ENDPOINT)
    assert codes(result) == ["IMDS-PLAT-000"]
    azure = result.evidence["azure_vm"]
    assert azure["azure_asset_tag"] and azure["hyperv_guest"]
    # Generation unknown (/sys/firmware not visible): both vmId forms for the later cross-check.
    assert azure["vmid_candidates"] == [UUID, "91267c52-9f02-4cfe-b1f4-a4da7ebac2cf"]
    assert all(timeout <= 2.0 for _, timeout in run.calls)
    json.dumps(result.to_dict())


def test_vm_generation_decides_the_vmid_form(tmp_path):
    gen2 = detect_platform(host=host(env={}, root=tree(tmp_path / "a", tag=AZURE_TAG, uuid=UUID, efi=True),
                                     run=FakeRun(), os_name="linux"))
    assert gen2.evidence["azure_vm"]["vmid_candidates"] == [UUID]
    root = tree(tmp_path / "b", tag=AZURE_TAG, uuid=UUID)
    (Path(root) / "sys/firmware").mkdir()   # BIOS boot: generation 1, byte-swapped
    gen1 = detect_platform(host=host(env={}, root=root, run=FakeRun(), os_name="linux"))
    assert gen1.evidence["azure_vm"]["vmid_candidates"] == ["91267c52-9f02-4cfe-b1f4-a4da7ebac2cf"]


def test_hyperv_without_tag_is_not_azure(tmp_path):
    root = tree(tmp_path, tag="None", vendor="Microsoft Corporation", product="Virtual Machine")
    result = detect_platform(host=host(env={}, root=root, run=FakeRun(), os_name="linux"))
    assert result.kind == "none" and result.check.code == "IMDS-PLAT-003"
    assert "Hyper-V guest" in result.check.detail and result.endpoint == IMDS_ENDPOINT


def test_arc_by_installed_binary_even_when_env_is_missing(tmp_path):
    result = detect_platform(host=host(env={}, root=tree(tmp_path, himds=True), run=FakeRun(systemctl=RUNNING),
                                       os_name="linux"))
    assert (result.kind, result.target, result.endpoint) == ("arc", "arc", HIMDS_ENDPOINT)
    assert codes(result) == ["IMDS-PLAT-001", "IMDS-PLAT-008"]
    assert result.notes[0].evidence["missing"] == ["IDENTITY_ENDPOINT", "IMDS_ENDPOINT"]


def test_arc_with_env_uses_imds_endpoint(tmp_path):
    env = {**ARC_ENV, "IMDS_ENDPOINT": "http://127.0.0.1:40342/"}
    result = detect_platform(host=host(env=env, root=tree(tmp_path, himds=True), run=FakeRun(systemctl=RUNNING),
                                       os_name="linux"))
    assert result.endpoint == "http://127.0.0.1:40342" and codes(result) == ["IMDS-PLAT-001"]
    assert "IMDS_ENDPOINT=" in result.reason


def test_arc_by_env_only(tmp_path):
    result = detect_platform(host=host(env=ARC_ENV, root=tree(tmp_path), run=FakeRun(), os_name="linux"))
    assert (result.kind, result.target) == ("arc", "arc")
    assert result.evidence["arc"]["installed"] is False and result.evidence["arc"]["env_points_to_himds"]


def test_arc_installed_but_service_stopped(tmp_path):
    result = detect_platform(host=host(env=ARC_ENV, root=tree(tmp_path, himds=True), run=FakeRun(systemctl=STOPPED),
                                       os_name="linux"))
    assert codes(result) == ["IMDS-PLAT-001", "IMDS-PLAT-007"]
    assert "himdsd" in result.notes[0].detail and "inactive" in result.notes[0].detail


@pytest.mark.parametrize("service,target,endpoint", [(RUNNING, "arc", HIMDS_ENDPOINT), (STOPPED, "vm", IMDS_ENDPOINT)])
def test_both_follows_the_arc_service_like_ama(tmp_path, service, target, endpoint):
    root = tree(tmp_path, tag=AZURE_TAG, himds=True)
    result = detect_platform(host=host(env=ARC_ENV, root=root, run=FakeRun(systemctl=service), os_name="linux"))
    assert (result.kind, result.target, result.endpoint) == ("both", target, endpoint)
    assert result.check.code == "IMDS-PLAT-002" and result.check.status.value == "warn"
    assert "Azure Monitor Agent" in result.reason


def test_explicit_endpoint_wins_and_is_normalised(tmp_path):
    root = tree(tmp_path, tag=AZURE_TAG, himds=True)
    result = detect_platform(endpoint="http://127.0.0.1:8080/",
                             host=host(env=ARC_ENV, root=root, run=FakeRun(systemctl=RUNNING), os_name="linux"))
    assert (result.kind, result.target, result.endpoint) == ("both", "vm", "http://127.0.0.1:8080")
    assert result.check.code == "IMDS-PLAT-004" and "endpoint argument" in result.reason
    assert detect_platform(endpoint="http://127.0.0.1:40342",
                           host=host(env={}, root=root, run=FakeRun(), os_name="linux")).target == "arc"
    assert detect_platform("arc", "http://127.0.0.1:9",
                           host=host(env={}, root=root, run=FakeRun(), os_name="linux")).target == "arc"


def test_override_env_counts_as_explicit_but_the_argument_wins(tmp_path):
    root = tree(tmp_path)
    env = {"IMDS_RUNBOOK_ENDPOINT": "http://127.0.0.1:5555"}
    result = detect_platform(host=host(env=env, root=root, run=FakeRun(), os_name="linux"))
    assert result.endpoint == "http://127.0.0.1:5555" and result.check.code == "IMDS-PLAT-004"
    assert "IMDS_RUNBOOK_ENDPOINT" in result.reason
    assert detect_platform(endpoint="http://[::1]:7",
                           host=host(env=env, root=root, run=FakeRun(), os_name="linux")).endpoint == "http://[::1]:7"


def _steering_free_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not re.match(r"(?i)^(.*_proxy|IMDS_.*|IDENTITY_.*|MSI_.*)$", k)}
    return {**keep, **extra}


def _check_json_with_override(base_url: str, target: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "imds_helpers", "check", "--json", "--timeout", "5", "--target", target],
                         capture_output=True, text=True, timeout=120, cwd=REPO,
                         env=_steering_free_env(IMDS_RUNBOOK_ENDPOINT=base_url, PYTHONPATH=str(REPO)))
    assert run.stderr == "" and run.returncode == 0, run.stdout[-3000:]
    return json.loads(run.stdout)


@pytest.mark.parametrize("target", ["auto", "vm"])
def test_override_env_is_named_in_the_reason_through_the_api_and_the_cli(make_emulator, target):
    """The variable is read in one place (detect_platform): a report never says an endpoint taken
    from IMDS_RUNBOOK_ENDPOINT was "given by the endpoint argument"."""
    # One emulator per run: a second run within a second is throttled (IMDS-HTTP-017) by design.
    api_emu, cli_emu, argued_emu = (make_emulator(mode="vm", scenario="vm-healthy") for _ in range(3))
    api = run_checks(check_options(target=target, timeout=5,
                                   env=_steering_free_env(IMDS_RUNBOOK_ENDPOINT=api_emu.base_url + "/"))).to_dict()
    for emu, data in ((api_emu, api), (cli_emu, _check_json_with_override(cli_emu.base_url, target))):
        platform = data["platform"]
        assert data["verdict"] == "ok" and data["endpoint"] == emu.base_url
        assert f"endpoint {emu.base_url} given by IMDS_RUNBOOK_ENDPOINT;" in platform["reason"]
        assert "endpoint argument" not in json.dumps(data)
        assert platform["evidence"]["choice"]["explicit_source"] == "IMDS_RUNBOOK_ENDPOINT"
    # The argument still wins over the variable, and is named as the argument.
    argued = run_checks(check_options(target=target, endpoint=argued_emu.base_url, timeout=5,
                                      env=_steering_free_env(IMDS_RUNBOOK_ENDPOINT="http://127.0.0.1:9")))
    assert argued.endpoint == argued_emu.base_url and "given by the endpoint argument" in argued.platform["reason"]


def test_explicit_target_wins_over_detection(tmp_path):
    root = tree(tmp_path, tag=AZURE_TAG)
    result = detect_platform("arc", host=host(env={}, root=root, run=FakeRun(), os_name="linux"))
    assert (result.kind, result.target, result.endpoint) == ("vm", "arc", HIMDS_ENDPOINT)


@pytest.mark.parametrize("kwargs,argument", [
    ({"target": "azure"}, "target"),
    ({"endpoint": "169.254.169.254"}, "endpoint"),
    ({"endpoint": "ftp://x"}, "endpoint"),
    ({"endpoint": "http://x/metadata"}, "endpoint"),
    ({"endpoint": "http://x:99999"}, "endpoint"),
    ({"env": {"IMDS_RUNBOOK_ENDPOINT": "nonsense"}}, "IMDS_RUNBOOK_ENDPOINT"),
])
def test_bad_input_is_a_usage_error_naming_the_argument(tmp_path, kwargs, argument):
    env = kwargs.pop("env", {})
    with pytest.raises(UsageError) as err:
        detect_platform(**kwargs, host=host(env=env, root=tree(tmp_path), run=FakeRun(), os_name="linux"))
    assert err.value.argument == argument


def test_normalise_endpoint():
    assert normalise_endpoint("HTTP://LocalHost:40342/") == "http://localhost:40342"
    assert normalise_endpoint(" https://10.0.0.1 ") == "https://10.0.0.1"


@pytest.mark.parametrize("env,name", [
    ({"IDENTITY_ENDPOINT": "http://127.0.0.1:41741/msi/token/", "IDENTITY_HEADER": "s3cr3t-header"},
     "App Service / Azure Functions / Container Apps"),
    ({"IDENTITY_ENDPOINT": "https://x:2377/metadata/identity/oauth2/token", "IDENTITY_HEADER": "s3cr3t-header",
      "IDENTITY_SERVER_THUMBPRINT": "ABC"}, "Service Fabric"),
    ({"MSI_ENDPOINT": "http://127.0.0.1:46808/", "MSI_SECRET": "s3cr3t-header"}, "Azure Machine Learning"),
    ({"MSI_ENDPOINT": "http://localhost:50342/oauth2/token"}, "Cloud Shell"),
    ({"AZUREPS_HOST_ENVIRONMENT": "cloud-shell/1.0"}, "Cloud Shell"),
])
def test_hosted_identity_environments_are_not_this_tools_target(tmp_path, env, name):
    result = detect_platform(host=host(env=env, root=tree(tmp_path), run=FakeRun(), os_name="linux"))
    assert result.check.code == "IMDS-PLAT-005" and name in result.check.detail
    assert result.kind == "none"   # App Service's IDENTITY_ENDPOINT is not Arc
    assert "s3cr3t" not in json.dumps(result.to_dict())   # header/secret values: presence only


def test_container_markers(tmp_path):
    root = tree(tmp_path, tag=AZURE_TAG, dockerenv=True, cgroup="12:pids:/docker/3f1c\n")
    result = detect_platform(host=host(env={}, root=root, run=FakeRun(), os_name="linux"))
    assert codes(result) == ["IMDS-PLAT-000", "IMDS-PLAT-006"]
    assert result.evidence["container"]["runtime"] == "docker"
    assert "169.254.169.254" in result.notes[0].detail


def test_container_with_an_explicit_emulator_endpoint_is_only_noted(tmp_path):
    root = tree(tmp_path, tag=AZURE_TAG, dockerenv=True)
    emulator = detect_platform("vm", "http://127.0.0.1:8080",
                               host=host(env={}, root=root, run=FakeRun(), os_name="linux"))
    assert codes(emulator) == ["IMDS-PLAT-004", "IMDS-PLAT-010"] and emulator.notes[0].status.value == "ok"
    # The real addresses, even when named explicitly, keep the warning: the container's path matters.
    for endpoint in ("http://169.254.169.254", "http://localhost:40342", "http://127.0.0.1:40342"):
        real = detect_platform("auto", endpoint, host=host(env={}, root=root, run=FakeRun(), os_name="linux"))
        assert "IMDS-PLAT-006" in codes(real), endpoint
    override = detect_platform(host=host(env={"IMDS_RUNBOOK_ENDPOINT": "http://127.0.0.1:9"}, root=root,
                                         run=FakeRun(), os_name="linux"))
    assert codes(override)[-1] == "IMDS-PLAT-010"


def test_container_on_arc_warns_about_localhost(tmp_path):
    result = detect_platform(host=host(env={**ARC_ENV, "KUBERNETES_SERVICE_HOST": "10.0.0.1"}, root=tree(tmp_path),
                                       run=FakeRun(), os_name="linux"))
    note = next(n for n in result.notes if n.code == "IMDS-PLAT-006")
    assert "container itself" in note.detail and result.evidence["container"]["runtime"] == "kubernetes"


def test_pod_identity_authority_host_redirect(tmp_path):
    result = detect_platform(host=host(env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:2579"},
                                       root=tree(tmp_path), run=FakeRun(), os_name="linux"))
    assert codes(result)[-1] == "IMDS-PLAT-009"


def test_unreadable_dmi_and_missing_systemctl_are_evidence(tmp_path):
    root = tree(tmp_path, tag=AZURE_TAG)
    (Path(root) / "sys/class/dmi/id/product_uuid").mkdir()   # unreadable as a file, even for root
    result = detect_platform(host=host(env={}, root=root, run=FakeRun(), os_name="linux"))
    assert result.kind == "vm"
    assert result.evidence["azure_vm"]["product_uuid_error"].startswith("os_error")
    assert result.evidence["arc"]["service"] == {"kind": "unknown", "error": "not_found",
                                                 "command": "systemctl show himdsd --property=LoadState,ActiveState,SubState"}


def test_windows_arc_and_azure_vm(tmp_path):
    program_files = tmp_path / "Program Files"
    (program_files / "AzureConnectedMachineAgent").mkdir(parents=True)
    (program_files / "AzureConnectedMachineAgent" / "himds.exe").write_text("")
    sc = "SERVICE_NAME: himds\n        TYPE               : 10  WIN32_OWN_PROCESS\n        STATE              : 4  RUNNING\n"
    ps = f"{AZURE_TAG}\nMicrosoft Corporation\nVirtual Machine\n{UUID.upper()}\n"
    run = FakeRun(sc=sc, powershell=ps)
    result = detect_platform(host=host(env={"ProgramFiles": str(program_files), **ARC_ENV}, run=run, os_name="windows"))
    assert (result.kind, result.target) == ("both", "arc")
    assert result.evidence["arc"]["service"]["kind"] == "running"
    assert result.evidence["azure_vm"]["hyperv_guest"]
    assert [argv[0] for argv, _ in run.calls] == ["powershell", "sc"]


def test_windows_without_powershell_is_evidence(tmp_path):
    result = detect_platform(host=host(env={"ProgramFiles": str(tmp_path)}, run=FakeRun(), os_name="windows"))
    assert result.kind == "none" and result.evidence["azure_vm"]["command"]["error"] == "not_found"
