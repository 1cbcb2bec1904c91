"""Ansible action ``imds_collect``: one host's evidence, in one command on the host.

    - imds_collect:
        probe: /abs/imds-probe.pyz            # on the controller
        out_dir: /abs/OUT                     # the bundle goes to OUT/<inventory_hostname>/evidence.json
        python: python3                       # the interpreter to look for on the host
        shell_collector: /abs/imds-collect.sh # on the controller: for hosts without that Python ("": none)
        target: vm                            # ... and collect's selectors (see the role's defaults)
      become: "{{ imds_become | bool }}"

What runs on the host is two shell commands (through Ansible's connection, with its ``become``):
the first looks for the interpreter and says which one it found and its version (a host without
Python still answers), and which of the shell collector's tools (curl, od, awk) it lacks; the
second makes a private temporary folder (``mktemp -d``, mode 0700), writes the collector into it
from standard input, runs it with the selectors under ``timeout`` when the host has it, and
removes the folder on any exit. The collector is the probe (``<python> imds-probe.pyz collect
--out -``) on a host with Python >= 3.10; else the shell collector (``sh imds-collect.sh``, POSIX
sh + curl, the same bundle; it has no ``--proxy-comparison``: the record lists that option as
dropped), when it is given and the host has its tools. The record says which one ran
(``collector``: python | shell). Nothing on the host outlives the task. Here, on the controller,
the output is kept as ``OUT/<inventory_hostname>/evidence.json`` only if it is a JSON document
that is an evidence bundle (a masked interpreter also exits non-zero; its words are not a
bundle), at most ``max_bundle_bytes``, written atomically into a folder that is not a link.

The result never holds the bundle (so no ``no_log`` is needed to keep it out of Ansible's output:
it is neither in the arguments nor in the result). It holds the host's record as the fact
``imds_fleet`` - what imds-runbook fleet reads through its callback: reach, the Python found, how
the probe ended, whether the bundle was kept, and the inventory's expectations. A host SSH cannot
reach is ``unreachable`` for Ansible as usual (with the record); a host whose evidence was not kept
is ``failed`` (the record says why); a kept bundle is the task's one change.

Standard library and Ansible only: this runs in Ansible's Python, which need not have imds_helpers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import tempfile
from collections.abc import Mapping

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

KIND = "imds-runbook/evidence"
RECORD_SCHEMA = "imds-runbook/fleet-host@1"
# OUT/<inventory_hostname>/ must be a plain folder name, and not one of the files beside it
# (imds_helpers.fleet.fleet_hosts.RESERVED_NAMES says the same).
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RESERVED_NAMES = ("evidence", "summary.csv", "summary.html", "summary.md", "summary.ipynb")
VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
LISTS = (("resources", "--resource"), ("client_ids", "--client-id"), ("object_ids", "--object-id"),
         ("msi_res_ids", "--msi-res-id"))
TEXTS = (("target", "--target"), ("timeout", "--timeout"), ("tokens_dir", "--tokens-dir"), ("endpoint", "--endpoint"))
MAX_TEXT = 4096
MAX_ITEMS = 100

# Two commands, each fixed text with its few values quoted in by run(). The first one touches
# nothing and has no input, so a connection or login that fails says why in SSH's own words (a
# command whose input is being sent when SSH gives up reports only a broken pipe).
CHECK = r"""py=__PY__
if p=$(command -v "$py" 2>/dev/null) && [ -n "$p" ]; then
  v=$("$p" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' </dev/null 2>&1 | head -n 1 | tr -d '|' | cut -c1-200)
  echo "imds-python|found|$p|$v"
else
  echo "imds-python|missing|$py|"
fi
m=""; for t in curl od awk; do command -v "$t" >/dev/null 2>&1 || m="$m $t"; done
echo "imds-shell|$m"
if command -v timeout >/dev/null 2>&1; then echo "imds-timeout|yes"; fi"""
# The collector arrives on standard input; the folder goes on any exit. No trailing newline:
# Ansible appends "&& sleep 0" to the last line.
RUN = r"""umask 077
d=$(mktemp -d 2>/dev/null) || d=$(mktemp -d -t imds-probe.XXXXXXXX) || { echo "imds-error|cannot make a temporary folder" >&2; exit 125; }
trap 'rm -rf "$d"' EXIT
trap 'exit 129' HUP INT TERM
cat > "$d/__FILE__" || { echo "imds-error|cannot write the __WHAT__ into $d" >&2; exit 125; }
__TIMEOUT__ __RUNNER__ "$d/__FILE__" __COMMAND__ __ARGS__ </dev/null"""
# The two collectors: the file written into the folder, what runs it, its command words, and how
# a selector is passed (collect takes --option=value: a value starting with '-' stays a value;
# the shell collector takes --option value).
COLLECTORS = {
    "python": {"file": "imds-probe.pyz", "what": "probe", "command": "collect --out -", "joined": True},
    "shell": {"file": "imds-collect.sh", "what": "shell collector", "command": "", "joined": False},
}
SHELL_LACKS = ("--proxy-comparison",)    # collect's options imds-collect.sh does not have


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return bool(value)


def _texts(value) -> list[str]:
    """A list parameter (a list, one string, or nothing) as a list of non-empty strings."""
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, (str, int, float)) else list(value) if isinstance(value, (list, tuple)) else None
    if items is None:
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return [str(item) for item in items if str(item)]


def selectors(args: Mapping) -> list[tuple[str, str | None]]:
    """The selectors that are set (only those), as (option, value or None for a switch)."""
    pairs: list[tuple[str, str | None]] = []
    for name, option in TEXTS:
        value = args.get(name)
        if value not in (None, ""):
            pairs.append((option, str(value)))
    for name, option in LISTS:
        items = _texts(args.get(name))
        if len(items) > MAX_ITEMS:
            raise ValueError(f"{name}: at most {MAX_ITEMS} entries")
        pairs += [(option, item) for item in items]
    if _flag(args.get("proxy_comparison")):
        pairs.append(("--proxy-comparison", None))
    for option, value in pairs:
        word = f"{option}={value}"
        if len(word) > MAX_TEXT or "\x00" in word or "\n" in word:
            raise ValueError(f"a selector longer than {MAX_TEXT} characters or with a line break: {word[:60]!r}")
    return pairs


def collector_argv(pairs: list[tuple[str, str | None]], joined: bool) -> list[str]:
    """The selectors as one collector's words: --option=value (joined) or --option value."""
    argv: list[str] = []
    for option, value in pairs:
        argv += [option] if value is None else [f"{option}={value}"] if joined else [option, value]
    return argv


def collect_argv(args: Mapping) -> list[str]:
    """collect's options for the selectors that are set (only those)."""
    return collector_argv(selectors(args), joined=True)


def _usable(version: str) -> bool:
    match = VERSION.match(version)
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= (3, 10)


def _read(path: str, what: str) -> tuple[bytes, str]:
    """A collector's bytes from the controller, or why not."""
    try:
        with open(path, "rb") as handle:
            return handle.read(), ""
    except OSError as err:
        return b"", f"cannot read the {what} {path}: {err.strerror or err}"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False       # no Ansible temp dir: the command makes and removes its own

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result.pop("invocation", None)
        task_vars = task_vars or {}
        args = self._task.args
        host = str(task_vars.get("inventory_hostname") or "")
        record = {
            "schema": RECORD_SCHEMA, "host": host, "name_ok": False,
            "reach": {"unreachable": False, "failed": False, "msg": ""},
            "python": {"state": "", "path": "", "version": "", "usable": False, "asked": str(args.get("python") or "python3")},
            "collect": {"ran": False, "rc": None, "timed_out": False, "limit_s": None, "msg": "", "stderr": "",
                        "bytes": 0, "json": False, "too_large": False},
            "collector": "", "shell": {"offered": False, "missing": "", "dropped": []},
            "written": False, "write_msg": "", "error": "", "target": str(args.get("target") or ""),
            "expect": {key: str(args.get(f"expect_{key}") or "").strip() for key in ("hostname", "smbios_uuid", "vm_id")},
        }

        def done(msg: str, **extra):
            facts = {"imds_fleet": record}
            return dict(result, ansible_facts=facts, msg=msg, **extra)

        record["name_ok"] = bool(HOST_NAME.match(host)) and host.lower() not in RESERVED_NAMES
        if not record["name_ok"]:
            return done(f"inventory name {host!r} cannot name a folder: nothing collected", failed=True)
        try:
            limit = int(float(args.get("collect_timeout") or 300))
            max_bytes = int(args.get("max_bundle_bytes") or 8 * 1024 * 1024)
            pairs = selectors(args)
            probe = str(args["probe"])
            shell_collector = os.path.normpath(str(args["shell_collector"])) if args.get("shell_collector") else ""
            out_dir = str(args["out_dir"])
        except (KeyError, TypeError, ValueError) as err:
            record["error"] = f"bad task arguments (the host's inventory variables): {str(err)[:300]}"
            return done(record["error"], failed=True)
        record["collect"]["limit_s"] = limit
        if not (os.path.isabs(probe) and os.path.isabs(out_dir)) or (shell_collector and not os.path.isabs(shell_collector)):
            record["error"] = "imds_probe, imds_shell_collector and imds_out_dir must be absolute paths on the controller"
            return done(record["error"], failed=True)
        record["shell"]["offered"] = bool(shell_collector)
        payload, record["error"] = _read(probe, "probe")
        if record["error"]:
            return done(record["error"], failed=True)

        try:
            check = self._low_level_execute_command(CHECK.replace("__PY__", shlex.quote(record["python"]["asked"])),
                                                    sudoable=True)
        except AnsibleConnectionFailure as err:
            record["reach"].update(unreachable=True, msg=str(err)[:2000])
            return done(str(err)[:2000], unreachable=True)
        lines = check["stdout"].splitlines()
        found = next((line for line in lines if line.startswith("imds-python|")), "")
        if not found:      # the command did not get that far: become (sudo) refused, no shell, ...
            record["reach"].update(failed=True, msg=(f"rc={check['rc']} {check['stderr']} {check['stdout']}")[:2000])
            return done(f"the command on the host failed (rc={check['rc']})", failed=True)
        _, state, path, version = (found + "|||").split("|")[:4]
        record["python"].update(state=state, path=path[:300], version=version.strip()[:200],
                                usable=state == "found" and _usable(version.strip()))
        missing = next((line for line in lines if line.startswith("imds-shell|")), "imds-shell|?").split("|", 1)[1]
        record["shell"]["missing"] = " ".join(missing.split())[:100]
        if record["python"]["usable"]:
            collector, runner = "python", shlex.quote(path)
        elif shell_collector and not record["shell"]["missing"]:
            collector, runner = "shell", "sh"
            record["shell"]["dropped"] = [option for option, _ in pairs if option in SHELL_LACKS]
            pairs = [(option, value) for option, value in pairs if option not in SHELL_LACKS]
            payload, record["error"] = _read(shell_collector, "shell collector")
            if record["error"]:
                return done(record["error"], failed=True)
        else:
            return done("no usable Python >= 3.10 on the host" + (
                f", and it lacks {record['shell']['missing']} for the shell collector" if shell_collector else ""),
                failed=True)
        spec = COLLECTORS[collector]
        argv = collector_argv(pairs, joined=spec["joined"])
        timeout = f"timeout -k 10 {max(1, limit)}" if "imds-timeout|yes" in lines else ""
        words = {"TIMEOUT": timeout, "RUNNER": runner, "FILE": spec["file"], "WHAT": spec["what"],
                 "COMMAND": spec["command"], "ARGS": " ".join(shlex.quote(word) for word in argv)}
        command = re.sub(r"__([A-Z]+)__", lambda m: words[m.group(1)], RUN)     # one pass: values stay as given
        record["collector"] = collector
        record["collect"]["ran"] = True
        try:
            ran = self._low_level_execute_command(command, sudoable=True, in_data=payload,
                                                  encoding_errors="surrogateescape")
        except AnsibleConnectionFailure as err:
            record["reach"].update(unreachable=True, msg=str(err)[:2000])
            return done(str(err)[:2000], unreachable=True)
        rc, stdout = ran["rc"], ran["stdout"]
        record["collect"]["stderr"] = "\n".join(line.split("|", 1)[-1] if line.startswith("imds-error|") else line
                                                 for line in ran["stderr"].splitlines())[-600:]
        record["collect"].update(rc=rc, timed_out=rc == 124, bytes=len(stdout.encode("utf-8", "surrogateescape")))
        if rc != 0:
            return done(f"the {spec['what']} exited with code {rc}", failed=True)
        return self._keep(stdout, out_dir, host, max_bytes, record, done)

    def _keep(self, stdout, out_dir, host, max_bytes, record, done):
        """The probe's output as OUT/<host>/evidence.json, if it is an evidence bundle."""
        data = stdout.encode("utf-8", "surrogateescape")
        if self._task.check_mode:      # the collection changes nothing; keeping its output would
            record["write_msg"] = "check mode: the output was not kept"
            return done(record["write_msg"], changed=True)
        if len(data) > max_bytes:
            record["collect"]["too_large"] = True
            record["write_msg"] = f"{len(data)} bytes, more than {max_bytes}"
            return done(record["write_msg"], failed=True)
        try:
            document = json.loads(data)
        except ValueError as err:
            record["write_msg"] = f"not a JSON document: {str(err)[:120]}"
            return done(record["write_msg"], failed=True)
        record["collect"]["json"] = True
        if not isinstance(document, dict) or document.get("kind") != KIND:
            record["write_msg"] = f"a JSON document, but not an evidence bundle (no kind {KIND!r})"
            return done(record["write_msg"], failed=True)
        folder = os.path.join(out_dir, host)
        dest = os.path.join(folder, "evidence.json")
        try:
            os.makedirs(folder, mode=0o755, exist_ok=True)
            if stat.S_ISLNK(os.lstat(folder).st_mode) or not os.path.isdir(folder):
                raise OSError(f"{folder} is not a folder (or is a symbolic link)")
            fd, temporary = tempfile.mkstemp(prefix=".evidence.", suffix=".tmp", dir=folder)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data if data.endswith(b"\n") else data + b"\n")
                os.chmod(temporary, 0o644)
                os.replace(temporary, dest)
            except BaseException:
                try:
                    os.unlink(temporary)
                except OSError:
                    pass
                raise
        except OSError as err:
            record["write_msg"] = f"cannot write {dest}: {getattr(err, 'strerror', None) or err}"[:300]
            return done(record["write_msg"], failed=True)
        record["written"] = True
        return done(f"evidence kept: {dest} ({len(data)} bytes)", changed=True, dest=dest)
