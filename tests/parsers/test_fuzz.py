"""Every parser takes any text and returns a classified result; none raises."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imds_helpers.parsers.container import parse_cgroup
from imds_helpers.parsers.dhcp import parse_lease
from imds_helpers.parsers.dmi import parse_dmi_value, vmid_candidates
from imds_helpers.parsers.firewall import Packet, analyze
from imds_helpers.parsers.iproute import parse_ip_route_get, parse_ip_route_show
from imds_helpers.parsers.iptables import parse_iptables, parse_iptables_list
from imds_helpers.parsers.netsh import parse_winhttp_show_proxy
from imds_helpers.parsers.netstat import parse_netstat_rn
from imds_helpers.parsers.nft import parse_nft_ruleset
from imds_helpers.parsers.procroute import parse_proc_net_route
from imds_helpers.parsers.routeprint import parse_route_print
from imds_helpers.parsers.services import parse_sc_query, parse_systemctl_show
from imds_helpers.parsers.wininet import parse_wininet

from .conftest import REAL

# Text that looks like the real thing often enough to reach deep branches: real captures cut
# and spliced with arbitrary characters.
_CAPTURES = sorted(p.read_text(encoding="utf-8") for p in REAL.glob("*.txt"))
_WORDS = ["-A", "-j", "!", "-d", "169.254.169.254/32", "--dport", "80", "DROP", "DNAT", "{", "}", "chain", "table",
          "dev", "via", "src", "default", "nexthop", "RTNETLINK answers:", ":", "\n", "\t", "UHS", "On-link",
          "255.255.255.255", "ip daddr", "skuid", "!=", "--uid-owner", "0", "Chain X (policy DROP)", "ROUTES=",
          "='", "lease {", "option rfc3442-classless-static-routes", ",", "STATE", "FAILED 1060", "WinHTTP:",
          "Proxy :  ", "(none)", "<local>", "10.0.0.1", "/", "-", "FEA9FEA9", "Iface"]
texts = st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(_WORDS) | st.text(max_size=8), max_size=60).map(" ".join),
    st.tuples(st.sampled_from(_CAPTURES), st.integers(0, 3000), st.integers(0, 3000), st.text(max_size=40)).map(
        lambda t: t[0][: t[1]] + t[3] + t[0][t[2]:]),
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PARSERS = [
    (parse_ip_route_show, {"routes", "empty", "unrecognised"}),
    (parse_ip_route_get, {"route", "local", "unreachable", "host_unreachable", "prohibited", "blackhole", "error",
                          "empty", "unrecognised"}),
    (parse_proc_net_route, {"routes", "empty", "unrecognised"}),
    (parse_route_print, {"routes", "empty", "unrecognised"}),
    (parse_netstat_rn, {"routes", "empty", "unrecognised"}),
    (parse_lease, {"lease", "empty", "unrecognised"}),
    (parse_dmi_value, {"value", "empty", "unrecognised"}),
    (parse_cgroup, {"container", "no_marker", "empty", "unrecognised"}),
    (parse_systemctl_show, {"running", "stopped", "failed", "transitioning", "not_found", "no_systemd", "empty",
                            "unrecognised"}),
    (parse_sc_query, {"running", "stopped", "transitioning", "not_found", "empty", "unrecognised"}),
    (parse_winhttp_show_proxy, {"direct", "proxy", "empty", "unrecognised"}),
    (parse_iptables, {"rules", "empty", "unrecognised"}),
    (parse_iptables_list, {"rules", "empty", "unrecognised"}),
    (parse_nft_ruleset, {"rules", "empty", "unrecognised"}),
]


@pytest.mark.parametrize("parse,kinds", PARSERS, ids=[p.__name__ for p, _ in PARSERS])
@FUZZ
@given(text=texts)
def test_any_text_gives_a_classified_result(parse, kinds, text):
    result = parse(text)
    assert result.kind in kinds
    json.dumps(result.to_dict())


@FUZZ
@given(text=texts, port=st.integers(0, 65535))
def test_firewall_analysis_never_raises(text, port):
    rulesets = [parse_iptables(text), parse_nft_ruleset(text)]
    result = analyze(rulesets, Packet("169.254.169.254", port), uid_names={"syslog": 104})
    assert result.kind in {"blocked", "owner_restricted", "redirected", "conditional", "clear"}
    json.dumps(result.to_dict())


@FUZZ
@given(values=st.dictionaries(st.sampled_from(["ProxyEnable", "ProxyServer", "ProxyOverride", "AutoConfigURL",
                                               "AutoDetect", "Other"]),
                              st.one_of(st.text(max_size=40), st.integers(-5, 2**40), st.binary(max_size=8),
                                        st.none(), st.booleans())))
def test_wininet_values_never_raise(values):
    assert parse_wininet(values).kind in {"proxy", "direct", "empty", "unrecognised"}


@FUZZ
@given(text=st.text(max_size=60))
def test_vmid_candidates_never_raise(text):
    assert isinstance(vmid_candidates(text), tuple)
