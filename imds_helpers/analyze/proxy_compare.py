"""The opt-in comparison request THROUGH the configured proxy: instance metadata only,
never a token request, to show the failure a proxy causes for clients that do not bypass
it (IMDS rejects proxied requests via X-Forwarded-For; a proxy cannot reach HIMDS on the
machine's own localhost)."""

from __future__ import annotations

from typing import Any, Mapping

from imds_helpers.model.answers import classify
from imds_helpers.model.catalog import (PROXY_COMPARE_FAILS, PROXY_COMPARE_NONE, PROXY_COMPARE_RELAYS,
                                  PROXY_COMPARE_UNREACHABLE, PROXY_INVALID_URL, finding)
from imds_helpers.model.commands import http_get
from imds_helpers.model.findings import CheckResult, Status
from imds_helpers.analyze.metadata import INSTANCE_PATH, METADATA_HEADERS, SEED_API_VERSION
from imds_helpers.analyze.proxy import hide_credentials, proxy_for, proxy_url_problem

CHECK_ID = "proxy.comparison"


def compare_through_proxy(endpoint: str, client: Any, *, env: Mapping[str, str],
                          url_problems: Mapping[str, str] | None = None, service: str = "vm") -> CheckResult:
    """``client`` sends through the proxy the environment names for ``endpoint`` (the host's
    proxy client); ``env`` is the environment as evidence (credentials hidden) and
    ``url_problems`` the proxy variables' URL problems judged on their raw values."""
    proxy = proxy_for(endpoint, env)
    if proxy is None:
        return finding(CHECK_ID, PROXY_COMPARE_NONE, f"no proxy applies to {endpoint}; nothing to compare")
    shown_proxy = hide_credentials(proxy)
    variable = next((name for name, value in env.items() if value == proxy and name.lower().endswith("_proxy")), None)
    problem = (url_problems or {}).get(variable or "") if url_problems is not None else proxy_url_problem(proxy)
    if problem:
        return finding(CHECK_ID, PROXY_INVALID_URL, f"nothing sent: the proxy {shown_proxy!r} is not a valid URL "
                       f"({problem}); see proxy.env", status=Status.SKIP, evidence={"proxy": shown_proxy})
    params = {"api-version": SEED_API_VERSION, "format": "json"}
    outcome = client.request(endpoint.rstrip("/") + INSTANCE_PATH, params=params, headers=METADATA_HEADERS,
                             retry=False)
    answer = classify(outcome, service=service)
    curl = http_get(endpoint, INSTANCE_PATH, params)
    commands = type(curl)(curl=curl.curl.replace("--noproxy '*'", f"-x {shown_proxy}"),
                          powershell=curl.powershell.replace("-NoProxy", f"-Proxy {shown_proxy}"))
    evidence = {"proxy": shown_proxy, "error_kind": answer.kind, "through_proxy_code": answer.code}
    if answer.code is None:
        code, detail = PROXY_COMPARE_RELAYS, f"through {shown_proxy}: HTTP {outcome.status}, instance document returned"
    elif outcome.status is None:
        code, detail = PROXY_COMPARE_UNREACHABLE, f"through {shown_proxy}: {answer.detail}"
    else:
        code, detail = PROXY_COMPARE_FAILS, f"through {shown_proxy}: {answer.detail}"
    return finding(CHECK_ID, code, detail, elapsed_ms=outcome.elapsed_ms, evidence=evidence,
                   commands=commands, attempts=outcome.attempts)
