"""Would a proxy get between a client and the metadata endpoint?

IMDS refuses proxied requests (it rejects ``X-Forwarded-For``) and HIMDS on ``localhost``
cannot be reached through a remote proxy, so every client must go direct. This module
works out, from the configuration alone, what each kind of client would do:

* **Python requests / azure-identity / azure-core**: azure-identity's managed-identity
  credential sends through azure-core's ``RequestsTransport``, which leaves requests'
  ``trust_env`` on (``use_env_settings=True``), so its NO_PROXY rules are requests' (>= 2.31:
  ``Session.merge_environment_settings`` -> ``get_environ_proxies`` -> ``should_bypass_proxies``,
  then ``select_proxy``), restated here in the standard library and compared with the real
  functions in tests/test_proxy.py:

  - proxies: ``urllib``'s ``getproxies_environment`` - every ``<scheme>_proxy`` variable in
    any case; a name ending in lowercase ``_proxy`` wins over the others, and when empty hides
    them; with ``REQUEST_METHOD`` set (CGI) ``HTTP_PROXY`` is ignored; then the first of
    ``http://host``, ``http``, ``all://host``, ``all``.
  - the no-proxy list is ``no_proxy``, or ``NO_PROXY`` when that is unset or empty (never both);
    spaces are deleted, entries split on commas only (a blank does not separate).
  - an IP host (anything ``inet_aton`` accepts) matches an entry that is the same text, or a
    CIDR ``a.b.c.d/n`` with n 1-32 containing it; names are not resolved, ports never match IPs.
  - any other host matches an entry (leading dots removed) that equals it or is a dot-suffix
    of it, compared case-sensitively, with or without ``:port``.
  - then urllib's ``proxy_bypass_environment`` (called here, the running Python's own) on the
    no-proxy value urllib picks (lowercase ``no_proxy`` first): ``*`` alone bypasses everything;
    entries split on commas, stripped, leading dots removed, compared lower-case as names or
    dot-suffixes - so ``.169.254.169.254`` and ``LOCALHOST`` bypass through this second look.
  - async azure-core (aiohttp) uses urllib's rules only: CIDR entries do not work there.
* **curl**: ``http_proxy`` in lowercase only for http URLs (curl ignores ``HTTP_PROXY`` on
  purpose, "httpoxy"), ``https_proxy``/``HTTPS_PROXY`` for https, then ``all_proxy``/``ALL_PROXY``;
  ``no_proxy`` then ``NO_PROXY``; entries separated by commas or blanks; CIDR entries since
  curl 7.86; names case-insensitive with or without a leading or trailing dot, matching
  as dot-suffixes; IPs only exactly or by CIDR; ``*`` only alone; no ports.
  On Windows environment names are case-insensitive, so the distinction disappears.
* **WinHTTP** (``netsh winhttp show proxy``): the machine-wide proxy many Windows services
  use; bypass entries are exact names or ``*`` wildcards, ``<local>`` means "names without a
  dot" (so not 169.254.169.254), CIDR is not understood.
* **WinINet** (Internet Options, per user): the same bypass rules, plus loopback bypassed
  implicitly unless ``<-loopback>`` is listed; Python on Windows falls back to it when no
  proxy variable is set; a PAC script makes the outcome unknowable from here.
"""

from __future__ import annotations

import fnmatch
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlparse, urlsplit

from imds_helpers.model.catalog import (PROXY_BYPASSED, PROXY_CLIENTS_DISAGREE, PROXY_INVALID_URL, PROXY_NONE,
                                  PROXY_NOT_BYPASSED, PROXY_PAC, PROXY_WINHTTP_BYPASSED, PROXY_WINHTTP_NOT_BYPASSED,
                                  PROXY_WINHTTP_UNREADABLE, PROXY_WININET_APPLIES, finding)
from imds_helpers.model.endpoints import COMMAND_API_VERSION, INSTANCE_PATH, WININET_KEY
from imds_helpers.model.findings import CheckResult, Commands, worst
from imds_helpers.model.redact import hide_url_credentials
from imds_helpers.model.validate import proxy_url_problem

if TYPE_CHECKING:  # Windows-only parsers are imported where used
    from imds_helpers.parsers.netsh import WinHttpProxy
    from imds_helpers.parsers.wininet import WinInetProxy

PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                   "no_proxy", "NO_PROXY")


@dataclass(frozen=True)
class ClientDecision:
    """Whether one client (requests or curl) would send the request through a proxy."""

    client: str                   # "requests" (also azure-identity / azure-core) | "curl"
    proxy: str | None             # proxy URL it would use (credentials hidden); None = direct
    variable: str | None = None   # the variable that supplied the proxy
    bypassed_by: str | None = None  # the no_proxy entry that sent it direct
    no_proxy_variable: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"client": self.client, "proxy": self.proxy, "variable": self.variable,
                "bypassed_by": self.bypassed_by, "no_proxy_variable": self.no_proxy_variable,
                "notes": list(self.notes)}


@dataclass(frozen=True)
class ProxyResult:
    """Proxy variables and settings, and what each client would do with them."""

    endpoint: str
    variables: Mapping[str, str]              # every proxy variable that is set (credentials hidden)
    requests: ClientDecision
    curl: ClientDecision
    winhttp: WinHttpProxy | None
    wininet: WinInetProxy | None
    check: CheckResult                        # the worst of ``checks``
    checks: tuple[CheckResult, ...]           # environment, then WinHTTP and WinINet when given

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint, "variables": dict(self.variables), "requests": self.requests.to_dict(),
            "curl": self.curl.to_dict(), "winhttp": self.winhttp.to_dict() if self.winhttp else None,
            "wininet": self.wininet.to_dict() if self.wininet else None, "check": self.check.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
        }


def hide_credentials(proxy: str) -> str:
    """``http://user:pass@host:3128`` -> ``http://<credentials>@host:3128``; never raises, also
    for a value that does not parse."""
    return hide_url_credentials(proxy)


class _WindowsEnv(dict):
    """Windows environment names are case-insensitive; Python stores them upper-cased."""

    def __init__(self, source: Mapping[str, str]) -> None:
        super().__init__((k.upper(), v) for k, v in source.items())

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.upper())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.upper())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.upper(), default)


def _env_view(env: Mapping[str, str] | None, os_name: str) -> dict[str, str]:
    source = dict(os.environ if env is None else env)
    return _WindowsEnv(source) if os_name == "windows" else source


def _request_url(endpoint: str) -> str:
    return endpoint.rstrip("/") + INSTANCE_PATH


# --- requests (azure-identity, azure-core) --------------------------------------------------
# requests' helpers (requests/utils.py), restated in the standard library so that a
# proxy variable needs no requests installed; tests/test_proxy.py compares each with the real
# one. IPv4 text is whatever the C library's inet_aton accepts ("127.1", "0x7f.0.0.1",
# "1.2.3.4 anything" with glibc), exactly as requests sees it.

def is_ipv4_address(text: str) -> bool:
    """requests' ``is_ipv4_address``: ``socket.inet_aton`` accepts it. Text with a NUL or an
    unencodable character (no real environment holds one; requests raises) is not an address."""
    try:
        socket.inet_aton(text)
    except (OSError, ValueError):
        return False
    return True


def is_valid_cidr(text: str) -> bool:
    """requests' ``is_valid_cidr``: exactly one ``/``, a mask ``int()`` reads as 1-32 (so
    `` 16`` and ``+16`` count, ``0`` does not), an address ``inet_aton`` accepts."""
    if text.count("/") != 1:
        return False
    address, _, bits = text.partition("/")
    try:
        mask = int(bits)
    except ValueError:
        return False
    return 1 <= mask <= 32 and is_ipv4_address(address)


def address_in_network(ip: str, net: str) -> bool:
    """requests' ``address_in_network``: the first ``bits`` bits of both addresses agree.
    Defined where requests calls it: ``ip`` an address, ``net`` ``address/0..32``
    (ValueError otherwise)."""
    address, bits = net.split("/")
    width = int(bits)
    if not 0 <= width <= 32:
        raise ValueError(f"netmask /{width} is not 0-32")
    mask = (0xFFFFFFFF << (32 - width)) & 0xFFFFFFFF
    return _inet_aton_int(ip) & mask == _inet_aton_int(address) & mask


def _inet_aton_int(text: str) -> int:
    return int.from_bytes(socket.inet_aton(text), "big")


def select_proxy(url: str, proxies: Mapping[str, str] | None) -> str | None:
    """requests' ``select_proxy``: the first of ``scheme://host``, ``scheme``, ``all://host``,
    ``all`` that ``proxies`` has (a URL without a host: ``scheme``, then ``all``)."""
    proxies = proxies or {}
    parts = urlparse(url)
    if parts.hostname is None:
        return proxies.get(parts.scheme, proxies.get("all"))
    for key in (f"{parts.scheme}://{parts.hostname}", parts.scheme, f"all://{parts.hostname}", "all"):
        if key in proxies:
            return proxies[key]
    return None


def _getproxies_environment(env: Mapping[str, str]) -> dict[str, str]:
    """urllib's ``getproxies_environment`` over a mapping: the same two passes."""
    proxies: dict[str, str] = {}
    for name, value in env.items():
        lowered = name.lower()
        if value and lowered[-6:] == "_proxy":
            proxies[lowered[:-6]] = value
    if "REQUEST_METHOD" in env:
        proxies.pop("http", None)   # CGI: HTTP_PROXY may come from a client's "Proxy:" header
    for name, value in env.items():
        if name[-6:] == "_proxy":
            lowered = name.lower()
            if value:
                proxies[lowered[:-6]] = value
            else:
                proxies.pop(lowered[:-6], None)
    return proxies


def _requests_bypass(url: str, env: Mapping[str, str]) -> tuple[bool, str | None, str | None]:
    """requests' ``should_bypass_proxies``: (bypass, matching entry, variable read)."""
    variable = "no_proxy" if env.get("no_proxy") else "NO_PROXY" if env.get("NO_PROXY") else None
    no_proxy = env.get(variable) if variable else None
    parts = urlparse(url)
    hostname = parts.hostname
    if hostname is None:
        return True, None, variable
    if no_proxy:
        entries = [h for h in no_proxy.replace(" ", "").split(",") if h]
        if is_ipv4_address(hostname):
            for entry in entries:
                if is_valid_cidr(entry):
                    if address_in_network(hostname, entry):
                        return True, entry, variable
                elif hostname == entry:
                    return True, entry, variable
        else:
            with_port = hostname + (f":{parts.port}" if parts.port else "")
            for entry in entries:
                bare = entry.lstrip(".")
                if hostname == bare or with_port == bare or hostname.endswith("." + bare) or with_port.endswith("." + bare):
                    return True, entry, variable
    # Then urllib's own check, on the proxies urllib sees (lowercase no_proxy first). Without
    # a no_proxy entry it answers False, so urllib.request loads only when there is one.
    proxies = _getproxies_environment(env)
    if proxies.get("no"):
        import urllib.request

        if urllib.request.proxy_bypass_environment(hostname, proxies):
            return True, _urllib_entry(hostname, proxies["no"]), "no_proxy/NO_PROXY (urllib)"
    return False, None, variable


def _urllib_entry(hostname: str, no_proxy: str) -> str:
    if no_proxy == "*":
        return "*"
    for name in no_proxy.split(","):
        bare = name.strip().lstrip(".").lower()
        if bare and (hostname == bare or hostname.endswith("." + bare)):
            return name.strip()
    return no_proxy


def requests_decision(endpoint: str, env: Mapping[str, str]) -> ClientDecision:
    url = _request_url(endpoint)
    bypass, entry, no_var = _requests_bypass(url, env)
    notes = []
    if bypass:
        if entry and is_valid_cidr(entry):
            notes.append("CIDR entries work in requests but not in urllib/aiohttp (async azure-core)")
        return ClientDecision("requests", None, bypassed_by=entry, no_proxy_variable=no_var, notes=tuple(notes))
    proxies = _getproxies_environment(env)
    proxy = select_proxy(url, proxies)
    if not proxy:
        return ClientDecision("requests", None, no_proxy_variable=no_var)
    key = urlsplit(url).scheme if proxies.get(urlsplit(url).scheme) else "all"
    variable = _variable_for(env, f"{key}_proxy", proxies[key])
    return ClientDecision("requests", hide_credentials(proxy), variable=variable, no_proxy_variable=no_var,
                          notes=tuple(notes))


def _variable_for(env: Mapping[str, str], lowered: str, value: str) -> str | None:
    names = [n for n, v in env.items() if n.lower() == lowered and v == value]
    return lowered if lowered in names else (names[0] if names else None)


# --- curl ------------------------------------------------------------------------------------

def _curl_atoi(text: str) -> int:
    text = text.lstrip(" \t\n\r\f\v")
    sign, digits = 1, ""
    if text[:1] in ("+", "-"):
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    for ch in text:
        if not ch.isdigit() or not ch.isascii():
            break
        digits += ch
    return sign * int(digits) if digits else 0


def _curl_cidr4(address: str, network: str, bits: int) -> bool:
    if bits < 0 or bits > 32 or not is_ipv4_address(address) or not _strict_ipv4(network):
        return False
    if bits and bits != 32:
        mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
        return (_ip_int(address) ^ _ip_int(network)) & mask == 0
    return _ip_int(address) == _ip_int(network)


def _strict_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and p.isascii() and len(p) <= 3 and int(p) <= 255
                                   and not (len(p) > 1 and p[0] == "0") for p in parts)


def _ip_int(text: str) -> int:
    a, b, c, d = (int(p) for p in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def curl_noproxy_match(host: str, no_proxy: str) -> str | None:
    """curl's ``Curl_check_noproxy`` (lib/noproxy.c, curl 7.86+): the matching entry, or None."""
    if not host or not no_proxy:
        return None
    if no_proxy == "*":
        return "*"
    is_ip = _strict_ipv4(host)
    name = host if is_ip else (host[:-1] if host.endswith(".") else host)
    i, n = 0, len(no_proxy)
    while i < n:
        while i < n and no_proxy[i] in " \t":
            i += 1
        start = i
        while i < n and no_proxy[i] not in " \t,":
            i += 1
        token = no_proxy[start:i]
        if token:
            if is_ip:
                network, slash, bits = token.partition("/")
                if _curl_cidr4(name, network, _curl_atoi(bits) if slash else 0):
                    return token
            else:
                check = token[:-1] if token.endswith(".") else token
                check = check[1:] if check.startswith(".") else check
                if check and (check.lower() == name.lower() or
                              (len(check) < len(name) and name[-len(check) - 1] == "." and
                               name[-len(check):].lower() == check.lower())):
                    return token
        # Blanks separate entries as commas do (curl 7.86+ warns about it but honours it;
        # checked against real curl in tests/test_proxy.py).
        while i < n and no_proxy[i] in " \t,":
            i += 1
    return None


def curl_decision(endpoint: str, env: Mapping[str, str]) -> ClientDecision:
    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value else None

    parts = urlsplit(_request_url(endpoint))
    host = parts.hostname or ""
    no_var = "no_proxy" if get("no_proxy") else "NO_PROXY" if get("NO_PROXY") else None
    no_proxy = get(no_var) if no_var else None
    entry = curl_noproxy_match(host, no_proxy or "")
    if entry is not None:
        notes = ("curl before 7.86 does not understand CIDR entries",) if "/" in entry else ()
        return ClientDecision("curl", None, bypassed_by=entry, no_proxy_variable=no_var, notes=notes)
    scheme = parts.scheme
    candidates = [f"{scheme}_proxy"] + ([] if scheme == "http" else [f"{scheme.upper()}_PROXY"]) + ["all_proxy", "ALL_PROXY"]
    for name in candidates:
        if get(name):
            return ClientDecision("curl", hide_credentials(env[name]), variable=name, no_proxy_variable=no_var)
    notes = ("curl ignores HTTP_PROXY in upper case for http:// URLs",) if scheme == "http" and get("HTTP_PROXY") else ()
    return ClientDecision("curl", None, no_proxy_variable=no_var, notes=notes)


# --- Windows ---------------------------------------------------------------------------------

def windows_bypass_match(host: str, bypass_list: tuple[str, ...], *, implicit_loopback: bool) -> str | None:
    """WinHTTP/WinINet bypass semantics: exact names or ``*``/``?`` wildcards, case-insensitive;
    ``<local>`` = names without a dot; CIDR entries are not understood."""
    lowered = host.lower().strip("[]")
    entries = [e.strip() for e in bypass_list if e.strip()]
    if implicit_loopback and "<-loopback>" not in (e.lower() for e in entries):
        if lowered in ("localhost", "::1") or lowered.startswith("127."):
            return "(implicit loopback bypass)"
    for entry in entries:
        low = entry.lower()
        if low == "<local>":
            if "." not in lowered and ":" not in lowered:
                return entry
            continue
        if low.startswith("<"):
            continue
        pattern = low.split("://", 1)[-1]
        if fnmatch.fnmatchcase(lowered, pattern):
            return entry
    return None


def windows_proxy_inputs(machine: Any) -> tuple[str | None, Mapping[str, Any] | None]:
    """On Windows: (``netsh winhttp show proxy`` output, this user's WinINet values) for
    :func:`analyze_proxy`; (None, None) elsewhere or when unreadable."""
    if machine.os_name != "windows":
        return None, None
    out = machine.run(["netsh", "winhttp", "show", "proxy"], 2.0)
    return (out.stdout if out.error is None else None), machine.wininet()


# --- the analysis ----------------------------------------------------------------------------

def proxy_for(endpoint: str, env: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL (with credentials) that requests/azure-identity would use for the
    endpoint from the environment, or None when they would go direct. For the opt-in
    comparison request through the proxy."""
    view = dict(os.environ if env is None else env)
    url = _request_url(endpoint)
    if _requests_bypass(url, view)[0]:
        return None
    return select_proxy(url, _getproxies_environment(view)) or None


def analyze_proxy(
    endpoint: str,
    *,
    env: Mapping[str, str] | None = None,
    winhttp_output: str | None = None,
    wininet: Mapping[str, Any] | None = None,
    os_name: str = "",
    url_problems: Mapping[str, str] | None = None,
) -> ProxyResult:
    """Proxy configuration for ``endpoint`` (a base URL such as ``http://169.254.169.254``).

    ``env`` defaults to ``os.environ``; ``winhttp_output`` is ``netsh winhttp show proxy``
    text; ``wininet`` the registry values as a dict (what the live host reads from the registry);
    ``os_name="windows"`` makes variable names case-insensitive; ``url_problems`` are the
    variables' URL problems when judged elsewhere (collection judges the raw values, whose
    credentials evidence does not keep). Never raises.
    """
    view = _env_view(env, os_name)
    variables = {name: (value if name.lower() == "no_proxy" else hide_credentials(value))
                 for name, value in view.items() if name.lower() in {v.lower() for v in PROXY_VARIABLES} and value}
    req = requests_decision(endpoint, view)
    curl = curl_decision(endpoint, view)
    host = urlsplit(endpoint).hostname or ""
    commands = _commands(endpoint)
    # Judged on the raw value: a "/" typed inside a password changes what clients parse.
    if url_problems is not None:
        broken = {name: url_problems[name] for name in variables if name in url_problems}
    else:
        broken = {name: problem for name in variables if name.lower() != "no_proxy"
                  and (problem := proxy_url_problem(view[name]))}
    checks = [_env_check(endpoint, host, variables, req, curl, commands, broken)]
    winhttp = inet = None
    # The Windows parsers are imported only when there is Windows input to read.
    if winhttp_output is not None:
        from imds_helpers.parsers.netsh import parse_winhttp_show_proxy

        winhttp = parse_winhttp_show_proxy(winhttp_output)
        checks.append(_winhttp_check(endpoint, host, winhttp, commands))
    if wininet is not None:
        from imds_helpers.parsers.wininet import parse_wininet

        inet = parse_wininet(wininet)
        if inet.kind != "empty":
            checks.append(_wininet_check(endpoint, host, inet, variables, commands))
    overall = worst(c.status for c in checks)
    check = next(c for c in checks if c.status == overall)
    return ProxyResult(endpoint=endpoint, variables=variables, requests=req, curl=curl, winhttp=winhttp,
                       wininet=inet, check=check, checks=tuple(checks))


def _commands(endpoint: str) -> Commands:
    url = _request_url(endpoint) + f"?api-version={COMMAND_API_VERSION}"
    return Commands(
        curl=(f"env | grep -i _proxy; curl -v --connect-timeout 2 -m 5 -s -o /dev/null -H Metadata:true "
              f"\"{url}\" 2>&1 | grep -iE 'proxy|connected'"),
        powershell=("netsh winhttp show proxy; Get-ItemProperty 'HKCU:\\" + WININET_KEY + "' | "
                    "Select-Object ProxyEnable,ProxyServer,ProxyOverride,AutoConfigURL; "
                    "Get-ChildItem env: | Where-Object Name -match '_proxy$'"),
    )


def _no_proxy_hint(host: str) -> str:
    if host in ("localhost", "127.0.0.1", "::1"):
        return "localhost,127.0.0.1"
    return host


def _env_check(endpoint: str, host: str, variables: Mapping[str, str], req: ClientDecision, curl: ClientDecision,
               commands: Commands, broken: Mapping[str, str]) -> CheckResult:
    evidence = {"variables": dict(variables), "requests": req.to_dict(), "curl": curl.to_dict()}
    proxy_vars = [n for n in variables if n.lower() != "no_proxy"]
    if not proxy_vars:
        return finding("proxy.env", PROXY_NONE, "No proxy variable is set in this environment.",
                       evidence=evidence, commands=commands)
    if broken:
        evidence["invalid"] = dict(broken)
        used = "" if req.proxy or curl.proxy else f" ({host} itself is bypassed, so only other requests fail)"
        return finding("proxy.env", PROXY_INVALID_URL,
                       "; ".join(f"{name}={variables[name]!r}: {problem}" for name, problem in broken.items())
                       + f". Clients that read it fail before sending anything{used}.",
                       evidence=evidence, commands=commands)
    if (req.proxy is None) != (curl.proxy is None):
        via, direct = (req, curl) if req.proxy else (curl, req)
        name = "Python requests / azure-identity" if via.client == "requests" else "curl"
        other = "curl" if via.client == "requests" else "Python requests / azure-identity"
        why = "; ".join(direct.notes + via.notes) or (
            f"{other} bypasses it via {direct.bypassed_by!r}" if direct.bypassed_by else f"{other} reads different variables")
        return finding("proxy.env", PROXY_CLIENTS_DISAGREE,
                       f"{name} would send requests for {endpoint} through {via.proxy} (from {via.variable}); "
                       f"{other} would go direct ({why}). A manual test with one can pass while the other fails.",
                       evidence=evidence, commands=commands)
    if req.proxy is not None:
        return finding("proxy.env", PROXY_NOT_BYPASSED,
                       f"Requests for {endpoint} would go through proxy {req.proxy} (from {req.variable}); "
                       f"no_proxy does not cover {host}. Add {_no_proxy_hint(host)} to NO_PROXY and no_proxy.",
                       evidence=evidence, commands=commands)
    entry = req.bypassed_by or curl.bypassed_by
    why = (f"no_proxy entry {entry!r}" if entry else
           f"none of them applies to {urlsplit(endpoint).scheme}:// requests for this endpoint")
    return finding("proxy.env", PROXY_BYPASSED,
                   f"A proxy is configured ({', '.join(proxy_vars)}) but {host} goes direct ({why}).",
                   evidence=evidence, commands=commands)


def _winhttp_check(endpoint: str, host: str, winhttp: WinHttpProxy, commands: Commands) -> CheckResult:
    evidence = {"winhttp": winhttp.to_dict()}
    if winhttp.kind == "direct":
        return finding("proxy.winhttp", PROXY_NONE, "WinHTTP: direct access (no proxy server).",
                       evidence=evidence, commands=commands)
    if winhttp.kind != "proxy":
        return finding("proxy.winhttp", PROXY_WINHTTP_UNREADABLE,
                       f"The netsh winhttp output was {winhttp.kind}; the WinHTTP proxy could not be read.",
                       evidence=evidence, commands=commands)
    entry = windows_bypass_match(host, winhttp.bypass_list, implicit_loopback=False)
    evidence["bypassed_by"] = entry
    if entry:
        return finding("proxy.winhttp", PROXY_WINHTTP_BYPASSED,
                       f"WinHTTP proxy {winhttp.proxy_server} is set; {host} is in its bypass list ({entry}).",
                       evidence=evidence, commands=commands)
    listed = ";".join(winhttp.bypass_list) or "(none)"
    return finding("proxy.winhttp", PROXY_WINHTTP_NOT_BYPASSED,
                   f"WinHTTP proxy {winhttp.proxy_server} is set and its bypass list ({listed}) does not cover "
                   f"{host}" + (" - <local> covers only names without a dot" if "<local>" in listed.lower() else "")
                   + ".", evidence=evidence, commands=commands)


def _wininet_check(endpoint: str, host: str, inet: WinInetProxy, variables: Mapping[str, str],
                   commands: Commands) -> CheckResult:
    evidence = {"wininet": inet.to_dict()}
    if inet.auto_config_url:
        return finding("proxy.wininet", PROXY_PAC,
                       f"Internet Options use a proxy auto-config script ({inet.auto_config_url}); whether "
                       f"{host} goes through a proxy is decided by that script.", evidence=evidence, commands=commands)
    if inet.kind != "proxy":
        return finding("proxy.wininet", PROXY_NONE, "Internet Options (WinINet): no proxy enabled.",
                       evidence=evidence, commands=commands)
    server = inet.server_for(urlsplit(endpoint).scheme) or ""
    entry = windows_bypass_match(host, inet.bypass_list, implicit_loopback=True)
    evidence["bypassed_by"] = entry
    if entry or not server:
        return finding("proxy.wininet", PROXY_BYPASSED,
                       f"Internet Options proxy is enabled but {host} is bypassed ({entry or 'no proxy for this scheme'}).",
                       evidence=evidence, commands=commands)
    python_note = ("" if any(n.lower() != "no_proxy" for n in variables)
                   else " Python on Windows uses this proxy too, since no proxy variable is set.")
    return finding("proxy.wininet", PROXY_WININET_APPLIES,
                   f"Internet Options (this user) send {host} to proxy {server}; bypass list: "
                   f"{';'.join(inet.bypass_list) or '(none)'}.{python_note}", evidence=evidence, commands=commands)
