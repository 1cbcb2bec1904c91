"""Proxy analysis: every variable spelling, NO_PROXY forms, curl vs requests, WinHTTP, WinINet.

The standard-library restatement of requests' rules is checked against the real library,
function by function and end to end (property tests; they skip only where requests is not
installed), and in the private namespace both real curl and real requests are pointed at a
local "proxy" to see where they actually connect. ``check`` itself needs no requests.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imds_helpers.analyze import proxy as ours
from imds_helpers.collect import LiveHost
from imds_helpers.collect.hostcmd import CommandOutput
from imds_helpers.analyze.proxy import (analyze_proxy, curl_noproxy_match, windows_proxy_inputs, hide_credentials, proxy_for,
                                requests_decision, windows_bypass_match)

try:
    import requests
    import requests.utils as real_utils
except ImportError:  # the tool needs no requests; only the comparisons with it cannot run
    requests = real_utils = None
needs_requests = pytest.mark.skipif(requests is None, reason="requests is not installed: no real rules to compare with")

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

    assert windows_proxy_inputs(LiveHost(run=run, os_name="linux")) == (None, None) and calls == []
    output, wininet = windows_proxy_inputs(LiveHost(run=run, os_name="windows"))
    assert "testProxy:8999" in output and calls == [(("netsh", "winhttp", "show", "proxy"), 2.0)]
    assert wininet is None   # no winreg here


def test_pipeline_reads_winhttp_on_windows(monkeypatch):
    # The proxy step of the pipeline (not just analyze_proxy) must look at WinHTTP on Windows:
    # a machine-wide WinHTTP proxy is what Windows services such as AMA use.
    # proxy_step builds a live session: the host's OS is collect.current_os(), its commands the
    # runner's. Only netsh answers (the platform step's powershell/sc/systemctl are "not installed").
    import imds_helpers.collect
    from imds_helpers.api import CheckOptions, proxy_step

    netsh = real("windows_netsh_winhttp_set_proxy_output_with_proxy.txt")
    calls: list[tuple[str, ...]] = []

    def run(argv, timeout):
        calls.append(tuple(argv))
        if tuple(argv[:2]) == ("netsh", "winhttp"):
            return CommandOutput(tuple(argv), 0, netsh)
        return CommandOutput(tuple(argv), None, error="not_found")

    opts = CheckOptions(endpoint=IMDS, env={}, runner=run)
    monkeypatch.setattr(imds_helpers.collect, "current_os", lambda: "windows")
    codes = [c.code for c in proxy_step(opts)]
    assert codes == ["IMDS-PROXY-000", "IMDS-PROXY-004"]
    assert ("netsh", "winhttp", "show", "proxy") in calls

    calls.clear()
    monkeypatch.setattr(imds_helpers.collect, "current_os", lambda: "linux")   # nothing to read off Windows
    assert [c.code for c in proxy_step(opts)] == ["IMDS-PROXY-000"]
    assert not any(argv[0] == "netsh" for argv in calls)


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


@needs_requests
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=st.dictionaries(st.sampled_from(_NAMES), st.sampled_from(_VALUES), max_size=6),
       endpoint=st.sampled_from([IMDS, ARC, "http://127.0.0.1:40342", "http://[::1]:40342"]))
def test_emulation_matches_real_requests(env, endpoint):
    url = endpoint + "/metadata/instance"
    with mock.patch.dict(os.environ, env, clear=True):
        session = requests.Session()
        merged = session.merge_environment_settings(url, {}, None, None, None)["proxies"]
        expected = real_utils.select_proxy(url, merged)
    assert proxy_for(endpoint, env) == expected
    assert requests_decision(endpoint, env).proxy == (hide_credentials(expected) if expected else None)


# --- each of requests' helpers against ours, over many inputs ----------------------------------

def _outcome(fn, *args):
    """What a call answers, or the kind of exception it raises."""
    try:
        return ("value", fn(*args))
    except Exception as err:  # noqa: BLE001 - the kind is what is compared
        return ("raises", type(err))


def _same_or_safer(real_fn, our_fn, *args):
    """Ours answers what requests answers; where requests raises ValueError (a NUL or a lone
    surrogate, which no real environment can hold) ours answers False instead."""
    expected = _outcome(real_fn, *args)
    if expected[0] == "raises" and issubclass(expected[1], ValueError):
        assert our_fn(*args) is False
    else:
        assert _outcome(our_fn, *args) == expected, args


_OCTET = st.one_of(st.integers(0, 300).map(str), st.integers(0, 255).map(hex), st.integers(0, 255).map(lambda n: f"0{n:o}"),
                   st.integers(0, 2**32 + 5).map(str), st.sampled_from(["", "0x", "08", "+1", "-1", " 1", "１"]))
_IPISH = st.lists(_OCTET, min_size=1, max_size=5).map(".".join)
_ADDRESS = st.one_of(
    st.tuples(_IPISH, st.sampled_from(["", "", " ", " junk", ".", "\t1", "x", "\n", "\x00", "/"])).map("".join),
    st.text(alphabet="0123456789./xXabcf -+_:\t\n\x00\u0661\u00e9\ud800", max_size=24),
)
_MASK = st.one_of(st.integers(-3, 40).map(str),
                  st.sampled_from([" 16", "+8", "1_6", "\u0661\u0666", "16 ", "", "x", "0x10", "032", "8\x00"]))
_CIDR = st.one_of(st.tuples(_ADDRESS, _MASK).map("/".join), st.tuples(_ADDRESS, _MASK, _MASK).map("/".join), _ADDRESS)


@needs_requests
@settings(max_examples=1500, deadline=None)
@given(text=_ADDRESS)
def test_is_ipv4_address_matches_requests(text):
    _same_or_safer(real_utils.is_ipv4_address, ours.is_ipv4_address, text)


@needs_requests
@settings(max_examples=1500, deadline=None)
@given(text=_CIDR)
def test_is_valid_cidr_matches_requests(text):
    _same_or_safer(real_utils.is_valid_cidr, ours.is_valid_cidr, text)


def _dotted(number: int) -> str:
    return ".".join(str((number >> shift) & 0xFF) for shift in (24, 16, 8, 0))


@needs_requests
@settings(max_examples=1500, deadline=None)
@example(base=0xA9FEA9FE, flips={0}, bits=32, other="169.254.169.255")
@example(base=0xA9FEA9FE, flips={31}, bits=1, other="41.254.169.254")
@example(base=0x0A000001, flips={7}, bits=24, other="10.0.0.129")
@example(base=0x0A000001, flips={8}, bits=24, other="10.0.1.1")
@example(base=0x7F000001, flips={31, 0}, bits=0, other="127.1")
@given(base=st.integers(0, 2**32 - 1), flips=st.sets(st.integers(0, 31), max_size=2), bits=st.integers(0, 32),
       other=_IPISH)
def test_address_in_network_matches_requests(base, flips, bits, other):
    # Addresses a bit or two apart, so every mask length decides; and odd spellings ("127.1").
    net = f"{_dotted(base ^ sum(1 << f for f in flips))}/{bits}"
    for ip in (_dotted(base), other):
        if real_utils.is_ipv4_address(ip):
            assert ours.address_in_network(ip, net) == real_utils.address_in_network(ip, net), (ip, net)
    if real_utils.is_ipv4_address(other):
        assert ours.address_in_network(_dotted(base), f"{other}/{bits}") == \
            real_utils.address_in_network(_dotted(base), f"{other}/{bits}")


def test_address_in_network_examples():
    assert ours.address_in_network("169.254.169.254", "169.254.0.0/16")
    assert not ours.address_in_network("169.254.169.254", "169.255.0.0/16")
    assert ours.address_in_network("10.1.2.3", "0.0.0.0/0") and ours.address_in_network("127.0.0.1", "127.1/8")
    assert ours.is_valid_cidr("169.254.0.0/ 16") and not ours.is_valid_cidr("169.254.0.0/0")
    assert ours.is_ipv4_address("127.1") and not ours.is_ipv4_address("\x00")
    with pytest.raises(ValueError):
        ours.address_in_network("10.0.0.1", "10.0.0.0/33")


_HOSTS = st.one_of(_IPISH, st.lists(st.sampled_from(["localhost", "LOCALHOST", "169", "254", "metadata", "a", "example",
                                                     "com", "Example", "xn--bcher-kva"]), min_size=1, max_size=4).map(".".join),
                   st.sampled_from(["[::1]", "[fe80::1]", "169.254.169.254", "localhost"]))
_URLS = st.tuples(st.sampled_from(["http", "https", "HTTP", "ftp"]), _HOSTS,
                  st.sampled_from(["", ":80", ":40342", ":0", ":443", ":"]),
                  st.sampled_from(["/metadata/instance", "", "/x?y=1"])).map(lambda t: f"{t[0]}://{t[1]}{t[2]}{t[3]}")


@needs_requests
@settings(max_examples=1000, deadline=None)
@given(url=st.one_of(_URLS, st.sampled_from(["file:///etc/hosts", "http:///x", "mailto:a@b"])),
       proxies=st.dictionaries(st.sampled_from(["http", "https", "all", "HTTP", "http://169.254.169.254", "all://localhost",
                                                "http://localhost", "all://169.254.169.254", "https://localhost", "no"]),
                               st.sampled_from([P, "http://other:8080", ""]), max_size=5))
def test_select_proxy_matches_requests(url, proxies):
    assert _outcome(ours.select_proxy, url, proxies) == _outcome(real_utils.select_proxy, url, dict(proxies))


_ENTRY = st.one_of(_HOSTS, _CIDR.filter(lambda t: "\x00" not in t and "\ud800" not in t),
                   st.tuples(_HOSTS, st.sampled_from([":80", ":40342", "/16", "/32", "/8"])).map("".join),
                   st.sampled_from(["*", ".localhost", ".254", "254", "169.254.*", ".169.254.169.254", "LOCALHOST."]))
_NO_PROXY = st.tuples(st.lists(_ENTRY, max_size=4), st.sampled_from([",", ", ", " ", ",,", "\t,", " , "])).map(
    lambda t: t[1].join(t[0]))


@needs_requests
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(url="http://localhost:40342/metadata/instance", env={"no_proxy": "LOCALHOST:40342"})
@example(url="http://localhost:40342/metadata/instance", env={"NO_PROXY": "localhost:40342", "no_proxy": ""})
@example(url="http://127.0.0.1:40342/metadata/instance", env={"no_proxy": "127.0.0.1:40342,.0.0.1"})
@example(url="http://169.254.169.254/metadata/instance", env={"no_proxy": "169.254.169.254/ 32", "NO_PROXY": "*"})
@given(url=_URLS, env=st.dictionaries(st.sampled_from(["no_proxy", "NO_PROXY", "No_Proxy", "no_PROXY", "http_proxy"]),
                                      st.one_of(_NO_PROXY, st.just("")), max_size=3))
def test_should_bypass_proxies_matches_requests(url, env):
    with mock.patch.dict(os.environ, env, clear=True):
        expected = _outcome(real_utils.should_bypass_proxies, url, None)
    got = _outcome(lambda u: ours._requests_bypass(u, env)[0], url)
    assert got == expected, (url, env)


def _check_without_requests(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict]:
    """``check --json`` from a copy of the package under ``python -S -I`` (no site-packages:
    requests and every other third-party package are unimportable); its stderr ends with the
    non-standard-library modules it loaded."""
    shutil.copytree(Path(ours.__file__).parents[1], tmp_path / "imds_helpers", ignore=shutil.ignore_patterns("__pycache__"))
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from imds_helpers.cli import main\n"
            "rc = main(['check', '--json', '--target', 'vm', '--timeout', '1'])\n"
            "extra = sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'imds_helpers'})\n"
            "sys.stderr.write('LOADED ' + ','.join(m for m in extra if not m.startswith('__')) + '\\n')\n"
            "raise SystemExit(rc)")
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "IMDS_RUNBOOK_ENDPOINT": "http://127.0.0.1:9", **env})
    assert "Traceback" not in proc.stderr and proc.returncode in (0, 1), proc.stderr
    assert proc.stderr.splitlines()[-1] == "LOADED ", proc.stderr   # nothing outside the standard library
    report = json.loads(proc.stdout)
    return proc, next(c for c in report["checks"] if c["id"] == "proxy.env")


@pytest.mark.parametrize("env,code,via", [
    ({"HTTPS_PROXY": "http://127.0.0.1:9"}, "IMDS-PROXY-001", None),                # not for http://
    ({"http_proxy": "http://127.0.0.1:9", "NO_PROXY": "10.0.0.0/8"}, "IMDS-PROXY-002", "http://127.0.0.1:9"),
    ({"http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.0/8"}, "IMDS-PROXY-001", None),   # CIDR
    ({"ALL_PROXY": "http://127.0.0.1:9", "no_proxy": ".0.0.1"}, "IMDS-PROXY-003", None),  # urllib: a suffix; curl: no
])
def test_check_with_a_proxy_needs_no_requests(tmp_path, env, code, via):
    # The endpoint is a closed loopback port: only the proxy analysis matters here.
    _, proxy = _check_without_requests(tmp_path, env)
    assert proxy["code"] == code and proxy["evidence"]["requests"]["proxy"] == via, proxy


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
@needs_requests
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
