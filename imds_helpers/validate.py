"""Input validation shared by the CLI and the runbooks' parameters.

Every function returns the normalised value or raises :class:`UsageError` naming the
argument, so bad input stops before any request is sent and before anything is written.
"""

from __future__ import annotations

import math
import re
from typing import Iterable
from urllib.parse import urlsplit

from imds_helpers.errors import UsageError

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MSI_RES_ID = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourcegroups/[-\w._()]+/providers/"
    r"microsoft\.managedidentity/userassignedidentities/[-\w]+$",
    re.IGNORECASE,
)
MAX_TIMEOUT_S = 300.0
TARGETS = ("auto", "vm", "arc")


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
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"malformed URL {text!r}: port is not a number in 1-65535", argument=argument) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(f"malformed URL {text!r}: expected http://HOST[:PORT]", argument=argument)
    if (parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password
            or any(c.isspace() for c in text)):
        raise UsageError(f"malformed URL {text!r}: give only scheme, host and port", argument=argument)
    if port == 0:
        raise UsageError(f"malformed URL {text!r}: port 0", argument=argument)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def resource_uri(value: str, argument: str = "--resource") -> str:
    """An audience / App ID URI such as ``https://management.azure.com/``."""
    if not isinstance(value, str) or not value:
        raise UsageError("must be a URI such as https://management.azure.com/", argument=argument)
    parts = urlsplit(value)
    if not parts.scheme or not (parts.netloc or parts.scheme == "api") or any(c.isspace() for c in value):
        raise UsageError(f"not a resource URI: {value!r} (e.g. https://management.azure.com/)", argument=argument)
    if value.endswith("/.default"):
        raise UsageError(f"{value!r} is a scope; give the resource without '/.default'", argument=argument)
    return value


def guid(value: str, argument: str) -> str:
    if not isinstance(value, str) or not GUID.match(value):
        raise UsageError(f"not a GUID: {value!r}", argument=argument)
    return value.lower()


def msi_res_id(value: str, argument: str = "--msi-res-id") -> str:
    if not isinstance(value, str) or not MSI_RES_ID.match(value):
        raise UsageError(
            f"malformed resource id {value!r}: expected /subscriptions/<guid>/resourceGroups/<rg>/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/<name>",
            argument=argument,
        )
    return value


def timeout_s(value: object, argument: str = "--timeout") -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"not a number: {value!r}", argument=argument) from None
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0 or number > MAX_TIMEOUT_S:
        raise UsageError(f"must be > 0 and <= {MAX_TIMEOUT_S:g} seconds, got {value!r}", argument=argument)
    return number


def target(value: str, argument: str = "--target") -> str:
    if value not in TARGETS:
        raise UsageError(f"must be one of {', '.join(TARGETS)}, got {value!r}", argument=argument)
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
