"""One fleet host's outcome: what Ansible saw, what status that is, and whose evidence came back.

The playbook (``imds_helpers/fleet/ansible/``) ends every host with a record (the ``imds_fleet``
fact, passed on as a JSON line by its callback): whether SSH reached the host, which Python it
found, which collector ran (``collector``: ``python`` - the probe - or ``shell`` - imds-collect.sh,
on a host without Python >= 3.10), how it ended, whether the bundle was written. :func:`classify` turns a record into
a status - ``collected``, or one of :data:`imds_helpers.fleet.sidecar.FLEET_STATUSES` with the
reason in one line:

=================  ===============================================================
unreachable        SSH could not connect (refused, timed out, no route, name unknown)
auth_failed        SSH refused the login (key, host key) or privilege escalation failed
no_python          no Python >= 3.10 on the host and the shell collector could not run there
                   either (the reason says which Python was found and which tool was missing)
collect_timeout    the probe ran longer than ``imds_collect_timeout`` and was stopped
collect_failed     the probe failed, printed no JSON document, or the bundle could not be
                   written or read back (also: an inventory name no folder can carry)
identity_mismatch  the bundle is not from the machine the inventory describes (its
                   ``imds_expect_*``), or two inventory names reached the same machine
=================  ===============================================================

Identity is checked, not assumed: :func:`identity_check` compares a bundle's host with the
inventory's expectations; :func:`same_machines` finds inventory names whose bundles come from
one machine. The fleet keeps what it decided beside each bundle (``_fleet.json``,
:func:`write_record`); a runbook rendering that bundle under its inventory name accepts the
name only with that record (:func:`inventory_alias`), so a plain parameter file still cannot
put another machine's name on a report. Standard library and the model only: runbook kernels
import this module.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from imds_helpers.fleet.sidecar import SidecarError, atomic_write_text, check_host_name, load_json_file
from imds_helpers.model.errors import UsageError
from imds_helpers.model.redact import redact_text
from imds_helpers.model.textsafe import terminal_safe

RECORD_SCHEMA = "imds-runbook/fleet-host@1"
RECORD_FILE = "_fleet.json"          # a host name cannot start with '_': never a sidecar's name
EVIDENCE_FILE = "evidence.json"
COLLECTED = "collected"
# Names the playbook gives no folder (roles/imds_collect/tasks/main.yml says the same): the
# bundle's own file name, and the fleet's files beside the host folders.
RESERVED_NAMES = ("evidence", "summary.csv", "summary.html", "summary.md", "summary.ipynb")
MAX_REASON = 300

_CONNECT_PREFIXES = ("Task failed: ", "Failed to connect to the host via ssh: ", "non-zero return code")
_AUTH = re.compile(r"permission denied|authentication failed|too many authentication failures"
                   r"|no supported authentication methods|host key verification failed"
                   r"|remote host identification has changed|no matching host key"
                   r"|incorrect sudo password|missing sudo password|a password is required"
                   r"|privilege escalation|become|incorrect su password", re.IGNORECASE)
_HOST_KEY = re.compile(r"host key verification failed|remote host identification has changed", re.IGNORECASE)
_BECOME = re.compile(r"sudo|privilege escalation|become|\bsu\b", re.IGNORECASE)
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class IdentityCheck:
    """One identity field compared: ``match``, ``mismatch`` or ``unverified`` (not in the bundle)."""

    field: str                   # hostname | smbios_uuid | vmId
    expected: str
    found: str | None
    result: str

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "expected": self.expected, "found": self.found, "result": self.result}


@dataclass(frozen=True)
class Outcome:
    """One inventory host after the collection: its status (``collected`` or a fleet status),
    the reason, and what its bundle says about the machine."""

    host: str                            # the inventory name
    status: str
    reason: str = ""
    evidence_path: str | None = None     # OUT/<host>/evidence.json, when collected
    bundle_host: Mapping[str, Any] = field(default_factory=dict)   # the bundle's host object
    checks: tuple[IdentityCheck, ...] = ()
    notes: tuple[str, ...] = ()
    record: Mapping[str, Any] = field(default_factory=dict)        # the playbook's record

    @property
    def collected(self) -> bool:
        return self.status == COLLECTED

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "status": self.status, "reason": self.reason or None,
                "evidence_path": self.evidence_path, "bundle_host": dict(self.bundle_host),
                "identity": [c.to_dict() for c in self.checks], "notes": list(self.notes),
                "record": dict(self.record)}


# --------------------------------------------------------------------------- classification


def folder_name_ok(host: str) -> bool:
    """Whether the playbook gave ``host`` a folder: the runner's host-name rule, not reserved."""
    try:
        check_host_name(host, argument=None)
    except UsageError:
        return False
    return host.lower() not in RESERVED_NAMES


def one_line(text: Any, limit: int = MAX_REASON) -> str:
    """Outside text (SSH messages, a probe's stderr) as one bounded, redacted, terminal-safe line."""
    line = " ".join(redact_text(str(text or "")).split())
    line = terminal_safe(line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


_TASK_TIMEOUT = re.compile(r"^(The task timed out|Timed out) after \d+", re.IGNORECASE)
# Ansible's words around SSH's when the connection fails while it sends a command's input.
_SEND_FAILED = re.compile(r'^Data could not be sent to remote host "[^"]*"\. Make sure this host can be reached '
                          r'over ssh: ')


def _connection_message(msg: str) -> str:
    text = str(msg or "").strip()
    for prefix in _CONNECT_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    return _SEND_FAILED.sub("", text).strip()


def _telling_line(text: str, pattern: re.Pattern[str] | None = None) -> str:
    """The line of a multi-line SSH message that says what happened: the first matching
    ``pattern``, else the last ``ssh:`` line, else the last line (banners and warnings
    such as "Warning: Permanently added ..." come first)."""
    lines = [line.strip(" @\t") for line in text.splitlines() if line.strip(" @\t")]
    if pattern is not None:
        for line in lines:
            if pattern.search(line):
                return line
    ssh_lines = [line for line in lines if line.lower().startswith("ssh:")]
    return ssh_lines[-1] if ssh_lines else (lines[-1] if lines else "")


def classify_connection(msg: str) -> tuple[str, str]:
    """SSH's (or become's) message -> ``unreachable`` or ``auth_failed``, with the reason."""
    text = _connection_message(msg)
    if _HOST_KEY.search(text):
        fingerprint = re.search(r"SHA256:[A-Za-z0-9+/=]+", text)
        sent = f"; the host sent {fingerprint.group()}" if fingerprint else ""
        if re.search(r"identification has changed", text, re.IGNORECASE):
            return "auth_failed", one_line(f"the host key does not match known_hosts (REMOTE HOST IDENTIFICATION HAS "
                                           f"CHANGED{sent}): a reinstalled host or a man in the middle - check the "
                                           f"key before you update known_hosts")
        return "auth_failed", one_line(f"host key verification failed{sent}: {_telling_line(text, _HOST_KEY)}")
    if _AUTH.search(text):
        line = _telling_line(text, _AUTH)
        if _BECOME.search(line) and not re.search(r"permission denied \(", line, re.IGNORECASE):
            return "auth_failed", one_line(f"privilege escalation (become) failed: {line}")
        return "auth_failed", one_line(f"SSH authentication failed: {line}")
    return "unreachable", one_line(_telling_line(text) or "SSH could not connect (no message)")


def _found_python(python: Mapping[str, Any]) -> str:
    state = str(python.get("state") or "")
    path = str(python.get("path") or python.get("asked") or "python3")
    version = str(python.get("version") or "")
    if state == "missing":
        return f"none; {path} is not on the PATH"
    if state == "found" and _VERSION.match(version):
        return f"{path} {version}"
    if state == "found":
        return f"{path}, which does not run: {version or 'no output'}"
    return "nothing: the check gave no answer"


# The record's typed fields. ansible-core 2.19 keeps a template's type inside set_fact's nested
# values; 2.17 and 2.18 give numbers (and sometimes booleans) as text: read both the same way.
_FLAGS = (("name_ok",), ("written",), ("reach", "unreachable"), ("reach", "failed"), ("python", "usable"),
          ("collect", "ran"), ("collect", "timed_out"), ("collect", "json"), ("collect", "too_large"),
          ("shell", "offered"))
_INTS = (("collect", "rc"), ("collect", "bytes"), ("collect", "limit_s"))
_INT_TEXT = re.compile(r"^-?\d{1,12}$")


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value) if isinstance(value, (bool, int, float)) else False


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.match(value.strip()):
        return int(value.strip())
    return None


def normalize_record(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """A playbook record with its flags as booleans and its numbers as integers (None where a
    number is missing or not one), whichever ansible-core wrote it; {} for no record."""
    if not isinstance(record, Mapping):
        return {}
    out: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in record.items()}
    for path in _FLAGS + _INTS:
        holder = out if len(path) == 1 else out.get(path[0])
        if isinstance(holder, dict) and path[-1] in holder:
            holder[path[-1]] = _flag(holder[path[-1]]) if path in _FLAGS else _int(holder[path[-1]])
    return out


def classify(record: Mapping[str, Any] | None, failure: str = "") -> tuple[str, str]:
    """The status and reason of one host from its playbook record (None: Ansible ended without
    one; ``failure`` is the message of the task that stopped the host, if any)."""
    record = normalize_record(record)
    if not record:
        if failure:
            said = _connection_message(failure)
            if _TASK_TIMEOUT.match(said):      # the task keyword's last resort, behind the host's `timeout`
                return "collect_timeout", one_line(f"Ansible stopped waiting for the collection: {said}")
            status, reason = classify_connection(failure)
            if status == "auth_failed":
                return status, reason
            return "collect_failed", one_line(f"Ansible stopped on this host: {said}")
        return "collect_failed", "Ansible ended without a result for this host (see _ansible/ansible.log)"
    host = str(record.get("host") or "")
    if not record.get("name_ok", True):
        return "collect_failed", one_line(
            f"the inventory name {host!r} cannot name a folder (1-128 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit; not {', '.join(RESERVED_NAMES)}): give the host a plain name "
            f"and its address in ansible_host")
    if record.get("error"):       # stopped before anything ran (the task's own arguments)
        return "collect_failed", one_line(str(record["error"]))
    reach = _mapping(record.get("reach"))
    if reach.get("unreachable"):
        return classify_connection(str(reach.get("msg") or ""))
    if reach.get("failed"):
        status, reason = classify_connection(str(reach.get("msg") or ""))
        if status == "auth_failed":
            return status, reason
        return "collect_failed", one_line(f"the Python check failed: {_connection_message(str(reach.get('msg') or ''))}")
    python = _mapping(record.get("python"))
    shell = record.get("collector") == "shell"
    if not python.get("usable") and not shell:
        return "no_python", one_line(f"no usable Python >= 3.10 (found: {_found_python(python)}){_no_shell(record)}")
    probe = "the shell collector" if shell else "the probe"
    collect = _mapping(record.get("collect"))
    if collect.get("timed_out"):
        return "collect_timeout", one_line(
            f"the collection ran longer than {collect.get('limit_s') or '?'} s and was stopped (imds_collect_timeout)")
    rc = collect.get("rc")
    if not collect.get("ran"):
        return "collect_failed", f"{probe} did not run"
    if rc not in (0, None):
        said = _last_line(collect.get("stderr")) or _connection_message(str(collect.get("msg") or ""))
        what = f"could not start {probe}" if rc in (126, 127) else f"{probe} exited with code {rc}"
        return "collect_failed", one_line(f"{what}: {said}" if said else what)
    if rc is None:
        return "collect_failed", one_line(
            f"{probe} gave no exit code: {_connection_message(str(collect.get('msg') or '')) or 'no message'}")
    said = str(record.get("write_msg") or "") or _last_line(collect.get("stderr"))
    if collect.get("too_large"):
        return "collect_failed", one_line(f"{probe} printed {collect.get('bytes')} bytes, more than a bundle may hold")
    if not collect.get("json"):
        return "collect_failed", one_line(
            f"{probe}'s output is not a JSON document ({collect.get('bytes') or 0} bytes): {said}".rstrip(": "))
    if not record.get("written"):
        return "collect_failed", one_line(f"{probe}'s output was not kept: {said or 'no message'}")
    return COLLECTED, ""


def _no_shell(record: Mapping[str, Any]) -> str:
    """Why the shell collector did not take over ('' for a record from before it could)."""
    shell = _mapping(record.get("shell"))
    if "offered" not in shell:
        return ""
    if not shell.get("offered"):
        return "; no shell collector was given (imds_shell_collector is empty)"
    missing = " ".join(str(shell.get("missing") or "").split())
    return f"; the shell collector needs {missing or 'curl, od and awk'}, which the host lacks" if missing else ""


def collector_notes(record: Mapping[str, Any]) -> tuple[str, ...]:
    """What a reader of a host collected by the shell collector should know: that it was, why,
    and the options it does not have (dropped from the host's selectors)."""
    record = normalize_record(record)
    if record.get("collector") != "shell" or not record.get("written"):
        return ()
    python = _mapping(record.get("python"))
    notes = [f"collected by the shell collector (imds-collect.sh): no usable Python >= 3.10 "
             f"(found: {_found_python(python)})"]
    dropped = _mapping(record.get("shell")).get("dropped")
    dropped = [str(option) for option in dropped if option] if isinstance(dropped, (list, tuple)) else []
    if dropped:
        notes.append(f"not collected: {', '.join(dropped)} (the shell collector has no such option)")
    return tuple(one_line(n) for n in notes)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _last_line(text: Any) -> str:
    lines = [line for line in str(text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# --------------------------------------------------------------------------- identity


def expectations(record: Mapping[str, Any]) -> dict[str, str]:
    """The inventory's ``imds_expect_*`` in the record, as bundle host fields -> expected value."""
    expect = _mapping(record.get("expect"))
    pairs = (("hostname", "hostname"), ("smbios_uuid", "smbios_uuid"), ("vmId", "vm_id"))
    return {name: str(expect.get(key)).strip() for name, key in pairs if str(expect.get(key) or "").strip()}


def _uuid(value: Any) -> str:
    return re.sub(r"[{}\s]", "", str(value or "")).lower()


def _same(field_name: str, expected: str, found: Any) -> bool:
    if field_name == "hostname":
        from imds_helpers.runbooks.runbook import same_host

        return same_host(expected, str(found))
    return _uuid(expected) == _uuid(found)


def identity_check(bundle_host: Mapping[str, Any], expected: Mapping[str, str]) -> tuple[IdentityCheck, ...]:
    """Each expectation against the bundle's host: equal (hostnames: short or full name,
    case-insensitively; UUIDs: case and braces ignored), different, or not in the bundle."""
    checks = []
    for name, value in expected.items():
        found = bundle_host.get(name)
        if found in (None, ""):
            checks.append(IdentityCheck(name, value, None, "unverified"))
        else:
            checks.append(IdentityCheck(name, value, str(found), "match" if _same(name, value, found) else "mismatch"))
    return tuple(checks)


def same_machines(bundles: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Inventory names whose bundles come from one machine: name -> the other names.

    One machine: the same vmId; or, when a vmId is missing on either side (IMDS did not
    answer), the same SMBIOS UUID *and* host name. The SMBIOS UUID alone is not enough:
    containers and network namespaces on one physical host share it, with their own vmIds
    and names."""
    names = sorted(bundles)
    found: dict[str, list[str]] = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ha, hb = bundles[a], bundles[b]
            va, vb = _uuid(ha.get("vmId")), _uuid(hb.get("vmId"))
            if va and vb:
                same = va == vb
            else:
                sa, sb = _uuid(ha.get("smbios_uuid")), _uuid(hb.get("smbios_uuid"))
                same = bool(sa) and sa == sb and _same("hostname", str(ha.get("hostname") or ""), hb.get("hostname") or "")
            if same:
                found.setdefault(a, []).append(b)
                found.setdefault(b, []).append(a)
    return found


def identity_problem(checks: Sequence[IdentityCheck], twins: Sequence[str], bundle_host: Mapping[str, Any]) -> str:
    """The one-line reason for ``identity_mismatch`` ('' when the identity holds)."""
    parts = [f"the inventory expects {c.field} {c.expected!r}, the bundle was collected on {c.found!r}"
             for c in checks if c.result == "mismatch"]
    if twins:
        key = "vmId" if bundle_host.get("vmId") else "SMBIOS UUID and host name"
        value = bundle_host.get("vmId") or bundle_host.get("smbios_uuid")
        parts.append(f"the same machine as {', '.join(twins)} ({key} {value}): two inventory names reach one machine")
    return one_line("; ".join(parts), 500) if parts else ""


def identity_notes(host: str, checks: Sequence[IdentityCheck], bundle_host: Mapping[str, Any]) -> tuple[str, ...]:
    """What a reader should know although the identity holds (unverifiable fields, an alias)."""
    notes = [f"{c.field} not in the bundle: the inventory's {c.expected!r} could not be checked"
             for c in checks if c.result == "unverified"]
    hostname = str(bundle_host.get("hostname") or "")
    if hostname:
        from imds_helpers.runbooks.runbook import same_host

        if not same_host(host, hostname):
            notes.append(f"inventory name {host!r}, collected on {hostname!r}")
    return tuple(one_line(n) for n in notes)


# --------------------------------------------------------------------------- the record beside the bundle


def write_record(folder: Path, outcome: Outcome, *, alias: bool) -> Path:
    """``folder/_fleet.json``: what the fleet decided about this host. ``alias``: the bundle may
    be rendered under the inventory name (collected, identity not contradicted)."""
    host = dict(outcome.bundle_host)
    body = {
        "schema": RECORD_SCHEMA,
        "inventory_hostname": outcome.host,
        "status": outcome.status,
        "reason": outcome.reason or None,
        "evidence": EVIDENCE_FILE if outcome.evidence_path else None,
        "bundle": {key: host.get(key) for key in ("hostname", "smbios_uuid", "vmId", "resourceId", "collected_at")},
        "identity": [c.to_dict() for c in outcome.checks],
        "notes": list(outcome.notes),
        "alias": alias,
        "ansible": dict(outcome.record),
    }
    path = folder / RECORD_FILE
    atomic_write_text(path, json.dumps(body, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def read_record(folder: Path) -> dict[str, Any] | None:
    """``folder/_fleet.json`` if it is a fleet record (None otherwise: absent, unreadable, other)."""
    try:
        data = load_json_file(folder / RECORD_FILE)
    except SidecarError:
        return None
    return data if isinstance(data, dict) and data.get("schema") == RECORD_SCHEMA else None


def inventory_alias(evidence_path: str | os.PathLike[str], host_name: str, bundle: Mapping[str, Any]) -> bool:
    """Whether the fleet vouched that ``evidence_path`` is inventory host ``host_name``'s bundle:
    its ``_fleet.json`` beside the bundle names that host and exactly this bundle (file name,
    host name, vmId and collection time) and found no identity problem."""
    path = Path(evidence_path)
    record = read_record(path.parent)
    if record is None or record.get("alias") is not True:
        return False
    ident = _mapping(bundle.get("host"))
    vouched = _mapping(record.get("bundle"))
    return (record.get("inventory_hostname") == host_name and record.get("evidence") == path.name
            and vouched.get("hostname") == ident.get("hostname") and vouched.get("vmId") == ident.get("vmId")
            and vouched.get("collected_at") == bundle.get("started_at"))


def bundle_identity(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The bundle's host object plus when it was collected (what the record vouches for)."""
    ident = dict(_mapping(bundle.get("host")))
    ident["collected_at"] = bundle.get("started_at")
    return ident


__all__ = [
    "COLLECTED", "EVIDENCE_FILE", "IdentityCheck", "Outcome", "RECORD_FILE", "RECORD_SCHEMA", "RESERVED_NAMES", "bundle_identity",
    "classify", "classify_connection", "collector_notes", "expectations", "identity_check", "identity_notes", "identity_problem",
    "folder_name_ok", "normalize_record", "inventory_alias", "one_line", "read_record", "same_machines", "write_record",
]
