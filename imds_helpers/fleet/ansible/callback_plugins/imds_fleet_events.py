"""Ansible callback: one JSON line per event imds-runbook fleet needs, as it happens.

Active only when ``IMDS_RUNBOOK_FLEET_EVENTS`` names a file (imds-runbook fleet sets it); it
loads by itself, beside the playbook (``CALLBACK_NEEDS_ENABLED = False``), and changes nothing
in Ansible's own output. Lines::

    {"event": "start", "t": ..., "hosts": ["web-01", ...]}                   # a play starts
    {"event": "record", "t": ..., "host": "web-01", "record": {...}}          # the imds_fleet fact
    {"event": "failed" | "unreachable", "t": ..., "host": ..., "task": ..., "msg": "..."}   # not ignored
    {"event": "end", "t": ..., "stats": {"web-01": {"ok": 4, "failures": 0, ...}}}

Only the ``imds_fleet`` fact (the record action_plugins/imds_collect.py builds) and the messages
of failures without one are written - never a task's whole result (the bundle is never in a
result either). Messages are bounded and
anything shaped like a bearer token is cut out. Standard library only: it runs in Ansible's
Python, which need not have imds_helpers.
"""

from __future__ import annotations

import json
import os
import re
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: imds_fleet_events
    type: notification
    short_description: JSON lines for imds-runbook fleet
    description:
        - Writes one JSON line per host outcome to the file named by IMDS_RUNBOOK_FLEET_EVENTS.
"""

ENV = "IMDS_RUNBOOK_FLEET_EVENTS"
MAX_MSG = 600
_TOKENISH = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.?[A-Za-z0-9_-]*|(?i:bearer)\s+\S+")


def _text(value: object, limit: int = MAX_MSG) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return _TOKENISH.sub("<redacted>", text)[:limit]


def _result(result):
    data = getattr(result, "result", None)   # ansible-core >= 2.19
    return data if isinstance(data, dict) else getattr(result, "_result", {}) or {}


def _host(result) -> str:
    host = getattr(result, "host", None) or getattr(result, "_host", None)
    return host.get_name() if host is not None else ""


def _task(result) -> str:
    task = getattr(result, "task", None) or getattr(result, "_task", None)
    return task.get_name() if task is not None else ""


def _plain(value, depth: int = 0):
    """The record as plain JSON values (bounded depth and text)."""
    if depth > 6:
        return None
    if isinstance(value, dict):
        return {str(k)[:100]: _plain(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in list(value)[:50]]
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    return _text(value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "imds_fleet_events"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._path = os.environ.get(ENV) or ""
        self._play = None

    def _emit(self, event: dict) -> None:
        if not self._path:
            return
        event["t"] = round(time.time(), 3)
        line = json.dumps(event, ensure_ascii=True, sort_keys=True) + "\n"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self._path, flags, 0o600)
            try:
                os.write(fd, line.encode("ascii"))
            finally:
                os.close(fd)
        except OSError as err:   # a callback must never break the play
            self._display.warning(f"imds_fleet_events: cannot write {self._path}: {err}")

    def v2_playbook_on_play_start(self, play) -> None:
        self._play = play
        hosts: list[str] = []
        try:
            inventory = play.get_variable_manager()._inventory
            hosts = [h.get_name() for h in inventory.get_hosts(play.hosts)]
        except Exception:   # the host list is only for progress ("3/20")
            pass
        self._emit({"event": "start", "play": _text(play.get_name(), 200), "hosts": hosts})

    def _record(self, result) -> bool:
        """The host's record (the imds_fleet fact of the collection task), if this result has it."""
        facts = _result(result).get("ansible_facts")
        if isinstance(facts, dict) and isinstance(facts.get("imds_fleet"), dict):
            self._emit({"event": "record", "host": _host(result), "record": _plain(facts["imds_fleet"])})
            return True
        return False

    def v2_runner_on_ok(self, result) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:
        if not self._record(result) and not ignore_errors:
            self._failure("failed", result)

    def v2_runner_on_unreachable(self, result) -> None:
        if not self._record(result):
            self._failure("unreachable", result)

    def _failure(self, kind: str, result) -> None:
        data = _result(result)
        msg = data.get("msg") or data.get("stderr") or data.get("censored") or ""
        self._emit({"event": kind, "host": _host(result), "task": _text(_task(result), 200), "msg": _text(msg)})

    def v2_playbook_on_stats(self, stats) -> None:
        summary = {}
        for host in sorted(stats.processed):
            summary[host] = {k: int(v) for k, v in stats.summarize(host).items() if isinstance(v, int)}
        self._emit({"event": "end", "stats": summary})
