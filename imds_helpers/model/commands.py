"""Reproduce-by-hand commands in the style of Microsoft's guide: curl with ``--noproxy '*'``
and timeouts, PowerShell ``Invoke-RestMethod -NoProxy``. Secrets stay placeholders."""

from __future__ import annotations

from typing import Mapping
from urllib.parse import urlencode

from imds_helpers.model.findings import Commands

SECRET_PLACEHOLDER = "<secret from the key file>"


def _url(base: str, path: str, params: Mapping[str, str]) -> str:
    query = urlencode(dict(params), safe=":/")
    return f"{base.rstrip('/')}{path}" + (f"?{query}" if query else "")


def http_get(
    base: str,
    path: str,
    params: Mapping[str, str],
    *,
    metadata_header: bool = True,
    basic_auth_placeholder: bool = False,
    connect_timeout: float = 2,
    max_time: float = 10,
) -> Commands:
    """curl / PowerShell for one GET, e.g. the seed guide's instance or token request."""
    url = _url(base, path, params)
    curl = [f"curl -sS --noproxy '*' --connect-timeout {connect_timeout:g} -m {max_time:g}"]
    ps_headers = []
    if metadata_header:
        curl.append("-H Metadata:true")
        ps_headers.append("Metadata='true'")
    if basic_auth_placeholder:
        curl.append(f"-H \"Authorization: Basic {SECRET_PLACEHOLDER}\"")
        ps_headers.append(f"Authorization=\"Basic {SECRET_PLACEHOLDER}\"")
    curl.append(f"\"{url}\"")
    headers = "@{" + "; ".join(ps_headers) + "}" if ps_headers else "@{}"
    powershell = (
        f"Invoke-RestMethod -Headers {headers} -Method GET -NoProxy "
        f"-TimeoutSec {int(max_time)} -Uri \"{url}\" | ConvertTo-Json -Depth 64"
    )
    return Commands(curl=" ".join(curl), powershell=powershell)


def arc_challenge(base: str, path: str, params: Mapping[str, str]) -> Commands:
    """The Arc 401 -> key file -> Basic sequence, as Microsoft's Arc article shows it."""
    url = _url(base, path, params)
    curl = (
        f"realm=$(curl -s --noproxy '*' -m 10 -D - -o /dev/null -H Metadata:true \"{url}\" "
        "| grep -i '^www-authenticate' | cut -d'=' -f2 | tr -d '\\r'); "
        f"sudo curl -sS --noproxy '*' -m 10 -H Metadata:true "
        f"-H \"Authorization: Basic $(sudo cat \"$realm\")\" \"{url}\" | sed 's/\"access_token\":\"[^\"]*\"/\"access_token\":\"<redacted>\"/'"
    )
    powershell = (
        "try { Invoke-WebRequest -UseBasicParsing -NoProxy -Headers @{Metadata='true'} "
        f"-Uri \"{url}\" }} catch {{ $wwwAuth = $_.Exception.Response.Headers['WWW-Authenticate'] }}; "
        "$secret = Get-Content -Raw ($wwwAuth.Split('=')[1]); "
        "$r = Invoke-RestMethod -NoProxy -Headers @{Metadata='true'; Authorization=\"Basic $secret\"} "
        f"-Uri \"{url}\"; $r.access_token = '<redacted>'; $r"
    )
    return Commands(curl=curl, powershell=powershell)
