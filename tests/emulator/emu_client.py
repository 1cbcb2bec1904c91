"""Helpers shared by the emulator tests (imported by name; conftest only holds fixtures).

The client is ``http.client`` with a deadline on every socket operation and no proxy logic at
all, so nothing here can leave loopback (or the private namespace).
"""

from __future__ import annotations

import http.client
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode, urlsplit

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "real" / "imds-instance"
IN_NETNS = os.environ.get("IMDS_RUNBOOK_NETNS") == "1"
netns_only = pytest.mark.skipif(
    not IN_NETNS, reason="needs the private loopback-only namespace: run via tests/isolated.sh (IMDS_RUNBOOK_NETNS=1)")

TOKEN = "/metadata/identity/oauth2/token"
ARM = "https://management.azure.com/"


@dataclass
class Reply:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes
    version: int

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """Minimal HTTP/1.1 client for one emulator; ``Metadata: true`` unless ``metadata=False``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        split = urlsplit(base_url)
        self.host, self.port = split.hostname, split.port

    def request(self, method: str, path: str, params: dict[str, str] | list | None = None, *,
                headers: dict[str, str] | None = None, metadata: bool | str = True,
                body: bytes | None = None, timeout: float = 5.0) -> Reply:
        if params:
            path = f"{path}?{urlencode(params)}"
        hdrs = dict(headers or {})
        if metadata is True:
            hdrs.setdefault("Metadata", "true")
        elif isinstance(metadata, str):
            hdrs["Metadata"] = metadata
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Reply(resp.status, resp.reason, resp.headers, data, resp.version)
        finally:
            conn.close()

    def get(self, path: str, params: dict[str, str] | list | None = None, **kw: Any) -> Reply:
        return self.request("GET", path, params, **kw)

    def token(self, resource: str = ARM, api_version: str = "2018-02-01", **params: str) -> Reply:
        headers = params.pop("headers", None)
        return self.get(TOKEN, {"api-version": api_version, "resource": resource, **params}, headers=headers)

    def instance(self, sub: str = "", api_version: str = "2021-12-13", **params: Any) -> Reply:
        headers = params.pop("headers", None)
        return self.get("/metadata/instance" + sub, {"api-version": api_version, **params}, headers=headers)


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def key_tree(value: Any) -> Any:
    """The shape of a JSON document: dict keys (recursively), first list element, leaf types."""
    if isinstance(value, dict):
        return {k: key_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [key_tree(value[0])] if value else []
    return type(value).__name__


def scalars(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from scalars(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from scalars(v, f"{path}[{i}]")
    else:
        yield path, value
