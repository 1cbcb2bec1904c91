"""The Arc key-file rules on the live machine (collection): judge the realm without opening it,
and read a key file bounded and safely. (The challenge header is parsed by the pure
:mod:`imds_helpers.parsers.challenge`.)

HIMDS answers a token request with ``401`` and ``WWW-Authenticate: Basic realm=<path>``; the
file at ``<path>`` holds a single-use secret readable only by root / the ``himds`` group
(Linux) or Administrators / "Hybrid agent extension applications" (Windows). A hostile or
broken service can name any path, so the realm is judged by the same rules the Azure SDKs
enforce (and a few stricter ones), each failure naming its rule, and only a realm that passes
every rule is opened - with ``O_NOFOLLOW | O_NONBLOCK`` and a re-check of the open file.

The secret never lives in an object here: :func:`read_key` returns it as a bare ``str`` for
the caller to keep in a local variable.
"""

from __future__ import annotations

import errno
import ntpath
import os
import posixpath
import stat
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

from imds_helpers.model.catalog import (ARC_CHALLENGE_MALFORMED, ARC_KEYFILE_OK, ARC_KEY_MISSING,
                                  ARC_KEY_NOT_REGULAR, ARC_KEY_NOT_SENDABLE, ARC_KEY_ROOT_ONLY, ARC_KEY_TOO_LARGE,
                                  ARC_KEY_TRAILING_NEWLINE, ARC_KEY_UNREADABLE, ARC_REALM_NOT_ABSOLUTE,
                                  ARC_REALM_NOT_KEY, ARC_REALM_OK, ARC_REALM_OUTSIDE_DIR)
from imds_helpers.analyze.arc import default_tokens_dir
from imds_helpers.model.endpoints import ARC_TOKENS_DIR_LINUX, ARC_TOKENS_SUBDIR_WINDOWS
from imds_helpers.parsers.challenge import Challenge, parse_challenge

KEY_MAX_BYTES = 4096
KEY_SUFFIX = ".key"
LINUX_TOKENS_DIR = ARC_TOKENS_DIR_LINUX
WINDOWS_TOKENS_SUBDIR = ARC_TOKENS_SUBDIR_WINDOWS
HIMDS_GROUP = "himds"
WINDOWS_GROUPS = ("Administrators", "Hybrid agent extension applications")


_O_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
            | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0))


def _pathmod(platform: str):
    return ntpath if platform.startswith("win") else posixpath


# 1. The challenge header: imds_helpers.parsers.challenge (pure, shared with the analysis).
# --------------------------------------------------------------------------------------------
# 2. The realm rules (nothing here opens the file)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RealmVerdict:
    """The first rule the realm breaks (``code``), or ``ARC_REALM_OK``. ``lstat`` is kept to detect
    a file swapped between this check and the read."""

    code: str
    rule: str
    detail: str
    evidence: Mapping[str, Any]
    lstat: os.stat_result | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """The file may be read (a warning such as root-only still lets the chain go on)."""
        return self.code in (ARC_REALM_OK, ARC_KEY_ROOT_ONLY)


@dataclass(frozen=True)
class Identity:
    """Who this process is, for the readability rule (pure data, injectable in tests)."""

    uid: int | None
    user: str | None
    gids: tuple[int, ...]
    himds_gid: int | None      # None: no such group on this machine (or not Linux)

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    @property
    def in_himds(self) -> bool:
        return self.himds_gid is not None and self.himds_gid in self.gids

    def to_evidence(self) -> dict[str, Any]:
        return {"uid": self.uid, "user": self.user, "groups": list(self.gids),
                "root": self.is_root, "himds_group_gid": self.himds_gid, "in_himds_group": self.in_himds}


def current_identity() -> Identity:
    """The effective uid, its name, supplementary + effective groups, and the himds gid."""
    if not hasattr(os, "geteuid"):
        return Identity(None, os.environ.get("USERNAME"), (), None)
    uid = os.geteuid()
    user = _user_name(uid)
    gids = tuple(sorted(set(os.getgroups()) | {os.getegid()}))
    himds_gid = None
    try:
        import grp
        himds_gid = grp.getgrnam(HIMDS_GROUP).gr_gid
    except (ImportError, KeyError):
        pass
    return Identity(uid, user, gids, himds_gid)


def _user_name(uid: int | None) -> str | None:
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name  # type: ignore[arg-type]
    except (ImportError, KeyError, TypeError):
        return None


def _group_name(gid: int | None) -> str | None:
    try:
        import grp
        return grp.getgrgid(gid).gr_name  # type: ignore[arg-type]
    except (ImportError, KeyError, TypeError):
        return None


def _file_evidence(st: os.stat_result) -> dict[str, Any]:
    return {
        "type": file_type(st.st_mode),
        "mode": oct(stat.S_IMODE(st.st_mode)),
        "owner": f"{_user_name(st.st_uid) or st.st_uid}",
        "group": f"{_group_name(st.st_gid) or st.st_gid}",
        "size": st.st_size,
    }


def file_type(mode: int) -> str:
    """What kind of file ``mode`` (from stat) describes, in words: "FIFO (named pipe)", ..."""
    for test, name in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "unknown"


def client_views(realm: str, tokens_dir: str, *, platform: str = sys.platform) -> dict[str, str]:
    """What the two Python clients would do with this realm (both read the file by name)."""
    path = _pathmod(platform)
    stem = path.splitext(path.basename(realm))[0]
    msal_path = path.join(tokens_dir, stem + KEY_SUFFIX)
    msal = (f"reads {msal_path} (rebuilds <tokens dir>/<stem>.key, ignoring the directory sent)"
            + ("" if msal_path == realm else " - not the path HIMDS named"))
    dirname = path.dirname(realm)
    if dirname != tokens_dir:
        async_view = f"rejects: dirname {dirname!r} != {tokens_dir!r} (exact string compare)"
    elif not realm.endswith(KEY_SUFFIX):
        async_view = "rejects: the name does not end with '.key'"
    else:
        async_view = "accepts the name (then checks existence and size <= 4096, and follows symlinks)"
    return {"msal_python": msal, "azure_identity_async": async_view}


def check_realm(
    realm: str,
    tokens_dir: str,
    *,
    identity: Identity | None = None,
    platform: str = sys.platform,
) -> RealmVerdict:
    """Judge ``realm`` by every rule without opening it: absolute; directly inside
    ``tokens_dir`` once ``..`` and symlinks are resolved; named ``*.key``; exists; a regular
    file; at most 4096 bytes; readable by this process. The first broken rule decides the
    code; ``evidence["broken_rules"]`` lists every rule it breaks."""
    path = _pathmod(platform)
    evidence: dict[str, Any] = {"realm": realm, "tokens_dir": tokens_dir,
                                "clients": client_views(realm, tokens_dir, platform=platform),
                                "who_may_read": who_may_read(platform)}
    broken: list[tuple[str, str, str]] = []      # (code, rule, detail)

    def verdict(st: os.stat_result | None = None) -> RealmVerdict:
        evidence["broken_rules"] = [rule for _, rule, _ in broken]
        if not broken:
            size = st.st_size if st is not None else "?"
            return RealmVerdict(ARC_REALM_OK, "all rules passed",
                                f"{realm}: regular file, {size} bytes, inside {tokens_dir}, readable", evidence, st)
        code, rule, detail = broken[0]
        if len(broken) > 1:
            detail += "; also breaks: " + ", ".join(r for _, r, _ in broken[1:])
        return RealmVerdict(code, rule, detail + "; not opened", evidence, st)

    if not realm or any(ord(c) < 0x20 or ord(c) == 0x7F for c in realm):
        broken.append((ARC_CHALLENGE_MALFORMED, "a plain path",
                       f"realm {realm!r} is empty or contains control characters (NUL, line breaks)"))
        return verdict()
    if not path.isabs(realm):
        broken.append((ARC_REALM_NOT_ABSOLUTE, "absolute path",
                       f"realm {realm!r} is not an absolute path; clients cannot locate the key file"))
        return verdict()      # a relative path would resolve against our cwd: look no further
    resolved = os.path.realpath(realm)
    dir_resolved = os.path.realpath(tokens_dir)
    evidence.update(resolved=resolved, tokens_dir_resolved=dir_resolved)
    if path.normcase(path.dirname(resolved)) != path.normcase(dir_resolved):
        how = f" (it resolves to {resolved})" if resolved != realm else ""
        broken.append((ARC_REALM_OUTSIDE_DIR, "inside the tokens directory",
                       f"realm {realm!r} is not directly inside {tokens_dir}{how}"))
    if not path.basename(realm).endswith(KEY_SUFFIX):
        broken.append((ARC_REALM_NOT_KEY, "name ends with .key", f"realm {realm!r} does not name a '.key' file"))
    try:
        st = os.lstat(realm)
    except FileNotFoundError:
        broken.append((ARC_KEY_MISSING, "exists",
                       f"{realm} does not exist (key files are single-use and deleted after use, "
                       "or the agent could not write it)"))
        return verdict()
    except PermissionError:
        ident = identity or current_identity()
        evidence["process"] = ident.to_evidence()
        evidence["tokens_dir_stat"] = _safe_stat_evidence(tokens_dir)
        broken.append((ARC_KEY_UNREADABLE, "readable by this user",
                       f"this process may not even look into {tokens_dir} "
                       f"({_describe(evidence['tokens_dir_stat'])}); {_who(ident, platform)}"))
        return verdict()
    except (OSError, ValueError) as err:
        broken.append((ARC_KEY_MISSING, "exists", f"{realm} cannot be looked up ({type(err).__name__})"))
        return verdict()
    evidence["file"] = _file_evidence(st)
    if stat.S_ISLNK(st.st_mode):
        try:
            evidence["file"]["link_target"] = os.readlink(realm)
        except OSError:
            pass
    if not stat.S_ISREG(st.st_mode):
        broken.append((ARC_KEY_NOT_REGULAR, "regular file", f"{realm} is a {file_type(st.st_mode)}, not a regular file"))
        return verdict(st)
    if st.st_size > KEY_MAX_BYTES:
        broken.append((ARC_KEY_TOO_LARGE, "at most 4096 bytes",
                       f"{realm} is {st.st_size} bytes; clients refuse key files over {KEY_MAX_BYTES} bytes"))
    ident = identity or current_identity()
    evidence["process"] = ident.to_evidence()
    effective = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
    if not os.access(realm, os.R_OK, **effective):
        broken.append((ARC_KEY_UNREADABLE, "readable by this user",
                       f"this process cannot read {realm} ({_describe(evidence['file'])}); {_who(ident, platform)}"))
    elif not broken and platform.startswith("linux") and ident.is_root and not st.st_mode & stat.S_IRGRP:
        # Root reads anything; the agents and extensions that rely on the himds group do not.
        evidence["broken_rules"] = []
        return RealmVerdict(ARC_KEY_ROOT_ONLY, "readable by the himds group",
                            f"{realm} ({_describe(evidence['file'])}) is readable here only because this check "
                            "runs as root: the himds group has no read permission", evidence, st)
    return verdict(st)


def _safe_stat_evidence(path: str) -> dict[str, Any] | None:
    try:
        return _file_evidence(os.stat(path))
    except (OSError, ValueError):
        return None


def _describe(file_evidence: Mapping[str, Any] | None) -> str:
    if not file_evidence:
        return "mode unknown"
    return f"mode {file_evidence['mode']}, owner {file_evidence['owner']}, group {file_evidence['group']}"


def who_may_read(platform: str = sys.platform) -> str:
    """Who HIMDS lets read key files, as advice text."""
    if platform.startswith("win"):
        return "members of " + " or ".join(f"'{g}'" for g in WINDOWS_GROUPS) + " (run elevated, or add the account)"
    return f"root, or members of group '{HIMDS_GROUP}' (sudo usermod -aG {HIMDS_GROUP} <user>, then log in again)"


def _who(ident: Identity, platform: str) -> str:
    if platform.startswith("win"):
        return ("on Windows only members of " + " or ".join(f"'{g}'" for g in WINDOWS_GROUPS)
                + " may read key files")
    name = ident.user or f"uid {ident.uid}"
    if ident.is_root:
        return f"running as {name} (root)"
    if ident.himds_gid is None:
        return f"running as {name}, and there is no '{HIMDS_GROUP}' group on this machine"
    member = "in" if ident.in_himds else "not root and not in"
    return f"running as {name}, {member} group '{HIMDS_GROUP}' (gid {ident.himds_gid})"


# --------------------------------------------------------------------------------------------
# 3. Reading the key (bounded, no symlinks, no blocking, re-checked after open)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyVerdict:
    """How reading went. Never holds the secret."""

    code: str
    detail: str
    evidence: Mapping[str, Any]

    @property
    def ok(self) -> bool:
        return self.code in (ARC_KEYFILE_OK, ARC_KEY_TRAILING_NEWLINE)


def read_key(path: str, expected: os.stat_result | None = None) -> tuple[str | None, KeyVerdict]:
    """Read the key at ``path`` (already judged by :func:`check_realm`). Returns ``(secret,
    verdict)``; ``secret`` is None unless the verdict is ok. The contents are never stripped:
    clients send them verbatim."""
    try:
        fd = os.open(path, _O_FLAGS)
    except OSError as err:
        return None, _open_error(path, err)
    try:
        st = os.fstat(fd)
        evidence: dict[str, Any] = {"path": path, "file": _file_evidence(st)}
        if not stat.S_ISREG(st.st_mode):
            return None, KeyVerdict(ARC_KEY_NOT_REGULAR, f"{path} is a {file_type(st.st_mode)} once opened; not read", evidence)
        if expected is not None and (st.st_dev, st.st_ino) != (expected.st_dev, expected.st_ino):
            return None, KeyVerdict(ARC_KEY_NOT_REGULAR, f"{path} was replaced between the check and the read; not read", evidence)
        if st.st_size > KEY_MAX_BYTES:
            return None, KeyVerdict(ARC_KEY_TOO_LARGE, f"{path} is {st.st_size} bytes once opened; not read", evidence)
        data = bytearray()
        while len(data) <= KEY_MAX_BYTES:
            chunk = os.read(fd, KEY_MAX_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as err:
        return None, _open_error(path, err)
    finally:
        os.close(fd)
    evidence["bytes_read"] = len(data)
    if len(data) > KEY_MAX_BYTES:
        data[:] = b"\0" * len(data)
        return None, KeyVerdict(ARC_KEY_TOO_LARGE, f"{path} grew past {KEY_MAX_BYTES} bytes while reading; discarded", evidence)
    try:
        secret = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return None, KeyVerdict(ARC_KEY_NOT_SENDABLE, f"{path} is not UTF-8 text ({len(data)} bytes); clients read it as text", evidence)
    finally:
        data[:] = b"\0" * len(data)
    problem = header_problem(secret)
    if problem is None:
        return secret, KeyVerdict(ARC_KEYFILE_OK, f"read {len(secret)} characters from {path}", evidence)
    if problem == TRAILING_NEWLINE:
        evidence["trailing_newline"] = True
        return secret, KeyVerdict(ARC_KEY_TRAILING_NEWLINE,
                                  f"{path} ends with a line break; clients send it verbatim, which makes the "
                                  "Authorization header invalid", evidence)
    return None, KeyVerdict(ARC_KEY_NOT_SENDABLE, f"{path}: {problem}", evidence)


def _open_error(path: str, err: OSError) -> KeyVerdict:
    evidence = {"path": path, "errno": errno.errorcode.get(err.errno or 0, str(err.errno))}
    if err.errno in (errno.EACCES, errno.EPERM):
        return KeyVerdict(ARC_KEY_UNREADABLE, f"opening {path} was refused (permission denied); "
                          f"{_who(current_identity(), sys.platform)}", evidence)
    if err.errno == errno.ENOENT:
        return KeyVerdict(ARC_KEY_MISSING, f"{path} disappeared before it could be read (single-use key files are "
                          "deleted after use)", evidence)
    if err.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.ENODEV):
        return KeyVerdict(ARC_KEY_NOT_REGULAR, f"{path} is no longer a regular file ({evidence['errno']}); not read", evidence)
    return KeyVerdict(ARC_KEY_UNREADABLE, f"reading {path} failed ({evidence['errno']})", evidence)


TRAILING_NEWLINE = "ends with a line break"


def header_problem(secret: str) -> str | None:
    """Why ``Authorization: Basic <secret>`` cannot be sent verbatim, or None. HTTP clients
    (requests / http.client, as used by MSAL and azure-identity) refuse CR/LF in header values
    and can send only Latin-1."""
    if not secret:
        return "the key file is empty"
    if secret.endswith(("\n", "\r")) and not any(c in "\r\n" for c in secret.rstrip("\r\n")):
        return TRAILING_NEWLINE
    if any(c in "\r\n\0" for c in secret):
        return "the key contains line breaks or NUL characters, which cannot be sent in a header"
    try:
        secret.encode("latin-1")
    except UnicodeEncodeError:
        return "the key contains characters outside Latin-1, which HTTP clients cannot send in a header"
    return None


__all__ = ["Challenge", "KeyVerdict", "RealmVerdict", "check_realm", "default_tokens_dir", "file_type", "header_problem",
           "parse_challenge", "read_key"]
