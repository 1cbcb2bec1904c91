"""``netsh winhttp show proxy`` (the machine-wide WinHTTP proxy that services use).

The text is localised (``Direct access (no proxy server).`` / ``直接アクセス (プロキシ サーバーなし)。``),
so the parser reads the layout, not the words: after the heading (a line ending in ``:``)
either ``label : value`` lines follow (proxy server, then bypass list) or one sentence
without a value (direct access). ``netsh winhttp set proxy`` prints the same block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# "label : value" where the colon is followed by blanks; "C:\\..." and "host:8080" are not.
_LABELLED = re.compile(r"^\s*(?P<label>[^:\r\n]+?)\s*:(?:[ \t]+(?P<value>.*?))?\s*$")


@dataclass(frozen=True)
class WinHttpProxy:
    """``netsh winhttp show proxy``: the machine-wide WinHTTP proxy and bypass list."""

    kind: str                         # "direct" | "proxy" | "empty" | "unrecognised"
    proxy_server: str = ""            # as shown, e.g. "testProxy:8999", "http=p:80;https=p:443"
    bypass_list: tuple[str, ...] = ()  # entries; "(none)" in any language -> ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "proxy_server": self.proxy_server, "bypass_list": list(self.bypass_list)}


def split_bypass(value: str) -> tuple[str, ...]:
    """WinHTTP/WinINet bypass lists: entries separated by ``;``, blanks or commas."""
    if not value or (value.startswith("(") and value.endswith(")")):
        return ()  # "(none)", "(なし)", "(keine)"...
    return tuple(e for e in re.split(r"[;,\s]+", value) if e)


def parse_winhttp_show_proxy(text: str) -> WinHttpProxy:
    lines = [ln.rstrip() for ln in (text or "").splitlines()]
    content = [ln for ln in lines if ln.strip() and "netsh" not in ln.lower() and not re.match(r"^\s*\S*>\s*$", ln)]
    if not content:
        return WinHttpProxy(kind="empty")
    heading = next((i for i, ln in enumerate(content) if "winhttp" in ln.lower() and ln.strip().endswith(":")), None)
    body = content[heading + 1:] if heading is not None else content
    pairs: list[tuple[str, str]] = []
    sentences: list[str] = []
    for line in body:
        match = _LABELLED.match(line)
        if match and match.group("value"):
            pairs.append((match.group("label"), match.group("value")))
        elif not line.strip().endswith(":"):
            sentences.append(line.strip())
    if pairs:
        server = pairs[0][1].strip()
        bypass = split_bypass(pairs[1][1].strip()) if len(pairs) > 1 else ()
        return WinHttpProxy(kind="proxy", proxy_server=server, bypass_list=bypass)
    if heading is not None and sentences:
        return WinHttpProxy(kind="direct")
    return WinHttpProxy(kind="unrecognised")
