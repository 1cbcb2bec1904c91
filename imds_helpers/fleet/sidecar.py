"""The per-host result file ("sidecar") a runbook writes next to its executed notebook.

A sidecar is one JSON object, ``Report.to_dict()`` plus host metadata::

    {
      "schema": "imds-runbook/result@1",
      "host": "web-01",                      # host this run is about
      "notebook": "01_azure_vm_imds",        # runbook that produced it
      "started_at": "2026-11-26T08:00:00Z",  # ISO 8601, UTC
      "duration_s": 3.2,
      "parameters": {...},                   # the run's parameters, redacted
      "verdict": "ok|warn|fail|skip",        # Report.to_dict() from here ...
      "target": "vm|arc|none",
      "endpoint": "http://169.254.169.254",
      "tally": {"ok": 5, "warn": 0, "fail": 0, "skip": 1},
      "platform": {...},
      "checks": [{"id", "status", "code", "title", "detail", "explanation", "fix",
                  "elapsed_ms", "evidence", "commands": {"curl", "powershell"},
                  "attempts": [...]}, ...],   # ... to here
      "run": {                                # optional; added by the runner
        "status": "ok|findings|failed|timeout|dead_kernel"
                  | a fleet host that could not be diagnosed (FLEET_STATUSES),
        "error": null | "one line",
        "duration_s": 4.1,                    # wall time of the whole host run
        "notebook_path": "/abs/web-01/web-01.ipynb" | null,
        "html_path": "/abs/web-01/web-01.html" | null
      }
    }

Runbooks call :func:`build_sidecar` and :func:`write_sidecar`; the runner and the report read
sidecars with :func:`read_sidecar`, which raises :class:`SidecarError` for anything that is not
a well-formed sidecar (the report turns that into an ``unreadable`` row, never a crash).
This module imports only the standard library and the result model (cheap).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import socket
import stat
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from imds_helpers.model import strictjson
from imds_helpers.model.errors import UsageError
from imds_helpers.model.findings import Report, Status
from imds_helpers.model.redact import PLACEHOLDER, redact_value

SIDECAR_SCHEMA = "imds-runbook/result@1"

# What imds-runbook fleet adds: hosts that could not be diagnosed, each for a named reason
# (imds_helpers.fleet.fleet_hosts says which is which); their sidecars hold no checks.
FLEET_STATUSES = ("unreachable", "auth_failed", "no_python", "collect_timeout", "collect_failed",
                  "identity_mismatch")
RUN_STATUSES = ("ok", "findings", "failed", "timeout", "dead_kernel") + FLEET_STATUSES
VERDICTS = tuple(s.value for s in Status)

# Parameter names whose values are secrets whatever they look like.
_SECRET_PARAM = re.compile(
    r"(secret|password|passwd|credential|api[_-]?key|access_token|refresh_token|id_token"
    r"|authorization|bearer)",
    re.IGNORECASE,
)
_REQUIRED = {"host": str, "notebook": str, "verdict": str, "tally": dict, "checks": list}
# A sidecar is about 25 KB, 6 levels deep; a file far beyond that is not one (strictjson
# bounds the depth and the numbers).
MAX_SIDECAR_BYTES = 8 * 1024 * 1024

# A host name becomes file and folder names (``<host>.json``, the runner's ``<out>/<host>/``):
# no separators, no leading dot (so never '.' or '..'), bounded. The runner and the runbooks
# (plain papermill too) check it here, so it can never name a path outside the results folder.
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HOST_NAME_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"


class SidecarError(ValueError):
    """A file is not a readable sidecar. ``str(err)`` is one line naming the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def check_host_name(host: Any, *, argument: str | None = "host_name") -> str:
    """``host`` if it is a safe host name (see ``HOST_NAME_RULE``), else one-line UsageError."""
    if not isinstance(host, str) or not _HOST_NAME.match(host):
        from imds_helpers.model.validate import shown

        raise UsageError(f"host name {shown(host)} must be {HOST_NAME_RULE}", argument=argument)
    return host


def local_host_name() -> str:
    """This machine's short host name made safe for file names ('localhost' if nothing is left)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0])[:128]
    return name if _HOST_NAME.match(name) else "localhost"


def now_iso() -> str:
    """The current time as an ISO 8601 UTC string (second precision), for ``started_at``."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def redact_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of run parameters safe to store: secret-named keys replaced, values redacted."""
    return {
        str(k): (PLACEHOLDER if _SECRET_PARAM.search(str(k)) and v not in (None, "")
                 else redact_value(_jsonable(v)))
        for k, v in parameters.items()
    }


def build_sidecar(
    report: Report | Mapping[str, Any],
    *,
    host: str,
    notebook: str,
    parameters: Mapping[str, Any],
    started_at: str,
    duration_s: float,
) -> dict[str, Any]:
    """The sidecar dict for one host: ``report`` (a Report or its ``to_dict()``) + metadata."""
    body = report.to_dict() if isinstance(report, Report) else dict(report)
    if not host:
        raise ValueError("host must be a non-empty string")
    sidecar: dict[str, Any] = {
        "schema": SIDECAR_SCHEMA,
        "host": str(host),
        "notebook": str(notebook),
        "started_at": str(started_at),
        "duration_s": round(float(duration_s), 3),
        "parameters": redact_parameters(parameters),
    }
    for key in ("verdict", "target", "endpoint", "tally", "platform", "checks"):
        sidecar[key] = body.get(key, {} if key in ("tally", "platform") else
                                [] if key == "checks" else "")
    for key, value in body.items():  # keep anything newer Report.to_dict() adds
        sidecar.setdefault(key, value)
    validate_sidecar(sidecar)
    return sidecar


def write_sidecar(path: str | os.PathLike[str], sidecar: Mapping[str, Any]) -> Path:
    """Write ``sidecar`` to ``path`` atomically (temporary file in the same folder + rename).

    A reader never sees a half-written file: it sees the old file, or the new one.
    """
    validate_sidecar(sidecar, str(path))
    target = Path(path)
    data = json.dumps(sidecar, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_text(target, data)
    return target


# Open without following a symlink and without blocking (a FIFO with no writer would wait
# forever); what was opened is then checked with fstat before a byte is read.
_O_READ = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
           | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0))


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """At most ``limit`` bytes of ``path`` if it is a regular file (not through a symlink).

    A result folder is input from outside: a ``*.json`` that is a FIFO, a device, or a
    symlink (to ``/dev/zero``, or anywhere) is refused with :class:`SidecarError` naming
    what it is - never a hang, never an endless read. Symlinks are not followed at all, as
    ``imds-runbook report`` does not follow symlinked folders. (The ideas of
    :func:`imds_helpers.collect.arc_keyfile.read_key`.) Other failures raise OSError.
    """
    if not getattr(os, "O_NOFOLLOW", 0) and os.path.islink(path):   # Windows: no O_NOFOLLOW
        raise SidecarError(path, "is a symlink, not followed")
    try:
        fd = os.open(path, _O_READ)
    except OSError as err:
        if err.errno == errno.ELOOP:    # O_NOFOLLOW met a symlink
            raise SidecarError(path, "is a symlink, not followed") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            from imds_helpers.collect.arc_keyfile import file_type

            raise SidecarError(path, f"is a {file_type(st.st_mode)}, not a regular file")
        chunks, size = [], 0
        while size < limit:
            chunk = os.read(fd, min(limit - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_json_file(path: str | os.PathLike[str]) -> Any:
    """The JSON value in ``path``, read with :func:`read_regular_file` and parsed with
    :mod:`imds_helpers.model.strictjson`'s bounds; :class:`SidecarError` naming the problem for
    anything that cannot be read or parsed (the report makes it an ``unreadable`` row)."""
    try:
        return strictjson.loads(read_regular_file(path, MAX_SIDECAR_BYTES + 1), max_bytes=MAX_SIDECAR_BYTES)
    except SidecarError:
        raise
    except OSError as err:
        raise SidecarError(path, f"cannot read: {err.strerror or err}") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, strictjson's bounds
        raise SidecarError(path, f"not JSON: {_first_line(err)}") from None


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and validate one sidecar; raises :class:`SidecarError` if it is not one."""
    data = load_json_file(path)
    validate_sidecar(data, str(path))
    return data


def validate_sidecar(data: Any, path: str = "<sidecar>") -> None:
    """Raise :class:`SidecarError` unless ``data`` has the sidecar shape (cheap checks)."""
    if not isinstance(data, dict):
        raise SidecarError(path, f"expected a JSON object, got {type(data).__name__}")
    schema = data.get("schema")
    if schema != SIDECAR_SCHEMA:
        raise SidecarError(path, f"schema is {schema!r}, expected {SIDECAR_SCHEMA!r}")
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind):
            raise SidecarError(path, f"field {key!r} missing or not a {kind.__name__}")
    if not data["host"]:
        raise SidecarError(path, "field 'host' is empty")
    if data["verdict"] not in VERDICTS:
        raise SidecarError(path, f"verdict {data['verdict']!r} is not one of {', '.join(VERDICTS)}")
    for i, check in enumerate(data["checks"]):
        if not isinstance(check, dict) or not isinstance(check.get("id"), str) \
                or check.get("status") not in VERDICTS:
            raise SidecarError(path, f"checks[{i}] needs an 'id' and a status in {', '.join(VERDICTS)}")
    run = data.get("run")
    if run is not None and (not isinstance(run, dict) or run.get("status") not in RUN_STATUSES):
        raise SidecarError(path, f"run.status must be one of {', '.join(RUN_STATUSES)}")


def run_status_for(verdict: str) -> str:
    """Run status of a run that completed: ``ok`` only for an ok verdict.

    A ``skip`` verdict (nothing was checked) counts as ``findings``: nothing was proven.
    """
    return "ok" if verdict == Status.OK.value else "findings"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary sibling and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _jsonable(value: Any) -> Any:
    """Parameters come from YAML: make dates, paths, tuples and sets JSON-native."""
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
