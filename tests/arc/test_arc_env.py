"""check_arc_environment and the ARC catalogue rows (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imds_helpers.analyze.arc import ENV_DROPIN, check_arc_environment, parse_dropin, read_dropin
from imds_helpers.model.catalog import CATALOG
from imds_helpers.collect import LiveHost
from imds_helpers.model.endpoints import HIMDS_BINARY_LINUX
from imds_helpers.model.findings import Status

GOOD = {"IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token",
        "IMDS_ENDPOINT": "http://localhost:40342"}


def under(root: Path, path: str) -> Path:
    """Where ``path`` of the checked machine lives in the fake tree ``root``."""
    return root / path.lstrip("/")


def env_check(env, tmp_path, dropin_text=None, *, os_name="linux", himds=False):
    """The check as the pipeline runs it: the host's environment (as evidence) and its files,
    here a LiveHost whose "/" is ``tmp_path`` (the agent's default paths under it)."""
    if dropin_text is not None:
        under(tmp_path, ENV_DROPIN).parent.mkdir(parents=True)
        under(tmp_path, ENV_DROPIN).write_text(dropin_text)
    if himds:
        under(tmp_path, HIMDS_BINARY_LINUX).parent.mkdir(parents=True)
        under(tmp_path, HIMDS_BINARY_LINUX).write_text("")
    host = LiveHost(env=env, root=str(tmp_path), os_name=os_name)
    return check_arc_environment(host.env, host=host)


def test_both_set_and_pointing_to_himds(tmp_path):
    result = env_check(GOOD, tmp_path)
    assert (result.code, result.status) == ("IMDS-ARC-004", Status.OK)
    assert result.evidence["IMDS_ENDPOINT"] == "http://localhost:40342"


@pytest.mark.parametrize("env", [
    {"IDENTITY_ENDPOINT": "http://127.0.0.1:40342/metadata/identity/oauth2/token", "IMDS_ENDPOINT": "http://127.0.0.1:40342/"},
])
def test_loopback_spellings_are_fine(tmp_path, env):
    assert env_check(env, tmp_path).code == "IMDS-ARC-004"


def test_missing_names_the_systemd_dropin(tmp_path):
    text = ('[Manager]\nDefaultEnvironment="IDENTITY_ENDPOINT=http://localhost:40342/metadata/identity/oauth2/token" '
            '"IMDS_ENDPOINT=http://localhost:40342"\n')
    result = env_check({"PATH": "/bin"}, tmp_path, text)
    assert (result.code, result.status) == ("IMDS-ARC-050", Status.WARN)
    assert "sets them for services only" in result.detail
    assert result.evidence["systemd_dropin"]["variables"] == GOOD
    assert "/lib/systemd/system.conf.d/azcmagent.conf" in result.explanation
    assert "export IDENTITY_ENDPOINT" in result.fix


def test_missing_without_dropin(tmp_path):
    result = env_check({}, tmp_path)
    assert result.code == "IMDS-ARC-050" and "no " in result.detail
    assert result.evidence["himds_binary_present"] is False
    assert result.evidence["systemd_dropin"] == {"path": ENV_DROPIN, "variables": None}


def test_the_agent_binary_is_seen(tmp_path):
    assert env_check({}, tmp_path, himds=True).evidence["himds_binary_present"] is True


def test_windows_has_no_dropin_evidence(tmp_path):
    result = env_check({}, tmp_path, "[Manager]\n", os_name="windows")
    assert result.code == "IMDS-ARC-050" and "systemd_dropin" not in result.evidence
    assert result.evidence["platform"] == "win32"


@pytest.mark.parametrize("drop", ["IDENTITY_ENDPOINT", "IMDS_ENDPOINT"])
def test_only_one_set(tmp_path, drop):
    env = {k: v for k, v in GOOD.items() if k != drop}
    result = env_check(env, tmp_path)
    assert result.code == "IMDS-ARC-051" and drop in result.detail


@pytest.mark.parametrize("name, value", [
    ("IDENTITY_ENDPOINT", "http://169.254.169.254/metadata/identity/oauth2/token"),
    ("IDENTITY_ENDPOINT", "http://localhost:40343/metadata/identity/oauth2/token"),
    ("IDENTITY_ENDPOINT", "http://localhost:40342/identity"),
    ("IDENTITY_ENDPOINT", "https://localhost:40342/metadata/identity/oauth2/token"),
    ("IMDS_ENDPOINT", "http://proxy.example:40342"),
    ("IMDS_ENDPOINT", "http://localhost:notaport"),
])
def test_pointing_elsewhere(tmp_path, name, value):
    result = env_check(dict(GOOD, **{name: value}), tmp_path)
    assert result.code == "IMDS-ARC-052" and name in result.detail


def test_competing_source_is_named_without_its_secret(tmp_path):
    result = env_check(dict(GOOD, IDENTITY_HEADER="s3cr3t-header-value"), tmp_path)
    assert result.code == "IMDS-ARC-053"
    assert result.evidence["competing_variables"] == ["IDENTITY_HEADER"]
    assert "s3cr3t-header-value" not in repr(result) + str(result.to_dict())


def test_a_secret_variable_is_judged_present_from_the_evidence_alone(tmp_path):
    """The host hands the check IDENTITY_HEADER as "<set>": still a competing source."""
    host = LiveHost(env=dict(GOOD, IDENTITY_HEADER="s3cr3t-header-value"), root=str(tmp_path), os_name="linux")
    assert host.env["IDENTITY_HEADER"] == "<set>"
    assert check_arc_environment(host.env, host=host).code == "IMDS-ARC-053"


def test_msi_endpoint_pair_takes_precedence(tmp_path):
    result = env_check({"MSI_ENDPOINT": "http://x", "MSI_SECRET": "zz-secret"}, tmp_path)
    assert result.code == "IMDS-ARC-053" and "zz-secret" not in repr(result)


def test_the_live_host_reads_the_process_environment_by_default(monkeypatch):
    for k, v in GOOD.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("IDENTITY_HEADER", raising=False)
    monkeypatch.delenv("MSI_ENDPOINT", raising=False)
    monkeypatch.delenv("MSI_SECRET", raising=False)
    host = LiveHost()
    assert check_arc_environment(host.env, host=host).code == "IMDS-ARC-004"


def test_read_dropin_tolerates_junk(tmp_path):
    text = 'DefaultEnvironment="unbalanced\nDefaultEnvironment=IMDS_ENDPOINT=http://localhost:40342 OTHER=1\n'
    assert parse_dropin(text) == {"IMDS_ENDPOINT": "http://localhost:40342"}
    (tmp_path / "x.conf").write_text(text)
    host = LiveHost(env={}, root=str(tmp_path), os_name="linux")
    assert read_dropin(host, "/x.conf") == {"IMDS_ENDPOINT": "http://localhost:40342"}
    assert read_dropin(host, "/absent") is None


# ----- the catalogue rows -------------------------------------------------------------------

ARC_ROWS = {code: spec for code, spec in CATALOG.items() if code.startswith("IMDS-ARC-")}


def test_arc_rows_are_complete():
    assert "IMDS-ARC-000" in ARC_ROWS and ARC_ROWS["IMDS-ARC-000"].status is Status.OK
    for code, spec in ARC_ROWS.items():
        assert spec.title and spec.explanation, code
        if spec.status in (Status.WARN, Status.FAIL):
            assert spec.fix, f"{code} needs a concrete fix"


def test_fixes_name_concrete_commands():
    assert "systemctl restart himdsd" in CATALOG["IMDS-ARC-010"].fix
    assert "usermod -aG himds" in CATALOG["IMDS-ARC-026"].fix
    assert "azcmagent" in CATALOG["IMDS-ARC-031"].fix
