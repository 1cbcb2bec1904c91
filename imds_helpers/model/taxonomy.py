"""The one error taxonomy, used by every step (network, HTTP, identity, Arc).

Transport          connect_refused, connect_timeout, network_unreachable, host_unreachable,
                   read_timeout, connection_reset, deadline_exceeded, transport_error
Evidence           not_collected (the bundle holds no answer for the request)
HTTP               http_<status> (e.g. http_400, http_410, http_429, http_503)
Payload            bad_payload (not JSON / truncated / wrong shape), oversized_payload
Who answered       not_imds (something else answered)
What the service   identity_not_found, multiple_identities, invalid_resource,
said (its error    missing_metadata_header, api_version_invalid, forwarded_rejected,
text; answers.py)  arc_agent_unavailable

The Arc challenge's own steps (realm, key file, secret) are named by their finding codes
(catalog ARC_*), not by kinds: nothing but that chain produces them.
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
    IDENTITY_NOT_FOUND = "identity_not_found"
    MULTIPLE_IDENTITIES = "multiple_identities"
    INVALID_RESOURCE = "invalid_resource"
    MISSING_METADATA_HEADER = "missing_metadata_header"
    API_VERSION_INVALID = "api_version_invalid"
    FORWARDED_REJECTED = "forwarded_rejected"
    ARC_AGENT_UNAVAILABLE = "arc_agent_unavailable"
    NOT_COLLECTED = "not_collected"        # analysis: the bundle holds no answer for this request

    def __str__(self) -> str:
        return self.value


def http_kind(status: int) -> str:
    """Taxonomy name for an HTTP status that no more specific kind explains."""
    return f"http_{status}"
