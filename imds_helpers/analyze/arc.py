"""Step 6: Arc - the HIMDS token challenge, step by step, and the Arc environment variables.

``check_arc_token`` returns one result per visible step, in order, so the Arc runbook can show
where the chain breaks:

  arc.challenge  GET the token URL without Authorization -> 401 + ``Basic realm=<path>``
  arc.realm      judge the path by every key-file rule, without opening it
  arc.keyfile    read the key bounded (O_NOFOLLOW | O_NONBLOCK, <= 4096 bytes, re-checked)
  arc.token      repeat the identical request with ``Authorization: Basic <secret>`` -> token

Steps after a failure are SKIP. The secret lives only in a local variable and is passed to the
HTTP client as ``secrets=`` so every attempt record is redacted; the token is decoded for its
claims and dropped. Neither ever reaches a result, a repr, an exception or an excerpt.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from typing import Any, Mapping
from urllib.parse import urlsplit

from imds_helpers.model.answers import after_retries, classify, error_fields, says
from imds_helpers.model.catalog import (ARC_AGENT_DISCONNECTED, ARC_AUTHORISED_REQUEST_REFUSED, ARC_CHALLENGE_OK,
                                  ARC_ENV_ELSEWHERE, ARC_ENV_MISSING, ARC_ENV_OK, ARC_ENV_OTHER_SOURCE,
                                  ARC_ENV_PARTIAL, ARC_ERROR_BEFORE_CHALLENGE, ARC_HIMDS_NOT_LISTENING,
                                  ARC_KEY_NOT_SENDABLE, ARC_NOT_ATTEMPTED, ARC_NOT_HIMDS, ARC_OK_CHAIN,
                                  ARC_SECRET_REJECTED, ARC_TOKEN_UNUSABLE, ARC_USER_ASSIGNED_NOT_CONFIRMED,
                                  ARC_USER_ASSIGNED_REFUSED, HTTP_NOT_IMDS, HTTP_UNEXPECTED, META_VERSION_REJECTED,
                                  TOKEN_AUDIENCE_UNKNOWN, finding)
from imds_helpers.model.claims import decode_claims
from imds_helpers.model.commands import arc_challenge
from imds_helpers.model.endpoints import (ARC_API_VERSION, ARC_ENV_DROPIN, HIMDS_BASE_URL, HIMDS_BINARY_LINUX, HIMDS_PORT,
                                    HIMDS_TOKEN_URL, IDENTITY_ENDPOINT_ENV, IDENTITY_HEADER_ENV,
                                    IDENTITY_SERVER_THUMBPRINT_ENV, IMDS_ENDPOINT_ENV, MANAGEMENT, MSI_ENDPOINT_ENV,
                                    ARC_TOKENS_DIR_LINUX, ARC_TOKENS_SUBDIR_WINDOWS, MSI_SECRET_ENV, TOKEN_PATH)
from imds_helpers.model.errors import UsageError
from imds_helpers.parsers.challenge import Challenge, parse_challenge
from imds_helpers.model.findings import Attempt, CheckResult, Commands
from imds_helpers.model.evidence import RETRY_STATUSES, Outcome
from imds_helpers.model.redact import hide_url_credentials, redact_headers, redact_text, redact_value
from imds_helpers.model.taxonomy import ErrorKind
from imds_helpers.model.validate import endpoint_url, identity_selectors, resource_uri

DEFAULT_ENDPOINT = HIMDS_BASE_URL
ARC_PORT = HIMDS_PORT
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
ENV_DROPIN = ARC_ENV_DROPIN
STEPS = ("arc.challenge", "arc.realm", "arc.keyfile", "arc.token")
# The challenge request is retried as azure-identity's Arc credential retries it (429, 5xx;
# 410 as for IMDS): an error answer writes no key file. Not 404 (a wrong path on HIMDS), and
# never the 401 (the protocol). The authorised request is sent once: the key is single-use.
CHALLENGE_RETRY_STATUSES = RETRY_STATUSES - {404}


def default_tokens_dir(platform: str, environ: Mapping[str, str] | None = None) -> str:
    """Where HIMDS writes key files: Linux ``/var/opt/azcmagent/tokens``, Windows
    ``%ProgramData%\\AzureConnectedMachineAgent\\Tokens`` (what MSAL and azure-identity use).
    ``platform`` is a ``sys.platform`` value; ``environ`` the host's variables."""
    if platform.startswith("win"):
        import ntpath

        lowered = {k.lower(): v for k, v in (environ or {}).items()}
        program_data = lowered.get("programdata") or r"C:\ProgramData"
        return ntpath.join(program_data, *ARC_TOKENS_SUBDIR_WINDOWS)
    return ARC_TOKENS_DIR_LINUX


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """``http://localhost:40342`` or the full IDENTITY_ENDPOINT token URL -> (base, path)."""
    if not isinstance(endpoint, str):
        raise UsageError("must be a URL such as http://localhost:40342", argument="endpoint")
    parts = urlsplit(endpoint.strip())
    path = TOKEN_PATH
    if parts.path.rstrip("/") == TOKEN_PATH and not parts.query:
        endpoint = f"{parts.scheme}://{parts.netloc}"
    return endpoint_url(endpoint, argument="endpoint"), path


def _skipped(after: str, steps: tuple[str, ...], commands: Commands) -> list[CheckResult]:
    return [finding(step, ARC_NOT_ATTEMPTED, f"not attempted: {after} failed", commands=commands) for step in steps]


def _scrub(attempts: tuple[Attempt, ...], secrets: tuple[str, ...]) -> tuple[Attempt, ...]:
    """Redact attempts once more with values only known after the answer (the token)."""
    return tuple(replace(a, url=redact_text(a.url, secrets), body_excerpt=redact_text(a.body_excerpt, secrets),
                         headers={k: redact_text(v, secrets) for k, v in redact_headers(a.headers).items()})
                 for a in attempts)


def _said(body: object, secrets: tuple[str, ...] = ()) -> str:
    error, description = error_fields(body)
    text = f"{error}: {description}" if error or description else ""
    return redact_text(text, secrets)[:240]


def _who_answered(outcome: Outcome) -> str:
    return (f"Server: {outcome.header('Server') or 'none'}, "
            f"Content-Type: {outcome.header('Content-Type') or 'none'}")


def check_arc_token(
    client: Any,
    endpoint: str = DEFAULT_ENDPOINT,
    *,
    keys: Any,
    resource: str = MANAGEMENT,
    tokens_dir: str | None = None,
    api_version: str = ARC_API_VERSION,
    msi_res_id: str | None = None,
    client_id: str | None = None,
    object_id: str | None = None,
) -> tuple[CheckResult, ...]:
    """The HIMDS challenge, one result per step (see the module docstring).

    ``keys`` probes the key file the challenge names (the host's ``arc_key``: the live machine
    reads it under every key-file rule and keeps the secret for the authorised request; the
    evidence holds only the verdicts). ``tokens_dir`` defaults to the key directory of the host's
    platform. At most one of ``msi_res_id``,
    ``client_id``, ``object_id`` (a user-assigned identity; Arc normally refuses them).
    Raises :class:`UsageError` for bad arguments, before anything is sent.
    """
    base, path = _split_endpoint(endpoint)
    resource = resource_uri(resource, argument="resource")
    if not isinstance(api_version, str) or not api_version.strip():
        raise UsageError("must be an api-version such as 2020-06-01", argument="api_version")
    selectors = identity_selectors([client_id] if client_id else [], [object_id] if object_id else [],
                                   [msi_res_id] if msi_res_id else [])
    if len(selectors) > 1:
        raise UsageError("give at most one of client_id, object_id, msi_res_id", argument="identity")
    tokens_dir = tokens_dir or default_tokens_dir("win32" if keys.os_name == "windows" else keys.os_name, keys.env)
    params = {"api-version": api_version, "resource": resource, **dict(selectors)}
    url = base + path
    commands = arc_challenge(base, path, params)
    identity = f"{selectors[0][0]}={selectors[0][1]}" if selectors else "system-assigned"
    common = {"endpoint": base, "resource": resource, "api_version": api_version, "identity": identity}

    # 1. The challenge.
    first = client.request(url, params=params, headers={"Metadata": "true"},
                           retry_statuses=CHALLENGE_RETRY_STATUSES)
    result, challenge = _challenge_step(first, common, commands, base, bool(selectors))
    results = [after_retries(result, first, service="arc")]
    if challenge is None:
        return tuple(results + _skipped(STEPS[0], STEPS[1:], commands))

    # 2. The realm, judged without opening it; 3. the key, read bounded and re-checked on the
    # open descriptor - both by the host, which keeps the secret (evidence keeps the verdicts).
    probe = keys.arc_key(challenge.realm, tokens_dir)
    verdict = probe.realm_verdict
    results.append(finding("arc.realm", verdict.code, verdict.detail, elapsed_ms=verdict.elapsed_ms,
                           evidence=verdict.evidence, commands=commands))
    if not verdict.ok:
        return tuple(results + _skipped(STEPS[1], STEPS[2:], commands))
    key = probe.key_verdict
    if key is None:
        return tuple(results + _skipped(STEPS[1], STEPS[2:], commands))
    results.append(finding("arc.keyfile", key.code, key.detail, elapsed_ms=key.elapsed_ms,
                           evidence=key.evidence, commands=commands))
    if not key.ok:
        return tuple(results + _skipped(STEPS[2], STEPS[3:], commands))
    # 4. The identical request, now with the secret.
    if probe.header_problem is not None:
        results.append(finding("arc.token", ARC_KEY_NOT_SENDABLE,
                               f"not sent: {probe.header_problem}; MSAL and azure-identity send the contents verbatim "
                               "and their HTTP library refuses such a header the same way",
                               evidence=common, commands=commands))
        return tuple(results)
    results.append(_token_step(client, url, params, probe.handle, common, commands, selectors))
    return tuple(results)


def _challenge_step(
    outcome: Outcome, common: dict[str, Any], commands: Commands, base: str, user_assigned: bool,
) -> tuple[CheckResult, Challenge | None]:
    evidence = dict(common, status=outcome.status, error_kind=outcome.error.value if outcome.error else None)

    def result(code: str, detail: str, extra: Mapping[str, Any] | None = None) -> CheckResult:
        return finding("arc.challenge", code, detail, elapsed_ms=outcome.elapsed_ms,
                       evidence=dict(evidence, **(extra or {})), commands=commands, attempts=outcome.attempts)

    if outcome.status == 401:
        header = outcome.header("WWW-Authenticate")
        challenge = parse_challenge(header)
        extra = {"www_authenticate": header}
        if challenge.code is not None:
            return result(challenge.code, challenge.detail, extra), None
        return result(ARC_CHALLENGE_OK, challenge.detail, dict(extra, realm=challenge.realm)), challenge
    if outcome.status is None and outcome.error is ErrorKind.CONNECT_REFUSED:
        hostport = urlsplit(base).netloc
        return result(ARC_HIMDS_NOT_LISTENING, f"connection refused on {hostport}: nothing listens there "
                      "(is himds running?)"), None
    answer = classify(outcome, service="arc")
    if outcome.status is None or outcome.error is not None:
        return result(answer.code or ARC_ERROR_BEFORE_CHALLENGE, answer.detail), None
    status = outcome.status
    said = _said(answer.body)
    if answer.code == META_VERSION_REJECTED:
        return result(answer.code, f"HTTP {status} before the challenge: {said or answer.detail}"), None
    if user_assigned and 400 <= status < 500 and status not in (404, 410, 429):
        return result(ARC_USER_ASSIGNED_REFUSED, f"HTTP {status} before the challenge: {said or 'no error text'}"), None
    if status < 400 or answer.code == HTTP_NOT_IMDS:
        return result(ARC_NOT_HIMDS, f"HTTP {status} without a challenge ({_who_answered(outcome)}); "
                      "HIMDS answers 401 with Basic realm", {"body_excerpt": outcome.text()[:240]}), None
    if answer.code == HTTP_UNEXPECTED:
        return result(ARC_ERROR_BEFORE_CHALLENGE, f"HTTP {status} before the challenge: {said or 'no error text'} "
                      f"({_who_answered(outcome)})"), None
    return result(answer.code or ARC_ERROR_BEFORE_CHALLENGE, f"{answer.detail} before the challenge"), None


def _token_step(
    client: Any,
    url: str,
    params: Mapping[str, str],
    handle: str | None,
    common: dict[str, Any],
    commands: Commands,
    selectors: tuple[tuple[str, str], ...],
) -> CheckResult:
    # The client adds "Authorization: Basic <secret>" for the key ``handle`` names and redacts
    # the secret from every attempt it records; it never comes here.
    secrets: tuple[str, ...] = ()
    try:
        outcome = client.request(url, params=params, headers={"Metadata": "true"}, authorization=handle, retry=False)
    except Exception as err:  # the message could hold the header: keep only the type
        return finding("arc.token", ARC_AUTHORISED_REQUEST_REFUSED,
                       f"the request could not be sent ({type(err).__name__})", evidence=common, commands=commands)
    evidence = dict(common, status=outcome.status, error_kind=outcome.error.value if outcome.error else None)

    def result(code: str, detail: str, extra: Mapping[str, Any] | None = None,
               attempts: tuple[Attempt, ...] = outcome.attempts) -> CheckResult:
        return finding("arc.token", code, redact_text(detail, secrets), elapsed_ms=outcome.elapsed_ms,
                       evidence=redact_value(dict(evidence, **(extra or {})), secrets), commands=commands,
                       attempts=_scrub(attempts, secrets))

    if outcome.status == 401:
        again = parse_challenge(outcome.header("WWW-Authenticate"))
        fresh = f"; HIMDS issued a fresh challenge ({again.realm})" if again.code is None else ""
        return result(ARC_SECRET_REJECTED, f"HTTP 401 again with the key file's secret{fresh}",
                      {"fresh_realm": again.realm if again.code is None else None})
    answer = classify(outcome, service="arc")
    if outcome.status is not None and 200 <= outcome.status < 300 and outcome.error is None:
        return _token_answer(outcome, evidence, result, secrets, selectors)
    if outcome.status is None or outcome.error is not None:
        return result(answer.code or ARC_AUTHORISED_REQUEST_REFUSED, f"{answer.detail} after the challenge")
    status = outcome.status
    said = _said(answer.body, secrets)
    if says(ErrorKind.ARC_AGENT_UNAVAILABLE, answer.body) or status >= 500:
        return result(ARC_AGENT_DISCONNECTED, f"HTTP {status} after a valid challenge: {said or 'no error text'}")
    if says(ErrorKind.INVALID_RESOURCE, answer.body):
        return result(TOKEN_AUDIENCE_UNKNOWN, f"HTTP {status}: {said}")
    if answer.code in (None, HTTP_UNEXPECTED, HTTP_NOT_IMDS) and 400 <= status < 500:
        return result(ARC_AUTHORISED_REQUEST_REFUSED, f"HTTP {status} after a valid challenge: {said or 'no error text'}")
    return result(answer.code or ARC_AUTHORISED_REQUEST_REFUSED, f"{answer.detail} after a valid challenge")


def _token_answer(outcome, evidence, result, secrets, selectors) -> CheckResult:
    try:
        payload = outcome.json()
    except ValueError as err:
        return result(ARC_TOKEN_UNUSABLE, f"HTTP {outcome.status} but {err}")
    if not isinstance(payload, dict):
        return result(ARC_TOKEN_UNUSABLE, f"HTTP {outcome.status} but the body is JSON {type(payload).__name__}, not an object")
    token = payload.get("access_token")
    token_secrets = secrets + ((token,) if isinstance(token, str) and token else ())
    # The client redacted the excerpt already; rebuild it from the parsed body, token removed.
    excerpt = json.dumps(redact_value(payload, token_secrets))[:240]
    attempts = _scrub(outcome.attempts[:-1] + (replace(outcome.attempts[-1], body_excerpt=excerpt),), token_secrets)
    fields = {k: payload.get(k) for k in ("token_type", "resource", "expires_in", "expires_on",
                                          "client_id", "object_id", "msi_res_id", "mi_res_id") if k in payload}
    extra: dict[str, Any] = {"response_fields": redact_value(fields, token_secrets),
                             "keys": sorted(str(k) for k in payload)}
    del payload
    if not token or not isinstance(token, str):
        return result(ARC_TOKEN_UNUSABLE, "HTTP 200 without a non-empty access_token", extra, attempts)
    if fields.get("expires_in") in (None, ""):
        also = " (azure-identity's async client would accept expires_on)" if fields.get("expires_on") else ""
        return result(ARC_TOKEN_UNUSABLE, f"HTTP 200 without expires_in, which MSAL requires{also}", extra, attempts)
    claims = decode_claims(token, now=outcome.received_at)
    del token
    extra["claims"] = redact_value(claims, token_secrets)
    if "error" in claims:
        return result(ARC_TOKEN_UNUSABLE, f"HTTP 200 but the access_token is {claims['error']}", extra, attempts)
    if selectors:
        name, wanted = selectors[0]
        echoed = fields.get(name) or (fields.get("mi_res_id") if name == "msi_res_id" else None)
        if not echoed or str(echoed).lower() != wanted.lower():
            return result(ARC_USER_ASSIGNED_NOT_CONFIRMED,
                          f"token issued, but {name} was {'echoed as ' + repr(echoed) if echoed else 'not echoed'}; "
                          "MSAL and azure-identity refuse it", extra, attempts)
    mirid = str(claims.get("xms_mirid", ""))
    who = mirid.rsplit("/", 1)[-1] if mirid else claims.get("oid", "?")
    return result(ARC_OK_CHAIN, f"aud={claims.get('aud')} identity={who} expires in "
                  f"{claims.get('expires_in_s', fields.get('expires_in'))} s", extra, attempts)


# --------------------------------------------------------------------------------------------
# The environment variables clients use to choose the Arc flow
# --------------------------------------------------------------------------------------------

ENV_COMMANDS = Commands(
    curl=("env | grep -E '^(IDENTITY_ENDPOINT|IMDS_ENDPOINT)='; "
          f"cat {ENV_DROPIN}; systemctl show-environment | grep -E 'IDENTITY_ENDPOINT|IMDS_ENDPOINT'"),
    powershell=("[Environment]::GetEnvironmentVariable('IDENTITY_ENDPOINT','Machine'); "
                "[Environment]::GetEnvironmentVariable('IMDS_ENDPOINT','Machine'); "
                "$env:IDENTITY_ENDPOINT; $env:IMDS_ENDPOINT"),
)


def read_dropin(machine: Any, path: str = ENV_DROPIN) -> dict[str, str] | None:
    """The variables the agent's systemd drop-in gives services (None if there is none)."""
    text, _ = machine.read_file(path, 65536)
    return None if text is None else parse_dropin(text)


def parse_dropin(text: str) -> dict[str, str]:
    """``DefaultEnvironment=`` IDENTITY_ENDPOINT / IMDS_ENDPOINT of a systemd drop-in (pure)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if not sep or name.strip() != "DefaultEnvironment":
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            continue
        for word in words:
            key, eq, val = word.partition("=")
            if eq and key in (IDENTITY_ENDPOINT_ENV, IMDS_ENDPOINT_ENV):
                found[key] = val
    return found


def _points_to_himds(value: str, *, token_path: bool) -> bool:
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return False
    path_ok = parts.path.rstrip("/") == TOKEN_PATH if token_path else parts.path in ("", "/")
    return parts.scheme == "http" and (parts.hostname or "") in LOCAL_HOSTS and port == ARC_PORT and path_ok


def check_arc_environment(
    env: Mapping[str, str],
    *,
    host: Any,
    dropin_path: str = ENV_DROPIN,
    himds_binary: str = HIMDS_BINARY_LINUX,
) -> CheckResult:
    """Are IDENTITY_ENDPOINT and IMDS_ENDPOINT visible to this process and pointing to HIMDS?
    ``host`` answers for the drop-in file and the agent binary (Linux)."""
    platform = "win32" if host.os_name == "windows" else host.os_name
    identity_endpoint = env.get(IDENTITY_ENDPOINT_ENV)
    imds_endpoint = env.get(IMDS_ENDPOINT_ENV)
    linux = platform.startswith("linux")
    evidence: dict[str, Any] = {IDENTITY_ENDPOINT_ENV: identity_endpoint and hide_url_credentials(identity_endpoint),
                                IMDS_ENDPOINT_ENV: imds_endpoint and hide_url_credentials(imds_endpoint),
                                "platform": platform}
    if linux:
        evidence["systemd_dropin"] = {"path": dropin_path, "variables": read_dropin(host, dropin_path)}
        evidence["himds_binary_present"] = host.path_kind(himds_binary) not in ("missing", "error")
    competing = [name for name in (IDENTITY_HEADER_ENV, IDENTITY_SERVER_THUMBPRINT_ENV, MSI_ENDPOINT_ENV, MSI_SECRET_ENV)
                 if env.get(name)]
    evidence["competing_variables"] = competing   # names only: IDENTITY_HEADER / MSI_SECRET are secrets

    def result(code: str, detail: str) -> CheckResult:
        return finding("arc.env", code, detail, evidence=evidence, commands=ENV_COMMANDS)

    if competing and ((IDENTITY_HEADER_ENV in competing and identity_endpoint)
                      or {MSI_ENDPOINT_ENV, MSI_SECRET_ENV} <= set(competing)):
        return result(ARC_ENV_OTHER_SOURCE, f"{', '.join(competing)} set: clients pick that source before Arc")
    if not identity_endpoint and not imds_endpoint:
        where = ""
        if linux:
            dropin = evidence["systemd_dropin"]["variables"]
            where = (f"; {dropin_path} sets them for services only" if dropin
                     else f"; no {dropin_path} on this machine")
        return result(ARC_ENV_MISSING, f"neither IDENTITY_ENDPOINT nor IMDS_ENDPOINT is set for this process{where}")
    if not identity_endpoint or not imds_endpoint:
        missing = IDENTITY_ENDPOINT_ENV if not identity_endpoint else IMDS_ENDPOINT_ENV
        return result(ARC_ENV_PARTIAL, f"{missing} is not set; clients need both to choose Arc")
    wrong = [name for name, value, token in ((IDENTITY_ENDPOINT_ENV, identity_endpoint, True),
                                             (IMDS_ENDPOINT_ENV, imds_endpoint, False))
             if not _points_to_himds(value, token_path=token)]
    if wrong:
        return result(ARC_ENV_ELSEWHERE, "; ".join(f"{n}={hide_url_credentials(env.get(n) or '')!r}" for n in wrong)
                      + f" (expected {HIMDS_TOKEN_URL} and {HIMDS_BASE_URL})")
    return result(ARC_ENV_OK, ", ".join(f"{name}={evidence[name]}" for name in (IDENTITY_ENDPOINT_ENV, IMDS_ENDPOINT_ENV)))
