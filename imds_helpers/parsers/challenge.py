"""HIMDS's ``WWW-Authenticate`` challenge, parsed as MSAL accepts it (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from imds_helpers.model.catalog import ARC_CHALLENGE_MALFORMED, ARC_CHALLENGE_MISSING


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header. ``code`` is None when ``realm`` is usable."""

    header: str | None
    realm: str | None
    code: str | None
    detail: str


def parse_challenge(header: str | None) -> Challenge:
    """``Basic realm=<path>`` exactly as MSAL accepts it: the text before the only ``=`` is
    ``basic realm`` (any case); the path carries no ``=``, quotes or control characters."""
    if header is None or not header.strip():
        return Challenge(header, None, ARC_CHALLENGE_MISSING,
                         "401 without a WWW-Authenticate header" if header is None
                         else "401 with an empty WWW-Authenticate header")
    prefix, sep, realm = header.strip().partition("=")
    if not sep or prefix.lower() != "basic realm":
        return Challenge(header, None, ARC_CHALLENGE_MALFORMED,
                         f"WWW-Authenticate is {header!r}, not 'Basic realm=<path of a .key file>'")
    if not realm:
        return Challenge(header, None, ARC_CHALLENGE_MALFORMED, "WWW-Authenticate 'Basic realm=' names no path")
    if "=" in realm:
        return Challenge(header, realm, ARC_CHALLENGE_MALFORMED,
                         f"realm {realm!r} contains '=': MSAL's split('=') gets "
                         f"{len(header.split('='))} parts and rejects the header; azure-identity's "
                         f"split('=')[1] would use the truncated path {header.split('=')[1]!r}")
    if realm[0] in "\"'" or realm[-1] in "\"'":
        return Challenge(header, realm, ARC_CHALLENGE_MALFORMED,
                         f"realm {realm!r} is quoted: HIMDS sends the bare path; azure-identity would look "
                         "for a file whose name includes the quotes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in realm):
        return Challenge(header, realm, ARC_CHALLENGE_MALFORMED, f"realm {realm!r} contains control characters")
    return Challenge(header, realm, None, f"401 with WWW-Authenticate: Basic realm={realm}")
