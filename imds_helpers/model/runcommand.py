"""What Azure Run Command prints, unwrapped to the script's output, and evidence read from any
of the forms ``imds-runbook analyze`` accepts.

The shapes (fixtures in tests/fixtures/runcommand/, with their sources in its README):

* ``az vm run-command invoke`` on Linux: ``{"value": [{"code": "ProvisioningState/succeeded",
  "message": "Enable succeeded: \\n[stdout]\\n<stdout>\\n[stderr]\\n<stderr>", ...}]}``;
  azure-cli 2.0.x printed the same entries under ``"output"``.
* ``az vm run-command invoke`` on Windows: entries ``ComponentStatus/StdOut/succeeded`` and
  ``ComponentStatus/StdErr/succeeded``, each ``message`` one stream.
* ``az connectedmachine run-command create/show`` and ``az vm run-command create/show
  --instance-view`` (managed Run Command): ``instanceView`` (or ``properties.instanceView``)
  with ``executionState``, ``exitCode``, ``output`` and ``error``.

The action form keeps only the last 4,096 bytes of the output: a whole bundle rarely survives
it, a digest (:mod:`.digest`) always does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imds_helpers.model import digest
from imds_helpers.model import evidence as ev
from imds_helpers.model import strictjson
from imds_helpers.model.errors import UsageError

STDOUT_MARK = "[stdout]\n"
STDERR_MARK = "\n[stderr]\n"
FIRST_LINE_CHARS = 200


@dataclass(frozen=True)
class RunCommandOutput:
    """The script's streams as Run Command returned them (``form`` names the shape)."""

    form: str          # "invoke-linux" | "invoke-windows" | "instance-view"
    stdout: str
    stderr: str
    exit_code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"form": self.form, "stdout_chars": len(self.stdout), "stderr_chars": len(self.stderr),
                "exit_code": self.exit_code}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _invoke(entries: list[dict[str, Any]]) -> RunCommandOutput | None:
    stdout = stderr = None
    for entry in entries:
        code, message = entry["code"], _text(entry.get("message"))
        if code.startswith("ProvisioningState/"):
            start = message.find(STDOUT_MARK)
            if start < 0:
                return RunCommandOutput("invoke-linux", "", message)
            rest = message[start + len(STDOUT_MARK):]
            if rest.startswith(STDERR_MARK[1:]):           # nothing on stdout
                return RunCommandOutput("invoke-linux", "", rest[len(STDERR_MARK) - 1:])
            # The evidence never holds a bare "\n[stderr]\n" (JSON escapes line breaks; base64
            # has no brackets): the first one ends stdout, whatever stderr then holds.
            cut = rest.find(STDERR_MARK)
            if cut < 0:
                return RunCommandOutput("invoke-linux", rest, "")
            return RunCommandOutput("invoke-linux", rest[:cut], rest[cut + len(STDERR_MARK):])
        if code.startswith("ComponentStatus/StdOut/"):
            stdout = message
        elif code.startswith("ComponentStatus/StdErr/"):
            stderr = message
    if stdout is None and stderr is None:
        return None
    return RunCommandOutput("invoke-windows", _lines(stdout or ""), _lines(stderr or ""))


def _lines(text: str) -> str:
    """Older Windows answers carried line breaks as the two characters backslash and n."""
    return text.replace("\\n", "\n") if "\n" not in text and "\\n" in text else text


def unwrap(document: Any) -> RunCommandOutput | None:
    """The script's output inside a parsed Run Command answer; None when it is not one."""
    if not isinstance(document, dict):
        return None
    for key in ("value", "output"):
        entries = document.get(key)
        if (isinstance(entries, list) and entries
                and all(isinstance(e, dict) and isinstance(e.get("code"), str) for e in entries)):
            found = _invoke(entries)
            if found is not None:
                return found
    properties = document.get("properties")
    instance = document.get("instanceView")
    if instance is None and isinstance(properties, dict):
        instance = properties.get("instanceView")
    if isinstance(instance, dict) and ("output" in instance or "error" in instance or "executionState" in instance):
        code = instance.get("exitCode")
        return RunCommandOutput("instance-view", _text(instance.get("output")), _text(instance.get("error")),
                                code if isinstance(code, int) and not isinstance(code, bool) else None)
    return None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "nothing"
    line = lines[0]
    return repr(line[:FIRST_LINE_CHARS] + ("..." if len(line) > FIRST_LINE_CHARS else ""))


def _inner(out: RunCommandOutput) -> dict[str, Any]:
    if digest.is_digest(out.stdout):
        return digest.decode(out.stdout)
    if "{" in out.stdout:
        try:
            return ev.load(out.stdout[out.stdout.index("{"):].strip())
        except ev.BadBundle as err:
            raise ev.BadBundle(f"the Run Command output's stdout is not a whole evidence bundle ({err}); "
                               "'az vm run-command invoke' keeps only the last 4,096 bytes: collect with --digest") \
                from None
    raise UsageError(f"the Run Command output holds no evidence bundle or digest; stderr says: {_first_line(out.stderr)}")


def load_any(data: bytes) -> dict[str, Any]:
    """A bundle from an evidence bundle, a digest (with any text around it), or what ``az``
    prints for a Run Command; a UsageError (one line) naming what is wrong otherwise."""
    if len(data) > ev.MAX_BUNDLE_BYTES:
        return ev.load(data)                 # its own "larger than" message
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return ev.load(data)
    if text.lstrip()[:1] in ("{", "["):
        try:
            document = strictjson.loads(text, max_bytes=ev.MAX_BUNDLE_BYTES)
        except ValueError:
            document = None
        if isinstance(document, dict) and document.get("kind") == ev.KIND:
            ev.check(document)
            return document
        out = unwrap(document)
        if out is not None:
            return _inner(out)
    if digest.is_digest(text):
        return digest.decode(text)
    return ev.load(data)


__all__ = ["RunCommandOutput", "load_any", "unwrap"]
