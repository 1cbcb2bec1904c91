"""check_arc_environment and the ARC catalogue rows (pure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import imds_helpers.arc as arc
import imds_helpers.arc_keyfile as kf
from imds_helpers.arc import check_arc_environment, read_dropin
from imds_helpers.catalog import CATALOG
from imds_helpers.findings import Status

GOOD = {"IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token",
        "IMDS_ENDPOINT": "http://localhost:40342"}


def env_check(env, tmp_path, dropin_text=None, **kw):
    dropin = tmp_path / "azcmagent.conf"
    if dropin_text is not None:
        dropin.write_text(dropin_text)
    return check_arc_environment(env, platform=kw.pop("platform", "linux"), dropin_path=str(dropin),
                                 himds_binary=str(tmp_path / "himds"), **kw)


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


def test_windows_has_no_dropin_evidence(tmp_path):
    result = env_check({}, tmp_path, platform="win32")
    assert result.code == "IMDS-ARC-050" and "systemd_dropin" not in result.evidence


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


def test_msi_endpoint_pair_takes_precedence(tmp_path):
    result = env_check({"MSI_ENDPOINT": "http://x", "MSI_SECRET": "zz-secret"}, tmp_path)
    assert result.code == "IMDS-ARC-053" and "zz-secret" not in repr(result)


def test_reads_the_process_environment_by_default(monkeypatch):
    for k, v in GOOD.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("IDENTITY_HEADER", raising=False)
    monkeypatch.delenv("MSI_ENDPOINT", raising=False)
    assert check_arc_environment().code == "IMDS-ARC-004"


def test_read_dropin_tolerates_junk(tmp_path):
    path = tmp_path / "x.conf"
    path.write_text('DefaultEnvironment="unbalanced\nDefaultEnvironment=IMDS_ENDPOINT=http://localhost:40342 OTHER=1\n')
    assert read_dropin(str(path)) == {"IMDS_ENDPOINT": "http://localhost:40342"}
    assert read_dropin(str(tmp_path / "absent")) is None


# ----- the catalogue rows -------------------------------------------------------------------

ARC_ROWS = {code: spec for code, spec in CATALOG.items() if code.startswith("IMDS-ARC-")}


def test_every_code_used_by_the_arc_modules_has_a_row():
    used = set()
    for module in (arc, kf):
        used |= set(re.findall(r'"(IMDS-[A-Z]+-\d{3})"', Path(module.__file__).read_text()))
    missing = used - set(CATALOG)
    assert not missing, missing


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
