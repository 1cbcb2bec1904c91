"""The one error taxonomy, used by every step (network, HTTP, identity, Arc).

Transport          connect_refused, connect_timeout, network_unreachable, host_unreachable,
                   read_timeout, connection_reset, deadline_exceeded, transport_error
HTTP               http_<status> (e.g. http_400, http_410, http_429, http_503)
Payload            bad_payload (not JSON / truncated / wrong shape), oversized_payload
Who answered       not_imds (something else answered), proxy_interference
Identity           identity_not_found, multiple_identities, invalid_resource,
                   missing_metadata_header, api_version_invalid, forwarded_rejected
Arc challenge      arc_challenge_missing, arc_challenge_malformed, arc_realm_outside_dir,
                   arc_realm_not_key, arc_key_too_large, arc_key_missing, arc_key_unreadable,
                   arc_key_not_regular, arc_secret_rejected
"""

from __future__ import annotations

from enum import Enum


class ErrorKind(str, Enum):
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    NETWORK_UNREACHABLE = "network_unreachable"
    HOST_UNREACHABLE = "host_unreachable"
    READ_TIMEOUT = "read_timeout"
    CONNECTION_RESET = "connection_reset"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    TRANSPORT_ERROR = "transport_error"
    BAD_PAYLOAD = "bad_payload"
    OVERSIZED_PAYLOAD = "oversized_payload"
    NOT_IMDS = "not_imds"
    PROXY_INTERFERENCE = "proxy_interference"
    IDENTITY_NOT_FOUND = "identity_not_found"
    MULTIPLE_IDENTITIES = "multiple_identities"
    INVALID_RESOURCE = "invalid_resource"
    MISSING_METADATA_HEADER = "missing_metadata_header"
    API_VERSION_INVALID = "api_version_invalid"
    FORWARDED_REJECTED = "forwarded_rejected"
    ARC_CHALLENGE_MISSING = "arc_challenge_missing"
    ARC_CHALLENGE_MALFORMED = "arc_challenge_malformed"
    ARC_REALM_OUTSIDE_DIR = "arc_realm_outside_dir"
    ARC_REALM_NOT_KEY = "arc_realm_not_key"
    ARC_KEY_TOO_LARGE = "arc_key_too_large"
    ARC_KEY_MISSING = "arc_key_missing"
    ARC_KEY_UNREADABLE = "arc_key_unreadable"
    ARC_KEY_NOT_REGULAR = "arc_key_not_regular"
    ARC_SECRET_REJECTED = "arc_secret_rejected"

    def __str__(self) -> str:
        return self.value


def http_kind(status: int) -> str:
    """Taxonomy name for an HTTP status that no more specific kind explains."""
    return f"http_{status}"
