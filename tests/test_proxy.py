"""Proxy analysis: every variable spelling, NO_PROXY forms, curl vs requests, WinHTTP, WinINet.

The requests emulation is checked against the real library (property test), and in the
private namespace both real curl and real requests are pointed at a local "proxy" to see
where they actually connect.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from unittest import mock

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.utils import select_proxy

from imds_helpers.hostcmd import CommandOutput
from imds_helpers.proxy import (analyze_proxy, curl_noproxy_match, windows_proxy_inputs, hide_credentials, proxy_for,
                                requests_decision, windows_bypass_match)

from loopback_server import AcceptLoop

IMDS = "http://169.254.169.254"
ARC = "http://localhost:40342"
P = "http://proxy.example:3128"
REAL = Path(__file__).resolve().parent / "fixtures" / "real" / "command-output"
netns = pytest.mark.skipif(os.environ.get("IMDS_RUNBOOK_NETNS") != "1",
                           reason="needs tests/isolated.sh's private network namespace (unshare unavailable)")


def real(name: str) -> str:
    return (REAL / name).read_text(encoding="utf-8")


# (endpoint, env, requests uses proxy?, curl uses proxy?, finding code)
CASES = [
    (IMDS, {}, False, False, "IMDS-PROXY-000"),
    (IMDS, {"http_proxy": P}, True, True, "IMDS-PROXY-002"),
    (IMDS, {"HTTP_PROXY": P}, True, False, "IMDS-PROXY-003"),            # curl ignores upper-case HTTP_PROXY
    (IMDS, {"http_proxy": P, "HTTP_PROXY": P, "NO_PROXY": "169.254.169.254"}, False, False, "IMDS-PROXY-001"),
    (IMDS, {"http_proxy": P, "no_proxy": "169.254.0.0/16"}, False, False, "IMDS-PROXY-001"),   # CIDR
    (IMDS, {"http_proxy": P, "no_proxy": "169.254.169.254/32"}, False, False, "IMDS-PROXY-001"),
    (IMDS, {"http_proxy": P, "no_proxy": "*"}, False, False, "IMDS-PROXY-001"),
    (IMDS, {"http_proxy": P, "no_proxy": "localhost,*"}, True, True, "IMDS-PROXY-002"),       # * only alone
    (IMDS, {"http_proxy": P, "no_proxy": "localhost, 169.254.169.254"}, False, False, "IMDS-PROXY-001"),
    (IMDS, {"http_proxy": P, "no_proxy": "localhost 169.254.169.254"}, True, False, "IMDS-PROXY-003"),  # blanks
    (IMDS, {"http_proxy": P, "no_proxy": ".169.254.169.254"}, False, True, "IMDS-PROXY-003"),  # urllib strips dot
    (IMDS, {"http_proxy": P, "no_proxy": "169.254.169.254:80"}, True, True, "IMDS-PROXY-002"),  # no ports for IPs
    (IMDS, {"http_proxy": P, "no_proxy": "169.254.*"}, True, True, "IMDS-PROXY-002"),          # no wildcards
    (IMDS, {"http_proxy": P, "no_proxy": "localhost", "NO_PROXY": "169.254.169.254"}, True, True, "IMDS-PROXY-002"),
    (IMDS, {"http_proxy": P, "no_proxy": "", "NO_PROXY": "169.254.169.254"}, False, False, "IMDS-PROXY-001"),
    (IMDS, {"http_proxy": "", "HTTP_PROXY": P}, False, False, "IMDS-PROXY-001"),  # empty lowercase hides upper
    (IMDS, {"https_proxy": P, "HTTPS_PROXY": P}, False, False, "IMDS-PROXY-001"),  # not for http://
    (IMDS, {"ALL_PROXY": P}, True, True, "IMDS-PROXY-002"),
    (IMDS, {"all_proxy": P, "no_proxy": "169.254.169.254"}, False, False, "IMDS-PROXY-001"),
    (IMDS, {"HTTP_PROXY": P, "REQUEST_METHOD": "GET"}, False, False, "IMDS-PROXY-001"),  # CGI httpoxy guard
    (ARC, {"http_proxy": P}, True, True, "IMDS-PROXY-002"),
    (ARC, {"http_proxy": P, "no_proxy": "LOCALHOST"}, False, False, "IMDS-PROXY-001"),
    (ARC, {"http_proxy": P, "no_proxy": ".localhost"}, False, False, "IMDS-PROXY-001"),
    (ARC, {"http_proxy": P, "no_proxy": "localhost:40342"}, False, True, "IMDS-PROXY-003"),  # requests reads ports
    (ARC, {"http_proxy": P, "no_proxy": "127.0.0.1"}, True, True, "IMDS-PROXY-002"),  # names are not resolved
]


@pytest.mark.parametrize("endpoint,env,via_requests,via_curl,code", CASES)
def test_client_decisions_and_finding(endpoint, env, via_requests, via_curl, code):
    result = analyze_proxy(endpoint, env=env)
    assert (result.requests.proxy is not None, result.curl.proxy is not None) == (via_requests, via_curl)
    assert result.check.code == code and result.checks == (result.check,)
    assert (proxy_for(endpoint, env) is not None) == via_requests
    json.dumps(result.to_dict())


def test_details_name_the_variable_and_the_fix():
    result = analyze_proxy(IMDS, env={"http_proxy": P, "no_proxy": "localhost"})
    assert "http_proxy" in result.check.detail and "169.254.169.254 to NO_PROXY" in result.check.detail
    arc = analyze_proxy(ARC, env={"HTTPS_PROXY": P, "ALL_PROXY": P})
    assert "localhost,127.0.0.1" in arc.check.detail and arc.requests.variable == "ALL_PROXY"
    mixed = analyze_proxy(IMDS, env={"HTTP_PROXY": P})
    assert "curl ignores HTTP_PROXY" in mixed.check.detail
    cidr = analyze_proxy(IMDS, env={"http_proxy": P, "no_proxy": "169.254.0.0/16"})
    assert any("7.86" in n for n in cidr.curl.notes)


def test_credentials_never_shown():
    env = {"http_proxy": "http://alice:s3cret@proxy:3128", "HTTPS_PROXY": "bob:pw2@proxy:3128"}
    result = analyze_proxy(IMDS, env=env)
    text = json.dumps(result.to_dict())
    assert "s3cret" not in text and "pw2" not in text and "<credentials>@proxy:3128" in text
    assert hide_credentials("proxy:3128") == "proxy:3128"
    assert proxy_for(IMDS, env) == "http://alice:s3cret@proxy:3128"   # the opt-in request needs the real URL


def test_windows_names_are_case_insensitive():
    result = analyze_proxy(IMDS, env={"HTTP_PROXY": P, "No_Proxy": "localhost"}, os_name="windows")
    assert result.curl.proxy == P and result.requests.proxy == P   # curl.exe reads HTTP_PROXY on Windows
    assert result.check.code == "IMDS-PROXY-002"
    assert analyze_proxy(IMDS, env={"HTTP_PROXY": P, "no_proxy": "169.254.169.254"},
                         os_name="windows").check.code == "IMDS-PROXY-001"


def test_default_env_is_the_process_environment():
    with mock.patch.dict(os.environ, {"http_proxy": P, "no_proxy": ""}, clear=True):
        assert analyze_proxy(IMDS).requests.proxy == P
        assert proxy_for(IMDS) == P


def test_curl_noproxy_rules():
    assert curl_noproxy_match("169.254.169.254", "169.254.0.0/16") == "169.254.0.0/16"
    assert curl_noproxy_match("169.254.169.254", "10.0.0.0/8,169.254.169.254") == "169.254.169.254"
    assert curl_noproxy_match("169.254.169.254", "169.254.169.0/abc") is None     # atoi -> 0 -> exact compare
    assert curl_noproxy_match("169.254.169.254", "169.254.169.254/33") is None
    assert curl_noproxy_match("169.254.169.254", " ,, 169.254.169.254 ") == "169.254.169.254"
    assert curl_noproxy_match("localhost", "example.com, .LocalHost.") == ".LocalHost."
    assert curl_noproxy_match("notlocalhost", "localhost") is None
    assert curl_noproxy_match("a.localhost", "localhost") == "localhost"


def test_winhttp_fixtures():
    direct = analyze_proxy(IMDS, env={}, winhttp_output=real("windows_netsh_winhttp_show_proxy_direct_access_ja-JP.txt"))
    assert [c.code for c in direct.checks] == ["IMDS-PROXY-000", "IMDS-PROXY-000"]
    local = analyze_proxy(IMDS, env={}, winhttp_output=real("windows_netsh_winhttp_show_proxy_with_proxy_and_local_bypass.txt"))
    assert local.check.code == "IMDS-PROXY-004" and "<local> covers only names without a dot" in local.check.detail
    arc = analyze_proxy(ARC, env={}, winhttp_output=real("windows_netsh_winhttp_show_proxy_with_proxy_and_local_bypass.txt"))
    assert arc.checks[1].code == "IMDS-PROXY-005"    # "localhost" has no dot
    none = analyze_proxy(IMDS, env={}, winhttp_output=real("windows_netsh_winhttp_set_proxy_output_with_proxy.txt"))
    assert none.check.code == "IMDS-PROXY-004" and "(none)" in none.check.detail
    unreadable = analyze_proxy(IMDS, env={}, winhttp_output="garbage")
    assert [c.code for c in unreadable.checks] == ["IMDS-PROXY-000", "IMDS-PROXY-009"]


def test_winhttp_bypass_semantics():
    entries = ("<local>", "*.contoso.com", "169.254.*")
    assert windows_bypass_match("169.254.169.254", entries, implicit_loopback=False) == "169.254.*"
    assert windows_bypass_match("169.254.169.254", ("169.254.0.0/16",), implicit_loopback=False) is None
    assert windows_bypass_match("localhost", ("<local>",), implicit_loopback=False) == "<local>"
    assert windows_bypass_match("127.0.0.1", ("<local>",), implicit_loopback=False) is None
    assert windows_bypass_match("127.0.0.1", (), implicit_loopback=True) == "(implicit loopback bypass)"
    assert windows_bypass_match("127.0.0.1", ("<-loopback>",), implicit_loopback=True) is None
    assert windows_bypass_match("169.254.169.254", ("HTTP://169.254.169.254",), implicit_loopback=False)


def test_wininet_settings():
    proxied = analyze_proxy(IMDS, env={}, wininet={"ProxyEnable": 1, "ProxyServer": "proxy:8080",
                                                   "ProxyOverride": "<local>"})
    assert proxied.check.code == "IMDS-PROXY-006" and "Python on Windows uses this proxy" in proxied.check.detail
    bypassed = analyze_proxy(IMDS, env={}, wininet={"ProxyEnable": 1, "ProxyServer": "proxy:8080",
                                                    "ProxyOverride": "<local>;169.254.169.254"})
    assert bypassed.checks[-1].code == "IMDS-PROXY-001"
    arc = analyze_proxy(ARC, env={}, wininet={"ProxyEnable": 1, "ProxyServer": "https=proxy:8080"})
    assert arc.checks[-1].code == "IMDS-PROXY-001"   # only https is proxied (and loopback is implicit)
    pac = analyze_proxy(IMDS, env={}, wininet={"ProxyEnable": 0, "AutoConfigURL": "http://wpad/wpad.dat"})
    assert pac.check.code == "IMDS-PROXY-007"
    off = analyze_proxy(IMDS, env={}, wininet={"ProxyEnable": 0, "ProxyServer": "proxy:8080"})
    assert [c.code for c in off.checks] == ["IMDS-PROXY-000", "IMDS-PROXY-000"]


def test_windows_inputs_only_on_windows():
    calls = []

    def run(argv, timeout):
        calls.append((tuple(argv), timeout))
        return CommandOutput(tuple(argv), 0, real("windows_netsh_winhttp_set_proxy_output_with_proxy.txt"))

    assert windows_proxy_inputs(run, os_name="linux") == (None, None) and calls == []
    output, wininet = windows_proxy_inputs(run, os_name="windows")
    assert "testProxy:8999" in output and calls == [(("netsh", "winhttp", "show", "proxy"), 2.0)]
    assert wininet is None   # no winreg here


def test_pipeline_reads_winhttp_on_windows(monkeypatch):
    # The proxy step of the pipeline (not just analyze_proxy) must look at WinHTTP on Windows:
    # a machine-wide WinHTTP proxy is what Windows services such as AMA use.
    import imds_helpers.platform
    import imds_helpers.proxy
    from imds_helpers.api import CheckOptions, proxy_step

    netsh = real("windows_netsh_winhttp_set_proxy_output_with_proxy.txt")
    monkeypatch.setattr(imds_helpers.platform, "current_os", lambda: "windows")
    monkeypatch.setattr(imds_helpers.proxy, "windows_proxy_inputs", lambda run=None, os_name="": (netsh, None))
    codes = [c.code for c in proxy_step(CheckOptions(env={}), IMDS)]
    assert codes == ["IMDS-PROXY-000", "IMDS-PROXY-004"]

    monkeypatch.undo()   # the real inputs reader: nothing to read off Windows
    monkeypatch.setattr(imds_helpers.platform, "current_os", lambda: "linux")
    assert [c.code for c in proxy_step(CheckOptions(env={}), IMDS)] == ["IMDS-PROXY-000"]


def test_worst_check_is_reported():
    result = analyze_proxy(IMDS, env={"http_proxy": P, "no_proxy": "169.254.169.254"},
                           winhttp_output=real("windows_netsh_winhttp_set_proxy_output_with_proxy.txt"))
    assert [c.code for c in result.checks] == ["IMDS-PROXY-001", "IMDS-PROXY-004"]
    assert result.check.code == "IMDS-PROXY-004"


# --- the emulation against the real requests library -----------------------------------------

_NAMES = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
          "NO_PROXY", "REQUEST_METHOD", "Http_Proxy", "ftp_proxy"]
_VALUES = ["", P, "http://other:8080", "proxy:1", "169.254.169.254", "169.254.0.0/16", "*", "localhost",
           ".localhost", "LOCALHOST", "localhost:40342", "127.0.0.1", "127.0.0.0/8", " 169.254.169.254 , localhost",
           "localhost 169.254.169.254", ".169.254.169.254", "169.254.169.254:80", "10.0.0.0/8,169.254.169.254/32",
           "169.254.169.254/33", "GET", "*,localhost", "254", ".254"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=st.dictionaries(st.sampled_from(_NAMES), st.sampled_from(_VALUES), max_size=6),
       endpoint=st.sampled_from([IMDS, ARC, "http://127.0.0.1:40342", "http://[::1]:40342"]))
def test_emulation_matches_real_requests(env, endpoint):
    url = endpoint + "/metadata/instance"
    with mock.patch.dict(os.environ, env, clear=True):
        session = requests.Session()
        merged = session.merge_environment_settings(url, {}, None, None, None)["proxies"]
        expected = select_proxy(url, merged)
    assert proxy_for(endpoint, env) == expected
    assert requests_decision(endpoint, env).proxy == (hide_credentials(expected) if expected else None)


# --- real clients in the namespace -------------------------------------------------------------

class _Listener(AcceptLoop):
    """Answers any HTTP request with 204 and remembers the request line."""

    def __init__(self, address: str, port: int = 0) -> None:
        super().__init__(address, port, reuse=True)
        self.lines: list[str] = []
        self.start()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            try:
                self.lines.append(conn.recv(4096).decode("latin-1").split("\r\n", 1)[0])
                conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            except OSError:
                pass


_DIRECT = {IMDS: ("169.254.169.254", 80), ARC: ("127.0.0.1", 40342)}


@netns
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("endpoint,env", [case[:2] for case in CASES])
def test_real_curl_and_requests_go_where_the_analysis_says(endpoint, env):
    direct, proxy = _Listener(*_DIRECT[endpoint]), _Listener("127.0.0.1")
    try:
        _compare_with_real_clients(endpoint, env, direct, proxy)
    finally:
        direct.close()
        proxy.close()


def _compare_with_real_clients(endpoint: str, env: dict[str, str], direct: _Listener, proxy: _Listener) -> None:
    proxy_url = f"http://127.0.0.1:{proxy.port}"
    env = {k: (proxy_url if v == P else v) for k, v in env.items()}
    expected = analyze_proxy(endpoint, env=env)
    url = endpoint + "/metadata/instance"

    before = len(proxy.lines)
    subprocess.run(["curl", "-s", "-o", "/dev/null", "-m", "3", url],
                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}, timeout=10, check=False)
    assert (len(proxy.lines) > before) == (expected.curl.proxy is not None), (env, proxy.lines, direct.lines)

    before = len(proxy.lines)
    with mock.patch.dict(os.environ, env, clear=True):
        requests.get(url, timeout=3)
    assert (len(proxy.lines) > before) == (expected.requests.proxy is not None), (env, proxy.lines, direct.lines)
