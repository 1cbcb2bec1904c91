"""The evidence bundle's shape, written once: :data:`BUNDLE` below. From it come both the
check analysis runs on every bundle it reads (:func:`validate`, standard library, so a hostile
bundle is one line and exit 2, never a traceback deep in a rule) and the JSON Schema kept in the
repository (``imds_helpers/model/evidence.schema.json``, made by :func:`json_schema`; the tests
compare the file with it and validate real bundles against the file with ``jsonschema``).

A spec is a type name (``"string"``, ``"integer"``, ``"number"``, ``"boolean"``, ``"object"``,
with ``"|null"`` allowed), a dict (an object with those fields, all required; ``{"*": spec}``:
any names, every value of that spec; ``"|null": True``: or null), or a one-element list (an
array of that spec).
"""

from __future__ import annotations

from typing import Any

NUM = "number"
STR = "string"
OPT_STR = "string|null"
OPT_INT = "integer|null"

VERDICT = {"code": STR, "detail": STR, "evidence": "object", "ok": "boolean", "elapsed_ms": NUM}
ATTEMPT = {"method": STR, "url": STR, "status": OPT_INT, "error": OPT_STR, "elapsed_ms": NUM,
           "headers": {"*": STR}, "body_excerpt": STR, "phases": {"*": NUM}}

TCP_ATTEMPT = {"address": STR, "error_kind": OPT_STR, "errno": OPT_INT, "error": OPT_STR, "source_address": OPT_STR,
               "elapsed_ms": NUM}

RECORDS = {
    "commands": {"argv": [STR], "timeout_s": NUM, "returncode": OPT_INT, "stdout": STR, "stderr": STR,
                 "error": OPT_STR, "elapsed_ms": NUM},
    # op "read": text / error; op "kind": kind; op "glob": paths (the other fields null)
    "files": {"op": STR, "path": STR, "limit": OPT_INT, "text": OPT_STR, "error": OPT_STR, "kind": OPT_STR,
              "paths": "array|null"},
    "tcp": {"host": STR, "port": "integer", "timeout_s": NUM, "resolve_error": OPT_STR, "attempts": [TCP_ATTEMPT],
            "elapsed_ms": NUM},
    "http": {"request": {"method": STR, "url": STR, "headers": [[STR]], "via_proxy": "boolean"},
             "status": OPT_INT, "error": OPT_STR, "headers": [[STR]], "body": STR, "body_encoding": STR,
             "body_bytes": "integer", "body_truncated": "boolean", "elapsed_ms": NUM, "received_at": "number|null",
             "attempts": [ATTEMPT]},
    "arc_keys": {"realm": STR, "tokens_dir": STR, "realm_verdict": VERDICT, "key_verdict": {**VERDICT, "|null": True},
                 "header_problem": OPT_STR},
}

BUNDLE = {
    "kind": STR,
    "schema_version": "integer",
    "collector": {"name": STR, "version": STR},
    "started_at": STR,
    "duration_ms": NUM,
    "host": {"hostname": STR, "os": STR, "os_release": OPT_STR, "smbios_uuid": OPT_STR, "vmId": OPT_STR,
             "resourceId": OPT_STR},
    "parameters": {"target": STR, "endpoint": OPT_STR, "resources": [STR], "identities": [[STR]],
                   "timeouts": {"connect": NUM, "read": NUM, "total": NUM}, "tokens_dir": STR,
                   "ama_config_path": STR, "proxy_comparison": "boolean"},
    "environment": {"*": STR},
    "proxy_url_problems": {"*": STR},
    "wininet": {"*": "string|integer", "|null": True},
    "identity": {"euid": OPT_INT, "users": {"*": OPT_INT}},
    "os_name": STR,
    **{name: [spec] for name, spec in RECORDS.items()},
}

_PY_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict,
             "array": list, "null": type(None)}


def validate(value: Any, spec: Any = None, where: str = "") -> str | None:
    """The first place ``value`` breaks ``spec`` (default: the bundle), or None."""
    spec = BUNDLE if spec is None else spec
    if isinstance(spec, str):
        names = spec.split("|")
        ok = any(isinstance(value, _PY_TYPES[n]) and not (n in ("integer", "number") and isinstance(value, bool))
                 for n in names)
        return None if ok else f"{where or 'bundle'} is not {' or '.join(names)}"
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"{where or 'bundle'} is not an array"
        for index, item in enumerate(value):
            problem = validate(item, spec[0], f"{where}[{index}]")
            if problem:
                return problem
        return None
    if value is None and spec.get("|null"):
        return None
    if not isinstance(value, dict):
        return f"{where or 'bundle'} is not an object"
    if "*" in spec:
        for name, item in value.items():
            problem = validate(item, spec["*"], f"{where}[{str(name)[:40]!r}]")
            if problem:
                return problem
        return None
    for name, field_spec in spec.items():
        if name == "|null":
            continue
        if name not in value:
            return f"{where + '.' if where else ''}{name} is missing"
        problem = validate(value[name], field_spec, f"{where + '.' if where else ''}{name}")
        if problem:
            return problem
    return None


def json_schema() -> dict[str, Any]:
    """:data:`BUNDLE` as a JSON Schema (draft 2020-12)."""
    schema = _schema(BUNDLE)
    schema.update({"$schema": "https://json-schema.org/draft/2020-12/schema",
                   "$id": "https://github.com/imds-runbook/imds-runbook/evidence.schema.json",
                   "title": "imds-runbook evidence bundle",
                   "description": "What collect saw on one host; the only input analyze reads. "
                                  "Generated from imds_helpers/model/evidence_schema.py."})
    return schema


def _schema(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        names = spec.split("|")
        return {"type": names[0] if len(names) == 1 else names}
    if isinstance(spec, list):
        return {"type": "array", "items": _schema(spec[0])}
    kind = ["object", "null"] if spec.get("|null") else "object"
    if "*" in spec:
        return {"type": kind, "additionalProperties": _schema(spec["*"])}
    fields = {k: v for k, v in spec.items() if k != "|null"}
    return {"type": kind, "required": sorted(fields), "properties": {k: _schema(v) for k, v in fields.items()}}


if __name__ == "__main__":   # python -m imds_helpers.model.evidence_schema > imds_helpers/model/evidence.schema.json
    import json

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
