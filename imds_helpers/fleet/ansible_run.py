"""Run the collection playbook with ``ansible-playbook`` and follow its per-host records.

The playbook and its callback ship in ``imds_helpers/fleet/ansible/``. :func:`run_playbook`
starts ``ansible-playbook`` (the one next to this Python, else the first on the PATH) in its own
process group, with Ansible's output going to ``<work>/ansible.log`` and the callback's JSON lines
to ``<work>/events.jsonl``; it reads those lines while Ansible runs and hands each host's record
to ``on_record`` as it arrives. Per-host results therefore never depend on parsing Ansible's
human output, and a host Ansible drops without a record is still named (from the play's host
list and the failure event). Ctrl-C or an error stops Ansible and everything it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from imds_helpers.model.errors import UsageError

PLAYBOOK_DIR = Path(__file__).resolve().parent / "ansible"
PLAYBOOK = PLAYBOOK_DIR / "collect.yml"
EVENTS_ENV = "IMDS_RUNBOOK_FLEET_EVENTS"
POLL_S = 0.2
MAX_EVENT_LINE = 256 * 1024          # a record is about 1 KB; a longer line is not ours
MAX_LOG_TAIL = 64 * 1024

Record = Mapping[str, Any]


@dataclass(frozen=True)
class PlaybookRun:
    """What one ``ansible-playbook`` run reported."""

    command: tuple[str, ...]
    returncode: int
    hosts: tuple[str, ...]                      # the play's hosts, inventory order
    records: Mapping[str, Record]               # host -> its record (the role's last task)
    failures: Mapping[str, str]                 # host -> message of a task that stopped it
    arrived_s: Mapping[str, float]              # host -> seconds from the start to its record
    duration_s: float
    log_path: str
    events_path: str
    ended: bool                                 # the playbook reached its end (stats event)
    problems: tuple[str, ...] = field(default_factory=tuple)   # event lines that were not ours

    def to_dict(self) -> dict[str, Any]:
        return {"command": list(self.command), "returncode": self.returncode, "hosts": list(self.hosts),
                "records": {h: dict(r) for h, r in self.records.items()}, "failures": dict(self.failures),
                "arrived_s": {h: round(s, 3) for h, s in self.arrived_s.items()},
                "duration_s": round(self.duration_s, 3), "log_path": self.log_path,
                "events_path": self.events_path, "ended": self.ended, "problems": list(self.problems)}


def find_ansible_playbook() -> str:
    """``ansible-playbook`` beside this interpreter (a venv's bin/), else on the PATH."""
    beside = Path(sys.executable).parent / ("ansible-playbook.exe" if os.name == "nt" else "ansible-playbook")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("ansible-playbook")
    if found:
        return found
    raise UsageError("ansible-playbook not found next to this Python or on the PATH: "
                     "pip install 'imds-runbook[fleet]' (ansible-core) in this environment")


def playbook_command(inventory: str, *, extra_vars_file: Path, limit: str | None = None,
                     forks: int | None = None, extra_args: Sequence[str] = (),
                     executable: str | None = None) -> list[str]:
    """The ``ansible-playbook`` command line (the operator's own options last, so they win)."""
    command = [executable or find_ansible_playbook(), "-i", inventory, str(PLAYBOOK), "-e", f"@{extra_vars_file}"]
    if limit:
        command += ["--limit", limit]
    if forks:
        command += ["--forks", str(forks)]
    return command + list(extra_args)


class EventReader:
    """Complete JSON lines appended to the events file since the last :meth:`read`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.problems: list[str] = []

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_EVENT_LINE:
            self.problems.append(f"an event line longer than {MAX_EVENT_LINE} bytes was dropped")
            self._partial = b""
        events = []
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line) if len(line) <= MAX_EVENT_LINE else None
            except ValueError:
                event = None
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                events.append(event)
            else:
                self.problems.append("an event line that is not a JSON object was dropped")
        return events


def run_playbook(command: Sequence[str], *, work_dir: Path, env: Mapping[str, str] | None = None,
                 on_record: Callable[[str, Record, float], None] | None = None,
                 on_start: Callable[[Sequence[str]], None] | None = None) -> PlaybookRun:
    """Run ``command`` (from :func:`playbook_command`) to the end, following its events.

    ``on_start(hosts)`` is called once the play's host list is known, ``on_record(host, record,
    seconds)`` as each host's record arrives. Raises UsageError when ``ansible-playbook`` cannot
    be started."""
    work_dir.mkdir(parents=True, exist_ok=True)
    events_path = work_dir / "events.jsonl"
    log_path = work_dir / "ansible.log"
    events_path.unlink(missing_ok=True)
    environment = dict(os.environ if env is None else env)
    environment[EVENTS_ENV] = str(events_path)
    environment.setdefault("ANSIBLE_RETRY_FILES_ENABLED", "False")
    reader = EventReader(events_path)
    hosts: list[str] = []
    records: dict[str, Record] = {}
    failures: dict[str, str] = {}
    arrived: dict[str, float] = {}
    ended = False
    started_hosts = False
    t0 = time.monotonic()

    def consume(events: list[dict[str, Any]]) -> None:
        nonlocal ended, started_hosts
        for event in events:
            kind = event.get("event")
            host = event.get("host")
            if kind == "start" and isinstance(event.get("hosts"), list):
                for name in event["hosts"]:
                    if isinstance(name, str) and name not in hosts:
                        hosts.append(name)
                if hosts and not started_hosts:
                    started_hosts = True
                    if on_start is not None:
                        on_start(tuple(hosts))
            elif kind == "record" and isinstance(host, str) and isinstance(event.get("record"), dict):
                if host not in hosts:
                    hosts.append(host)
                records[host] = event["record"]
                arrived[host] = time.monotonic() - t0
                if on_record is not None:
                    on_record(host, event["record"], arrived[host])
            elif kind in ("failed", "unreachable") and isinstance(host, str):
                failures.setdefault(host, str(event.get("msg") or kind))
            elif kind == "end":
                ended = True

    with open(log_path, "wb") as log:
        try:
            # In the caller's folder: its ansible.cfg and relative inventory paths are the operator's.
            process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, env=environment, start_new_session=True)
        except OSError as err:
            raise UsageError(f"cannot start {command[0]}: {err.strerror or err}") from None
        try:
            while process.poll() is None:
                consume(reader.read())
                time.sleep(POLL_S)
            consume(reader.read())
        except BaseException:
            _stop(process)
            raise
    return PlaybookRun(
        command=tuple(command), returncode=int(process.returncode), hosts=tuple(hosts), records=records,
        failures=failures, arrived_s=arrived, duration_s=time.monotonic() - t0, log_path=str(log_path),
        events_path=str(events_path), ended=ended, problems=tuple(dict.fromkeys(reader.problems)),
    )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM Ansible's process group (its forks and SSH clients), SIGKILL what is left."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except (OSError, AttributeError):
            try:
                process.send_signal(sig)
            except OSError:
                pass
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def log_problem(log_path: str | os.PathLike[str]) -> str:
    """The most telling line of a failed Ansible run's output: its first ERROR, else the last
    warning (e.g. an inventory that did not parse), else the last line."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - MAX_LOG_TAIL))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("ERROR", "[ERROR]"):
        for line in lines:
            if line.startswith(marker) or line.startswith(f"[{marker}"):
                return line
    warnings = [line for line in lines if line.startswith("[WARNING]")]
    if warnings:
        return warnings[-1]
    return lines[-1] if lines else ""


__all__ = ["EVENTS_ENV", "EventReader", "PLAYBOOK", "PLAYBOOK_DIR", "PlaybookRun", "find_ansible_playbook",
           "log_problem", "playbook_command", "run_playbook"]
