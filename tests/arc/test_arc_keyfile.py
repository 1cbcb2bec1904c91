"""The pure Arc key-file rules: challenge parsing, realm rules (never opening the file), the
bounded read and header validity. No network, no namespace: tmp_path is the tokens dir."""

from __future__ import annotations

import builtins
import os
import shutil
import socket
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from imds_helpers.collect import arc_keyfile as kf
from imds_helpers.model.catalog import (ARC_CHALLENGE_MALFORMED, ARC_CHALLENGE_MISSING, ARC_KEYFILE_OK, ARC_KEY_MISSING,
                                  ARC_KEY_NOT_REGULAR, ARC_KEY_NOT_SENDABLE, ARC_KEY_TOO_LARGE,
                                  ARC_KEY_TRAILING_NEWLINE, ARC_KEY_UNREADABLE, ARC_REALM_NOT_ABSOLUTE,
                                  ARC_REALM_NOT_KEY, ARC_REALM_OK, ARC_REALM_OUTSIDE_DIR, CATALOG)

from .other_user import other_user

SECRET = "imdsrbcanaryTESTSECRET0123456789abcdef"


@pytest.fixture
def tokens(tmp_path):
    d = tmp_path / "tokens"
    d.mkdir()
    return d


def write(path, data: bytes | str = SECRET, mode: int = 0o640):
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.fixture
def no_open(monkeypatch):
    """Any attempt by this thread to open a file fails the test (and is recorded)."""
    opened: list[str] = []
    me = threading.get_ident()
    real_os_open, real_open = os.open, builtins.open

    def guard(real):
        def wrapper(path, *args, **kwargs):
            if threading.get_ident() == me:
                opened.append(os.fspath(path) if not isinstance(path, int) else f"fd:{path}")
                raise AssertionError(f"opened {path!r}")
            return real(path, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(os, "open", guard(real_os_open))
    monkeypatch.setattr(builtins, "open", guard(real_open))
    return opened


# ----- the challenge header ----------------------------------------------------------------

@pytest.mark.parametrize("header, realm", [
    ("Basic realm=/var/opt/azcmagent/tokens/abc.key", "/var/opt/azcmagent/tokens/abc.key"),
    ("basic realm=/var/opt/azcmagent/tokens/abc.key", "/var/opt/azcmagent/tokens/abc.key"),
    ("BASIC REALM=/x/y.key", "/x/y.key"),
    ("  Basic realm=/x/y.key  ", "/x/y.key"),
    (r"Basic realm=C:\ProgramData\AzureConnectedMachineAgent\Tokens\abc.key",
     r"C:\ProgramData\AzureConnectedMachineAgent\Tokens\abc.key"),
])
def test_challenge_parses_like_msal(header, realm):
    parsed = kf.parse_challenge(header)
    assert parsed.code is None and parsed.realm == realm


@pytest.mark.parametrize("header", [None, "", "   "])
def test_challenge_missing(header):
    assert kf.parse_challenge(header).code == ARC_CHALLENGE_MISSING


@pytest.mark.parametrize("header, why", [
    ("Bearer realm=/x/y.key", "not 'Basic realm"),
    ("Basic  realm=/x/y.key", "not 'Basic realm"),        # MSAL compares 'basic realm' exactly
    ("Basic realm", "not 'Basic realm"),
    ("Basic realm=", "names no path"),
    ("Basic realm=/x/a=1.key", "contains '='"),
    ('Basic realm="/x/y.key"', "quoted"),
    ('Basic realm="/x/a=1.key"', "contains '='"),
    ("Basic realm=/x/y\x01.key", "control characters"),
    ("Negotiate", "not 'Basic realm"),
])
def test_challenge_malformed_names_why(header, why):
    parsed = kf.parse_challenge(header)
    assert parsed.code == ARC_CHALLENGE_MALFORMED
    assert why in parsed.detail


def test_equals_detail_reports_both_client_behaviours():
    detail = kf.parse_challenge("Basic realm=/t/a=1.key").detail
    assert "MSAL" in detail and "3 parts" in detail and "azure-identity" in detail and "'/t/a'" in detail


# ----- realm rules (nothing is opened) --------------------------------------------------------

def test_realm_ok(tokens, no_open):
    key = write(tokens / "abc.key")
    verdict = kf.check_realm(str(key), str(tokens))
    assert verdict.ok, verdict.detail
    assert verdict.evidence["file"]["type"] == "regular file"
    assert verdict.evidence["file"]["mode"] == "0o640"
    assert verdict.evidence["broken_rules"] == []
    assert "process" in verdict.evidence
    assert no_open == []


def test_realm_exactly_4096_bytes_is_ok(tokens, no_open):
    key = write(tokens / "abc.key", "x" * 4096)
    assert kf.check_realm(str(key), str(tokens)).ok


def test_tokens_dir_given_through_a_symlink_is_fine(tmp_path, tokens, no_open):
    link = tmp_path / "link-to-tokens"
    link.symlink_to(tokens)
    key = write(tokens / "abc.key")
    assert kf.check_realm(str(link / "abc.key"), str(link)).ok
    assert kf.check_realm(str(key), str(link)).ok


def _hostile(tmp_path, tokens, kind):
    """Build a hostile realm; returns (realm, expected code, rule)."""
    if kind == "relative":
        return "tokens/abc.key", ARC_REALM_NOT_ABSOLUTE, "absolute path"
    if kind == "outside":
        other = tmp_path / "elsewhere"
        other.mkdir()
        return str(write(other / "abc.key")), ARC_REALM_OUTSIDE_DIR, "inside the tokens directory"
    if kind == "traversal":
        write(tmp_path / "abc.key")
        return f"{tokens}/../abc.key", ARC_REALM_OUTSIDE_DIR, "inside the tokens directory"
    if kind == "subdirectory":
        (tokens / "sub").mkdir()
        return str(write(tokens / "sub" / "abc.key")), ARC_REALM_OUTSIDE_DIR, "inside the tokens directory"
    if kind == "symlink-out":
        target = write(tmp_path / "secret.txt")
        (tokens / "abc.key").symlink_to(target)
        return str(tokens / "abc.key"), ARC_REALM_OUTSIDE_DIR, "inside the tokens directory"
    if kind == "dev-zero":
        return "/dev/zero", ARC_REALM_OUTSIDE_DIR, "inside the tokens directory"
    if kind == "etc-shadow":
        return "/etc/shadow", ARC_REALM_OUTSIDE_DIR, "inside the tokens directory"
    if kind == "not-key":
        return str(write(tokens / "abc.txt")), ARC_REALM_NOT_KEY, "name ends with .key"
    if kind == "missing":
        return str(tokens / "gone.key"), ARC_KEY_MISSING, "exists"
    if kind == "fifo":
        os.mkfifo(tokens / "abc.key")
        return str(tokens / "abc.key"), ARC_KEY_NOT_REGULAR, "regular file"
    if kind == "directory":
        (tokens / "abc.key").mkdir()
        return str(tokens / "abc.key"), ARC_KEY_NOT_REGULAR, "regular file"
    if kind == "symlink-inside":
        target = write(tokens / "real.key")
        (tokens / "abc.key").symlink_to(target)
        return str(tokens / "abc.key"), ARC_KEY_NOT_REGULAR, "regular file"
    if kind == "socket":
        path = tokens / "abc.key"
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(str(path))
        except OSError as err:  # path too long for AF_UNIX on some hosts
            pytest.skip(f"cannot bind a unix socket here: {err}")
        finally:
            sock.close()
        return str(path), ARC_KEY_NOT_REGULAR, "regular file"
    if kind == "too-large":
        return str(write(tokens / "abc.key", "x" * 4097)), ARC_KEY_TOO_LARGE, "at most 4096 bytes"
    if kind == "huge-sparse":
        path = write(tokens / "abc.key")
        os.truncate(path, 1 << 30)
        return str(path), ARC_KEY_TOO_LARGE, "at most 4096 bytes"
    raise AssertionError(kind)


HOSTILE = ["relative", "outside", "traversal", "subdirectory", "symlink-out", "dev-zero", "etc-shadow",
           "not-key", "missing", "fifo", "directory", "symlink-inside", "socket", "too-large", "huge-sparse"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_realm_is_refused_by_the_named_rule_without_opening(tmp_path, tokens, kind, no_open):
    realm, code, rule = _hostile(tmp_path, tokens, kind)
    verdict = kf.check_realm(realm, str(tokens))
    assert (verdict.code, verdict.rule) == (code, rule), verdict.detail
    assert not verdict.ok
    assert verdict.evidence["broken_rules"][0] == rule
    assert "not opened" in verdict.detail
    assert code in CATALOG
    assert no_open == []


def test_dev_zero_lists_every_rule_it_breaks(tokens, no_open):
    verdict = kf.check_realm("/dev/zero", str(tokens))
    assert verdict.evidence["broken_rules"] == ["inside the tokens directory", "name ends with .key", "regular file"]
    assert verdict.evidence["file"]["type"] == "character device"


def test_traversal_reports_the_resolved_path_and_client_views(tmp_path, tokens):
    realm = f"{tokens}/../../etc/abc.key"
    verdict = kf.check_realm(realm, str(tokens))
    assert verdict.code == ARC_REALM_OUTSIDE_DIR
    assert verdict.evidence["resolved"] == os.path.realpath(realm)
    clients = verdict.evidence["clients"]
    assert "rejects" in clients["azure_identity_async"]
    assert f"{tokens}/abc.key" in clients["msal_python"]


def test_symlink_inside_dir_is_accepted_by_azure_identity_name_check_but_not_by_us(tmp_path, tokens):
    target = write(tmp_path / "outside.txt")
    (tokens / "abc.key").symlink_to(target)
    verdict = kf.check_realm(str(tokens / "abc.key"), str(tokens))
    assert verdict.code == ARC_REALM_OUTSIDE_DIR
    assert "accepts the name" in verdict.evidence["clients"]["azure_identity_async"]
    assert verdict.evidence["file"]["link_target"] == str(target)


def test_unreadable_key_names_the_user_and_group(tokens, monkeypatch, no_open):
    key = write(tokens / "abc.key", mode=0)
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    ident = kf.Identity(uid=1000, user="alice", gids=(1000,), himds_gid=990)
    verdict = kf.check_realm(str(key), str(tokens), identity=ident)
    assert verdict.code == ARC_KEY_UNREADABLE and verdict.rule == "readable by this user"
    assert "alice" in verdict.detail and "not root and not in group 'himds'" in verdict.detail
    assert "mode 0o0" in verdict.detail
    assert verdict.evidence["process"]["in_himds_group"] is False


def test_unreadable_without_himds_group(tokens, monkeypatch):
    key = write(tokens / "abc.key", mode=0)
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    verdict = kf.check_realm(str(key), str(tokens), identity=kf.Identity(1000, "bob", (1000,), None))
    assert "no 'himds' group" in verdict.detail


def test_windows_readability_advice_names_both_groups():
    text = kf._who(kf.Identity(None, "bob", (), None), "win32")
    assert "Administrators" in text and "Hybrid agent extension applications" in text


def test_identity_membership():
    assert kf.Identity(0, "root", (0,), None).is_root
    assert kf.Identity(1000, "a", (1000, 990), 990).in_himds
    assert not kf.Identity(1000, "a", (1000,), 990).in_himds


@pytest.fixture(scope="module")
def nobody():
    """Python as uid 65534 on a copy of the package it can read (or a skip saying why)."""
    yield from other_user()


def test_untraversable_tokens_dir_is_a_permission_finding(nobody):
    """As another user, lstat inside a 0700 directory fails: report permission, not 'missing'."""
    base = tempfile.mkdtemp(prefix="arc-untraversable-")   # not tmp_path: its parents are 0700
    try:
        os.chmod(base, 0o755)
        tokens = os.path.join(base, "tokens")
        os.mkdir(tokens, 0o700)
        key = write(Path(tokens) / "abc.key")
        code = ("import sys; from imds_helpers.collect import arc_keyfile as kf; "
                "v = kf.check_realm(sys.argv[1], sys.argv[2]); print(v.code, v.rule)")
        # the folder above is open to that user: the refusal comes from the tokens dir alone
        assert nobody.run("import os, sys; print(os.listdir(sys.argv[1]))", base).stdout == "['tokens']\n"
        out = nobody.run(code, str(key), tokens)
    finally:
        shutil.rmtree(base)
    assert out.stdout.split(None, 1) == [ARC_KEY_UNREADABLE, "readable by this user\n"], out.stderr


# ----- the bounded read --------------------------------------------------------------------

def test_read_key_returns_contents_verbatim(tokens):
    key = write(tokens / "abc.key", " spaced secret ")
    secret, verdict = kf.read_key(str(key), os.lstat(key))
    assert secret == " spaced secret "
    assert verdict.code == ARC_KEYFILE_OK and verdict.ok
    assert verdict.evidence["bytes_read"] == 15


def test_read_key_never_puts_the_secret_in_the_verdict(tokens):
    key = write(tokens / "abc.key")
    secret, verdict = kf.read_key(str(key), os.lstat(key))
    assert secret == SECRET
    assert SECRET not in repr(verdict) and SECRET not in verdict.detail


def test_trailing_newline_is_a_warning_and_not_stripped(tokens):
    key = write(tokens / "abc.key", SECRET + "\n")
    secret, verdict = kf.read_key(str(key), os.lstat(key))
    assert verdict.code == ARC_KEY_TRAILING_NEWLINE and verdict.ok
    assert CATALOG[verdict.code].status.value == "warn"
    assert secret == SECRET + "\n"
    assert kf.header_problem(secret) == kf.TRAILING_NEWLINE


@pytest.mark.parametrize("data, why", [
    (b"", "empty"),
    (b"\xff\xfe\x00bad", "not UTF-8"),
    (b"abc\ndef", "line breaks"),
    ("s\u20acret".encode(), "Latin-1"),
])
def test_unsendable_contents(tokens, data, why):
    key = write(tokens / "abc.key", data)
    secret, verdict = kf.read_key(str(key), os.lstat(key))
    assert secret is None
    assert verdict.code == ARC_KEY_NOT_SENDABLE and why in verdict.detail


def test_file_swapped_after_the_check_is_not_read(tokens):
    key = write(tokens / "abc.key")
    other = write(tokens / "other.key")
    secret, verdict = kf.read_key(str(key), os.lstat(other))
    assert secret is None and verdict.code == ARC_KEY_NOT_REGULAR and "replaced" in verdict.detail


def test_symlink_swapped_in_after_the_check_is_not_followed(tmp_path, tokens):
    key = write(tokens / "abc.key")
    st = os.lstat(key)
    key.unlink()
    key.symlink_to(write(tmp_path / "outside.txt"))
    secret, verdict = kf.read_key(str(key), st)
    assert secret is None and verdict.code == ARC_KEY_NOT_REGULAR


@pytest.mark.timeout(5)
def test_fifo_swapped_in_does_not_block(tokens):
    key = write(tokens / "abc.key")
    st = os.lstat(key)
    key.unlink()
    os.mkfifo(key)
    secret, verdict = kf.read_key(str(key), st)
    assert secret is None and verdict.code == ARC_KEY_NOT_REGULAR and "FIFO" in verdict.detail


def test_file_grown_after_the_check_is_not_read(tokens):
    key = write(tokens / "abc.key")
    st = os.lstat(key)
    with open(key, "ab") as handle:
        handle.write(b"x" * 5000)
    secret, verdict = kf.read_key(str(key), st)
    assert secret is None and verdict.code == ARC_KEY_TOO_LARGE


def test_key_consumed_before_the_read_is_missing(tokens):
    key = write(tokens / "abc.key")
    st = os.lstat(key)
    key.unlink()
    secret, verdict = kf.read_key(str(key), st)
    assert secret is None and verdict.code == ARC_KEY_MISSING


def test_permission_denied_on_open(tokens, monkeypatch):
    key = write(tokens / "abc.key")
    st = os.lstat(key)

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    secret, verdict = kf.read_key(str(key), st)
    assert secret is None and verdict.code == ARC_KEY_UNREADABLE and verdict.evidence["errno"] == "EACCES"


def test_read_key_opens_with_nofollow_and_nonblock(tokens, monkeypatch):
    key = write(tokens / "abc.key")
    seen = []
    real = os.open

    def spy(path, flags, *a):
        seen.append(flags)
        return real(path, flags, *a)

    monkeypatch.setattr(os, "open", spy)
    kf.read_key(str(key), os.lstat(key))
    assert seen and all(seen[0] & f for f in (os.O_NOFOLLOW, os.O_NONBLOCK, os.O_CLOEXEC))
    assert seen[0] & (os.O_WRONLY | os.O_RDWR) == 0


def test_read_is_bounded(tokens, monkeypatch):
    """Even if fstat lies (a procfs-like file reporting size 0), at most 4097 bytes are read."""
    key = write(tokens / "abc.key", "y" * 100_000)
    requested = []
    real_read = os.read
    monkeypatch.setattr(os, "fstat", lambda fd: os.stat_result((stat.S_IFREG | 0o640, 1, 1, 1, 0, 0, 0, 0, 0, 0)))

    def spy(fd, n):
        requested.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", spy)
    secret, verdict = kf.read_key(str(key))
    assert secret is None and verdict.code == ARC_KEY_TOO_LARGE
    assert sum(requested) <= kf.KEY_MAX_BYTES + 1


# ----- header validity and platform dirs ------------------------------------------------------

@pytest.mark.parametrize("secret, ok", [
    ("abc", True), (" leading", True), ("tab\tinside", True),
    ("", False), ("a\n", False), ("a\r\n", False), ("a\nb", False), ("a\0b", False), ("\u20ac", False),
])
def test_header_problem(secret, ok):
    assert (kf.header_problem(secret) is None) is ok


def test_default_tokens_dirs():
    assert kf.default_tokens_dir("linux") == "/var/opt/azcmagent/tokens"
    assert kf.default_tokens_dir("win32", {"ProgramData": r"D:\PD"}) == r"D:\PD\AzureConnectedMachineAgent\Tokens"
    assert kf.default_tokens_dir("win32", {"PROGRAMDATA": r"E:\X"}) == r"E:\X\AzureConnectedMachineAgent\Tokens"
    assert kf.default_tokens_dir("win32", {}) == r"C:\ProgramData\AzureConnectedMachineAgent\Tokens"


def test_client_views_on_windows_paths():
    tokens = r"C:\ProgramData\AzureConnectedMachineAgent\Tokens"
    views = kf.client_views(tokens + r"\abc.key", tokens, platform="win32")
    assert "accepts" in views["azure_identity_async"]
    views = kf.client_views(r"C:\Windows\abc.key", tokens, platform="win32")
    assert "rejects" in views["azure_identity_async"] and tokens + r"\abc.key" in views["msal_python"]


def test_who_may_read_advice_in_evidence(tokens):
    key = write(tokens / "abc.key")
    assert "himds" in kf.check_realm(str(key), str(tokens)).evidence["who_may_read"]
    assert "Hybrid agent extension applications" in kf.who_may_read("win32")


# ----- properties -------------------------------------------------------------------------------

from contextlib import contextmanager  # noqa: E402

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@contextmanager
def opening_forbidden():
    real_os_open, real_open = os.open, builtins.open

    def refuse(path, *a, **k):
        raise AssertionError(f"opened {path!r}")

    os.open, builtins.open = refuse, refuse
    try:
        yield
    finally:
        os.open, builtins.open = real_os_open, real_open


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_any_header_parses_without_raising(header):
    parsed = kf.parse_challenge("Basic realm=" + header)
    assert parsed.code in (None, ARC_CHALLENGE_MALFORMED, ARC_CHALLENGE_MISSING)
    if parsed.code is None:
        assert "=" not in parsed.realm and not parsed.realm.startswith('"')
    kf.parse_challenge(header)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(realm=st.one_of(st.text(max_size=60), st.text(max_size=40).map(lambda s: "/" + s),
                       st.sampled_from(["/dev/zero", "/proc/self/mem", "/etc/shadow", "/", "//", "/..",
                                        "/var/opt/azcmagent/tokens/../tokens/x.key"])))
def test_check_realm_never_raises_nor_opens(tmp_path, realm):
    with opening_forbidden():
        verdict = kf.check_realm(realm, str(tmp_path))
    assert verdict.code in CATALOG
    assert verdict.ok is (verdict.code == ARC_REALM_OK)
