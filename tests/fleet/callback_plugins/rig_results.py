"""Ansible stdout callback for the rig's self-test: one JSON line per host result
({"host", "status": ok|failed|unreachable|skipped, "result"}), so the test reads what Ansible
decided instead of parsing a display format (`-o`, `tree` and `json` are deprecated or gone
from ansible-core)."""

from __future__ import annotations

import json
import sys

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "rig_results"

    def _emit(self, result, status: str) -> None:
        host = getattr(result, "host", None) or result._host
        data = getattr(result, "result", None)
        if not isinstance(data, dict):
            data = result._result
        line = json.dumps({"host": host.get_name(), "status": status, "result": data}, default=str)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def v2_runner_on_ok(self, result):
        self._emit(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._emit(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._emit(result, "unreachable")

    def v2_runner_on_skipped(self, result):
        self._emit(result, "skipped")
