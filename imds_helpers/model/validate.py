"""Input validation shared by the CLI and the runbooks' parameters.

Every function returns the normalised value or raises :class:`UsageError` naming the
argument, so bad input stops before any request is sent and before anything is written.
A message quotes the bad value through :func:`shown`: short, on one line, without the
password of a URL.
"""

from __future__ import annotations

import math
import re
from typing import Iterable
from urllib.parse import urlsplit

from imds_helpers.model.errors import UsageError
from imds_helpers.model.redact import authority_end, hide_url_credentials

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MSI_RES_ID = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourcegroups/[-\w._()]+/providers/"
    r"microsoft\.managedidentity/userassignedidentities/[-\w]+$",
    re.IGNORECASE,
)
MAX_TIMEOUT_S = 300.0
TARGETS = ("auto", "vm", "arc")
SHOWN_CHARS = 80
MAX_URI_CHARS = 2048            # the longest resource URI accepted (real audiences are under 100)


def shown(value: object, *, url: bool = False) -> str:
    """``value`` as a message quotes it: repr (so one line, control characters escaped), at most
    about ``SHOWN_CHARS`` characters, a URL's user info hidden (``url=True`` also for text
    without a scheme, ``user:pass@host``), and a huge integer described, not converted (a
    5,000-digit number cannot be turned into text under Python's digit limit)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {int(value.bit_length() * 0.30103) + 1}-digit number"
    if isinstance(value, str):
        text = hide_url_credentials(value) if url or "@" in value else value
        quoted = repr(text[:SHOWN_CHARS])
        return quoted if len(text) <= SHOWN_CHARS else f"{quoted}... ({len(text)} characters)"
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of {len(value)}"
    quoted = repr(value)
    return quoted if len(quoted) <= SHOWN_CHARS else f"{quoted[:SHOWN_CHARS]}..."


def closest_name(name: str, choices: Iterable[str]) -> str | None:
    """The known name a mistyped ``name`` most likely meant, for a "did you mean" hint."""
    from difflib import get_close_matches   # only a mistyped name pays for it

    close = get_close_matches(name, list(choices), n=1)
    return close[0] if close else None


def endpoint_url(value: str, argument: str = "--endpoint") -> str:
    """An http(s) base URL such as ``http://169.254.169.254``, normalised: lower-case scheme
    and host, no trailing slash (path, query and credentials are not allowed)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise UsageError("must be a URL such as http://169.254.169.254", argument=argument)
    if "@" in text:     # first: a password typed with a "/" in it would confuse the parse
        raise UsageError(f"malformed URL {shown(text, url=True)}: no user name or password, give only scheme, "
                         "host and port", argument=argument)
    try:
        parts = urlsplit(text)
    except ValueError:   # "http://[::1": urlsplit refuses an unclosed IPv6 bracket itself
        raise UsageError(f"malformed URL {shown(text, url=True)}: an IPv6 address in [ ] is unclosed or invalid",
                         argument=argument) from None
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"malformed URL {shown(text, url=True)}: port is not a number in 1-65535",
                         argument=argument) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(f"malformed URL {shown(text, url=True)}: expected http://HOST[:PORT]", argument=argument)
    if parts.path not in ("", "/") or parts.query or parts.fragment or not text.isprintable() \
            or any(c.isspace() for c in text):
        raise UsageError(f"malformed URL {shown(text, url=True)}: give only scheme, host and port", argument=argument)
    if port == 0:
        raise UsageError(f"malformed URL {shown(text, url=True)}: port 0", argument=argument)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def resource_uri(value: str, argument: str = "--resource") -> str:
    """An audience / App ID URI such as ``https://management.azure.com/``."""
    if not isinstance(value, str) or not value:
        raise UsageError("must be a URI such as https://management.azure.com/", argument=argument)
    try:
        parts = urlsplit(value)
        parts.port   # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if (parts is None or not parts.scheme or not (parts.netloc or parts.scheme == "api")
            or "@" in parts.netloc or not value.isprintable() or any(c.isspace() for c in value)
            or len(value) > MAX_URI_CHARS):
        raise UsageError(f"not a resource URI: {shown(value, url=True)} (e.g. https://management.azure.com/)",
                         argument=argument)
    if value.endswith("/.default"):
        raise UsageError(f"{shown(value, url=True)} is a scope; give the resource without '/.default'",
                         argument=argument)
    return value


def guid(value: str, argument: str) -> str:
    if not isinstance(value, str) or not GUID.match(value):
        raise UsageError(f"not a GUID: {shown(value)}", argument=argument)
    return value.lower()


def msi_res_id(value: str, argument: str = "--msi-res-id") -> str:
    if not isinstance(value, str) or not MSI_RES_ID.match(value):
        raise UsageError(
            f"malformed resource id {shown(value)}: expected /subscriptions/<guid>/resourceGroups/<rg>/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/<name>",
            argument=argument,
        )
    return value


def timeout_s(value: object, argument: str = "--timeout") -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:      # an integer beyond any float: far above the limit
        number = math.inf
    except (TypeError, ValueError):
        raise UsageError(f"not a number: {shown(value)}", argument=argument) from None
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0 or number > MAX_TIMEOUT_S:
        raise UsageError(f"must be > 0 and <= {MAX_TIMEOUT_S:g} seconds, got {shown(value)}", argument=argument)
    return number


def target(value: str, argument: str = "--target") -> str:
    if value not in TARGETS:
        raise UsageError(f"must be one of {', '.join(TARGETS)}, got {shown(value)}", argument=argument)
    return value


def identity_selectors(
    client_ids: Iterable[str] = (), object_ids: Iterable[str] = (), msi_res_ids: Iterable[str] = ()
) -> tuple[tuple[str, str], ...]:
    """Validated ``(selector, id)`` pairs; one identity may be named by one selector only."""
    pairs = [("client_id", guid(v, "--client-id")) for v in client_ids]
    pairs += [("object_id", guid(v, "--object-id")) for v in object_ids]
    pairs += [("msi_res_id", msi_res_id(v)) for v in msi_res_ids]
    seen: dict[str, str] = {}
    for selector, value in pairs:
        key = value.lower()
        if key in seen:
            other = seen[key]
            what = "twice" if other == selector else f"as both {other} and {selector}"
            raise UsageError(f"identity {value} given {what}: name each identity by one selector", argument=f"--{selector.replace('_', '-')}")
        seen[key] = selector
    return tuple(pairs)


def proxy_url_problem(proxy: str) -> str | None:
    """Why clients could not use ``proxy`` (a variable's value) as a proxy URL, or None.
    Scheme-less values mean ``http://``, as requests and curl read them."""
    url = proxy if "://" in proxy else f"http://{proxy}"
    rest = url.partition("://")[2]
    end = authority_end(rest)
    if "@" in rest[end:] and "@" not in rest[:end]:
        return "a '/', '?' or '#' in the user name or password ends the host part early (percent-encode it)"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "an IPv6 address in [ ] is unclosed or invalid"
    try:
        port = parts.port
    except ValueError:
        return "the port is not a number in 1-65535"
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0"
    return None
