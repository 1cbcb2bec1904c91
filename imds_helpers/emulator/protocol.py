"""The wire contract the emulator follows: versions, paths, header names and error bodies.

Everything here comes from ``imds-protocol.md`` (the team's reference). Facts tagged there as
[inferred] or listed as open questions are made here as named ``# CHOICE:`` constants so that
they are easy to find and to change. Error bodies are serialised compactly (no spaces), as the
real service does: the two recorded ``Content-Length`` values (88 for the token endpoint's
missing-header body, 168 for "Multiple user assigned identities ...") match compact JSON.
"""

from __future__ import annotations

import json
from typing import Any

# --------------------------------------------------------------------------------------------
# Versions (§1.2)
# --------------------------------------------------------------------------------------------

#: Every general IMDS api-version, newest first [doc: D1, revision citing 2025-04-07].
API_VERSIONS: tuple[str, ...] = (
    "2025-04-07", "2024-07-17", "2024-03-15", "2023-11-15", "2023-07-01", "2021-12-13",
    "2021-11-15", "2021-11-01", "2021-10-01", "2021-08-01", "2021-05-01", "2021-03-01",
    "2021-02-01", "2021-01-01", "2020-12-01", "2020-10-01", "2020-09-01", "2020-07-15",
    "2020-06-01", "2019-11-01", "2019-08-15", "2019-08-01", "2019-06-04", "2019-06-01",
    "2019-04-30", "2019-03-11", "2019-02-01", "2018-10-01", "2018-04-02", "2018-02-01",
    "2017-12-01", "2017-10-01", "2017-08-01", "2017-04-02", "2017-03-01",
)

#: Scheduled events keep their own version table [doc: D5].
SCHEDULED_EVENTS_VERSIONS: tuple[str, ...] = (
    "2020-07-01", "2019-08-01", "2019-04-01", "2019-01-01", "2017-11-01", "2017-08-01",
    "2017-03-01",
)

#: First general api-version of each category [doc: D1]. ``None``: no api-version needed.
CATEGORY_INTRODUCED: dict[str, str | None] = {
    "instance": "2017-04-02",
    "scheduledevents": "2017-08-01",
    "token": "2018-02-01",
    "identity_info": "2018-02-01",
    "attested": "2018-10-01",
    "loadbalancer": "2020-10-01",
    "versions": None,
}
# CHOICE: the identity category accepts every general version from 2018-02-01 on (the doc says
# "2018-02-01 or greater"; that *every* later version works is [inferred]).
# CHOICE: scheduled events accept their own table *and* general versions from 2017-08-01 on.

#: HIMDS (Arc) api-versions, newest first, as a 2024 agent reported them [obs: I7].
ARC_API_VERSIONS: tuple[str, ...] = ("2021-02-01", "2020-06-01", "2019-11-01", "2019-08-15")

# --------------------------------------------------------------------------------------------
# Paths (§1, §2)
# --------------------------------------------------------------------------------------------

PATH_INSTANCE = "/metadata/instance"
PATH_VERSIONS = "/metadata/versions"
PATH_TOKEN = "/metadata/identity/oauth2/token"
PATH_IDENTITY_INFO = "/metadata/identity/info"
PATH_ATTESTED = "/metadata/attested/document"
PATH_SCHEDULED = "/metadata/scheduledevents"
PATH_LOADBALANCER = "/metadata/loadbalancer"

IDENTITY_CATEGORIES = frozenset({"token", "identity_info"})

# CHOICE (open question 6): HIMDS serves only the instance and token categories; every other
# /metadata path answers 404 in Arc mode.
ARC_CATEGORIES = frozenset({"instance", "token"})


def categorize(path: str) -> str | None:
    """The IMDS category of a request path (query string already removed), or ``None``."""
    if path == PATH_INSTANCE or path.startswith(PATH_INSTANCE + "/"):
        return "instance"
    return {
        PATH_VERSIONS: "versions",
        PATH_TOKEN: "token",
        PATH_IDENTITY_INFO: "identity_info",
        PATH_ATTESTED: "attested",
        PATH_SCHEDULED: "scheduledevents",
        PATH_LOADBALANCER: "loadbalancer",
    }.get(path.rstrip("/") if path != "/" else path)


# --------------------------------------------------------------------------------------------
# Headers (§1.1)
# --------------------------------------------------------------------------------------------

#: ``Server`` header of real IMDS answers look like ``IMDS/150.870.65.<n>`` [obs: T1, I1].
IMDS_SERVER_HEADER = "IMDS/150.870.65.1601"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
# CHOICE: HIMDS is a Go service; Go's net/http sends no ``Server`` header, so Arc answers have
# none, and the challenge header is spelled as Go canonicalises it (curl shows
# ``Www-Authenticate`` [doc: D3]). Clients must match header names case-insensitively.
ARC_CHALLENGE_HEADER = "Www-Authenticate"
RETRY_AFTER_SECONDS = "1"   # CHOICE: Retry-After sent with rate-limit 429s

# --------------------------------------------------------------------------------------------
# Rate limits (§1.1) [doc: D1]
# --------------------------------------------------------------------------------------------

GENERAL_RATE_PER_SECOND = 5
IDENTITY_RATE_PER_SECOND = 20
IDENTITY_MAX_CONCURRENT = 5
# CHOICE: the identity category has its own bucket and does not also count against the general
# 5 req/s; requests answered 429 do not count; the window is a sliding 1-second window.

# --------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    """Compact JSON as the real service writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def identity_error(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description}


# E1 [doc: D1; obs: I5 shows a variant "Bad request: . Required ..."]
MISSING_HEADER = {"error": "Bad request. Required metadata header not specified"}
# E2 [obs: T1] - exactly 88 bytes compact.
MISSING_HEADER_IDENTITY = identity_error("invalid_request", "Required metadata header not specified")

# E4 [doc: D1]. CHOICE: every category (the identity one included) uses this documented body;
# a 2023 report of "Invalid 'api-version' requested" for the token endpoint [obs: I15] came
# from an unclear environment.
API_VERSION_ERROR_TEXT = (
    "Bad request. api-version is invalid or was not specified in the request. "
    "For more information refer to aka.ms/azureimds"
)


def api_version_error(known_versions: tuple[str, ...]) -> dict[str, Any]:
    """E4 body; ``newest-versions`` lists the three newest versions the service knows."""
    newest = sorted(known_versions, reverse=True)[:3]
    return {"error": API_VERSION_ERROR_TEXT, "newest-versions": newest}


# E3 CHOICE (open question 1): a request carrying X-Forwarded-For gets 400 with these bodies.
FORWARDED = {"error": "Bad request. X-Forwarded-For header is not allowed"}
FORWARDED_IDENTITY = identity_error("invalid_request", "X-Forwarded-For header is not allowed")

# E5 CHOICE (open question 2): leaf node without format=text.
LEAF_NEEDS_TEXT = {"error": "Bad request. Leaf nodes must be requested with format=text"}
# CHOICE: an unknown ``format`` value (not json/text) is a 400 too.
BAD_FORMAT = {"error": "Bad request. Unsupported format requested. Supported formats are json and text"}
# E6: 404 bodies as captured [obs: fixtures issue_azure-docs_15282_*]: instance sub-paths print
# ``{ "error": "Not found" }`` (spaces), other /metadata paths ``{"error":"Not Found"}``.
NOT_FOUND_INSTANCE_RAW = b'{ "error": "Not found" }'
NOT_FOUND = {"error": "Not Found"}
# E7 CHOICE: 405 bodies; the load-balancer category uses its documented text [doc: D7].
METHOD_NOT_ALLOWED = {"error": "Bad request. Http method isn't allowed"}
METHOD_NOT_ALLOWED_IDENTITY = identity_error("method_not_allowed", "Http method isn't allowed")


def method_not_allowed_lb(path: str, method: str) -> dict[str, str]:
    return {"error": f'Http method isn\'t allowed: Path = "{path}", Method = "{method}"'}


# E8 CHOICE: duplicate query parameter -> 400.
DUPLICATE_PARAM = {"error": "Bad request. Duplicate query parameter specified"}
DUPLICATE_PARAM_IDENTITY = identity_error("invalid_request", "Duplicate query parameter specified")
# E9 bodies: identity code ``too_many_requests`` [doc: S1], LB text "Too many requests" [doc: D7].
TOO_MANY = {"error": "Too many requests"}
TOO_MANY_IDENTITY = identity_error("too_many_requests", "Too many requests")
# E10 CHOICE (body undocumented): IMDS updating.
UPDATING = {"error": "Gone. IMDS is being updated; retry, it is available again within 70 seconds"}
UPDATING_IDENTITY = identity_error(
    "service_unavailable", "IMDS is being updated; retry, it is available again within 70 seconds")
# E11 CHOICE: token endpoint not ready during an update.
TOKEN_NOT_READY = identity_error("not_found", "The identity endpoint is not available yet; retry with backoff")
# E12 texts [doc: D1, D2].
SERVER_ERROR = {"error": "Internal server error"}
SERVER_ERROR_IDENTITY = identity_error(
    "unknown", "Failed to retrieve token from the Active directory. For details see logs in "
    "/var/log/azure/Microsoft.ManagedIdentity/imds.log")
UNAVAILABLE = {"error": "Internal service unavailable. Retry later"}
UNAVAILABLE_IDENTITY = identity_error("service_unavailable", "Internal service unavailable. Retry later")
# E13, E14 [obs: I2, I1] - E14 is exactly 168 bytes compact.
IDENTITY_NOT_FOUND = identity_error("invalid_request", "Identity not found")
MULTIPLE_IDENTITIES = identity_error(
    "invalid_request",
    "Multiple user assigned identities exist, please specify the clientId / resourceId of the "
    "identity in the token request",
)
# CHOICE: missing ``resource`` and more than one selector.
RESOURCE_MISSING = identity_error("invalid_request", "Required query variable 'resource' is missing")
SEVERAL_SELECTORS = identity_error(
    "invalid_request", "Only one of client_id, object_id, msi_res_id or mi_res_id may be specified")
# E17 [doc: D7] used when scheduled-events / attested parameters are malformed.
BAD_SCHEDULED_EVENTS_BODY = {"error": "Bad Request"}  # E20 CHOICE (body undocumented)
UNKNOWN_EVENT_ID = {"error": "Bad Request. EventId not found"}  # CHOICE
BAD_NONCE = {"error": "Bad request. nonce must be at most 32 alphanumeric characters"}  # CHOICE
# E18 [doc: D7].
NO_LOADBALANCER = {"error": "No load balancer metadata is found. Check if your virtual machine is "
                            "using any nonbasic SKU load balancer and retry later."}


def aadsts500011(resource: str, tenant: str, trace_id: str, correlation_id: str, timestamp: str) -> dict[str, str]:
    """E15 [obs: I3]: unknown resource. CHOICE (open question 11): only error/error_description."""
    return identity_error(
        "invalid_resource",
        f"AADSTS500011: The resource principal named {resource} was not found in the tenant named "
        f"{tenant}. This can happen if the application has not been installed by the administrator "
        "of the tenant or consented to by any user in the tenant. You might have sent your "
        f"authentication request to the wrong tenant.\r\nTrace ID: {trace_id}\r\n"
        f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}",
    )


# E21 [doc: T2, C1]. Docker Desktop's proxy answers HTTP/1.0 with the message as the reason
# phrase (Go SDK logs show "RESPONSE 403 connecting to ..."); CHOICE: the body is the JSON form
# the azure-identity tests use.
DOCKER_DESKTOP_MESSAGE = (
    "connecting to 169.254.169.254:80: connecting to 169.254.169.254:80: dial tcp "
    "169.254.169.254:80: connectex: A socket operation was attempted to an unreachable network."
)

# --------------------------------------------------------------------------------------------
# Resources (audiences) the emulated tenant knows (§1.7, E15)
# --------------------------------------------------------------------------------------------

#: Public-cloud App ID URIs accepted for ``resource``; matched case-insensitively with or
#: without one trailing "/". Anything else gets AADSTS500011.
KNOWN_RESOURCES: tuple[str, ...] = (
    "https://management.azure.com/",
    "https://management.core.windows.net/",
    "https://monitor.azure.com/",
    "https://ingest.monitor.azure.com/",
    "https://monitoring.azure.com/",
    "https://api.loganalytics.io/",
    "https://vault.azure.net",
    "https://storage.azure.com/",
    "https://graph.microsoft.com/",
    "https://database.windows.net/",
    "https://ossrdbms-aad.database.windows.net",
    "https://servicebus.azure.net/",
    "https://eventhubs.azure.net/",
    "https://cognitiveservices.azure.com/",
    "https://dev.azuresynapse.net/",
    "https://batch.core.windows.net/",
    "https://datalake.azure.net/",
    "https://digitaltwins.azure.net",
    "https://attest.azure.net",
)
# CHOICE: ``/.default`` is a v2 *scope* suffix; IMDS takes a v1 *resource*, so
# "https://management.azure.com/.default" is unknown (AADSTS500011). Clients strip it.


def normalize_resource(resource: str) -> str:
    return resource.strip().rstrip("/").lower()


_KNOWN = frozenset(normalize_resource(r) for r in KNOWN_RESOURCES)


def is_known_resource(resource: str) -> bool:
    return normalize_resource(resource) in _KNOWN


# --------------------------------------------------------------------------------------------
# Arc (HIMDS) bodies (§2)
# --------------------------------------------------------------------------------------------

ARC_KEY_DIR_LINUX = "/var/opt/azcmagent/tokens"
ARC_DEFAULT_PORT = 40342
ARC_KEY_MAX_BYTES = 4096
#: Observed text for a missing api-version [obs: I7]; body shape per P6 [inferred].
ARC_API_VERSION_TEXT = "The api-version not specified. Supported are " + " ".join(ARC_API_VERSIONS)
# CHOICE (open question 5): an unsupported (not just missing) api-version gets the same text.
ARC_API_VERSION_ERROR = identity_error("invalid_request", ARC_API_VERSION_TEXT)
# CHOICE (open question 8): HIMDS requires ``Metadata: true`` everywhere and answers like the
# IMDS identity endpoint when it is missing.
ARC_MISSING_HEADER = MISSING_HEADER_IDENTITY
# CHOICE: body of the 401 challenge (content unknown, JSON per a JS SDK log [obs: I17]).
ARC_CHALLENGE_BODY = identity_error(
    "unauthorized_client",
    "Authorization header is missing or its secret is invalid. Read the file named in the "
    "WWW-Authenticate realm and resend the request with 'Authorization: Basic <file contents>'.",
)
# CHOICE (newer agent, [obs: I10]): user-assigned selectors are refused with 400 *before* the
# challenge, so no key file is written for them.
ARC_USER_ASSIGNED_REFUSED = identity_error(
    "invalid_request",
    "User-assigned managed identities are not supported on this machine. Remove client_id, "
    "object_id, msi_res_id or mi_res_id from the request to use the system-assigned identity.",
)
# CHOICE (failure-modes #25): an agent whose identity certificate expired (status "Expired" /
# "Disconnected") validates the challenge but cannot get a token. We answer 403 ``forbidden``
# (a non-retryable 4xx from the S1 error list, so SDK retry loops do not spin on it).
ARC_DISCONNECTED_STATUS = 403
ARC_DISCONNECTED = identity_error(
    "forbidden",
    "The Azure Connected Machine agent is disconnected (agent status: Expired): its managed "
    "identity certificate has expired, so no token can be issued. Reconnect the machine with "
    "'azcmagent connect' and check 'azcmagent show'.",
)
