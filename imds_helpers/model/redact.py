"""The one redaction helper. Everything that may carry a secret goes through here
before it is stored in a result, logged, shown or put into an exception message.

Secrets we handle: bearer tokens (JWTs), the ``access_token``/``refresh_token`` fields of
token responses, Arc challenge secrets (``Authorization: Basic <secret>``) and the bytes of
Arc key files.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = "<redacted>"

# header.payload.signature - the signature part may be empty (unsigned JWT). Further dotted
# segments are taken too (JWE has five; and a match that starts early, e.g. in "eyJa.<jwt>",
# must still reach the real signature).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)*")
# "access_token": "..."  (JSON)  and  access_token=...  (form / query)
_TOKEN_FIELD = re.compile(
    r'(?P<key>"?(?:access_token|refresh_token|id_token)"?\s*[:=]\s*"?)(?P<value>[^"&,\s}\\]+)',
    re.IGNORECASE,
)
# "Basic realm=<path>" / "Bearer realm=..." are challenges (HIMDS names its key file so), not credentials.
_AUTH_HEADER = re.compile(r"(?P<key>\b(?:Basic|Bearer)\s+)(?!realm=)(?P<value>[^\s\"'\\,]+)", re.IGNORECASE)

# Every pattern above needs "eyJ", "_token", "basic" or "bearer" (the last three in any case);
# a new pattern adds its word here and to the reference in tests/core/test_redact_claims.py.
_TRIGGERS = ("eyj", "_token", "basic", "bearer")

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Return ``text`` with every token-like and known secret value replaced."""
    if not text:
        return text
    for secret in secrets:
        if secret:
            text = text.replace(secret, PLACEHOLDER)
    if len(text) <= _CACHED_CHARS:
        redacted = _redact_short(text)
        return text if redacted == text else redacted    # the caller's own object when nothing changed
    return _redact(text)


# A report repeats the same short strings many times (titles, fixes, commands, ids, header
# names) and a fleet of reports repeats them thousands of times: their answer is remembered.
_CACHED_CHARS = 512


@functools.lru_cache(maxsize=16384)
def _redact_short(text: str) -> str:
    return _redact(text)


def _redact(text: str) -> str:
    if not _may_match(text):
        return text
    text = _JWT.sub(PLACEHOLDER, text)
    text = _TOKEN_FIELD.sub(lambda m: m.group("key") + PLACEHOLDER, text)
    text = _AUTH_HEADER.sub(lambda m: m.group("key") + PLACEHOLDER, text)
    return text


def _may_match(text: str) -> bool:
    """False only when no pattern can match: most strings in a result (names, URLs, numbers)
    hold no trigger word, and this test costs a tenth of the three substitutions.

    Exact for ASCII text. Other text always takes the patterns: re's case-insensitive matching
    also knows equivalents outside ASCII (the long s for "s", the dotless i for "i").
    """
    if not text.isascii():
        return True
    lowered = text.lower()
    return any(trigger in lowered for trigger in _TRIGGERS)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy of ``headers`` with secret-bearing headers replaced by the placeholder."""
    return {
        name: (PLACEHOLDER if name.lower() in SECRET_HEADERS else redact_text(str(value)))
        for name, value in headers.items()
    }


def redact_value(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """Recursively redact strings inside dicts / lists / tuples (JSON-like data)."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {
            (redact_text(k, secrets) if isinstance(k, str) else k):
                (PLACEHOLDER if str(k).lower() in {"access_token", "refresh_token", "id_token"}
                 else redact_value(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, secrets) for v in value)
    return value


def authority_end(rest: str) -> int:
    """Where the authority (``user:pass@host:port``) of a URL ends, given the text after
    ``scheme://``: at the first ``/``, ``?`` or ``#``, as URL parsers read it."""
    return min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))


def hide_url_credentials(url: str) -> str:
    """``http://user:pass@host:3128/x`` -> ``http://<credentials>@host:3128/x`` (also without a
    scheme: ``user:pass@host``). Works on text that does not parse as a URL (``http://u:p@[::1``)
    and never raises: the user info is everything before the authority's last ``@``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = authority_end(rest)
    if "@" not in rest[:end]:
        # A raw "/" or "#" typed inside a password ends the authority early: look at the whole
        # text, so that what follows the last "@" is the most that is shown.
        if "@" not in rest:
            return url
        end = len(rest)
    at = rest.rfind("@", 0, end)
    return f"{scheme}{sep}<credentials>@{rest[at + 1:]}"


# scheme://user:password@ inside free text (up to the last "@" before a blank or a quote)
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s'\"<>]*@")


def hide_url_credentials_in(text: str) -> str:
    """Every ``scheme://user:pass@`` in ``text`` -> ``scheme://<credentials>@`` (for messages
    that quote what the user typed: an argparse error, a usage error)."""
    return _URL_USERINFO.sub(r"\1<credentials>@", text) if "@" in text else text
