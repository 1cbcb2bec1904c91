"""Network path: route decisions on real captures, fake runners, and - in the private
namespace - the real kernel with iptables/nft rules, removed addresses and odd routes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from imds_helpers.collect import LiveHost
from imds_helpers.analyze.network import (assess_route, check_firewall, check_route, check_tcp,
                                  network_checks)
from imds_helpers.parsers.dhcp import parse_lease
from imds_helpers.parsers.iproute import parse_ip_route_get, parse_ip_route_show
from imds_helpers.parsers.procroute import parse_proc_net_route
from imds_helpers.parsers.routeprint import parse_route_print
from imds_helpers.parsers.netstat import parse_netstat_rn
from imds_helpers.collect.hostcmd import CommandOutput
from imds_helpers.model.taxonomy import ErrorKind
from imds_helpers.collect import classify_socket_error

IMDS = "169.254.169.254"
REAL = Path(__file__).resolve().parent / "fixtures" / "real" / "command-output"
netns = pytest.mark.skipif(os.environ.get("IMDS_RUNBOOK_NETNS") != "1",
                           reason="needs tests/isolated.sh's private network namespace (unshare unavailable)")
needs_iptables = pytest.mark.skipif(shutil.which("iptables") is None, reason="iptables is not on PATH")
needs_nft = pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not on PATH")


def host(**kw) -> LiveHost:
    """The live machine the checks now take: the old ``run``/``os_name``/``root`` keywords, recorded."""
    return LiveHost(**kw)


def real(name: str) -> str:
    return (REAL / name).read_text(encoding="utf-8")


class FakeRun:
    """Answers by the first words of the command; anything else is 'not installed'."""

    def __init__(self, answers: dict[tuple[str, ...], str | CommandOutput]) -> None:
        self.answers = answers
        self.calls: list[tuple[tuple[str, ...], float]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandOutput:
        argv = tuple(argv)
        self.calls.append((argv, timeout))
        for prefix, out in self.answers.items():
            if argv[:len(prefix)] == prefix:
                return out if isinstance(out, CommandOutput) else CommandOutput(argv, 0, out)
        return CommandOutput(argv, None, error="not_found")


# --- route decisions on real captures ----------------------------------------------------------

def test_azure_ubuntu_route_via_primary():
    table = parse_ip_route_show(real("linux_ip_addr_and_ip_route_azure_vm_ubuntu_accelnet.txt"))
    facts = assess_route(IMDS, None, table)
    assert facts.code == "IMDS-NET-000" and (facts.interface, facts.source) == ("eth0", "10.0.0.4")


def test_rhel_two_nics_route_via_primary():
    table = parse_ip_route_show(real("linux_ip_4_route_azure_rhel_nva_two_nics.txt"))
    assert assess_route(IMDS, None, table).code == "IMDS-NET-000"


def test_broken_vm_missing_routes_names_the_dhcp_lease():
    table = parse_ip_route_show(real("linux_ip_route_azure_missing_default_and_imds_routes_broken.txt"))
    lease = parse_lease(real("linux_systemd_networkd_dhcp_lease_azure_routes_incl_imds.txt"))
    facts = assess_route(IMDS, None, table, [lease])
    assert facts.code == "IMDS-NET-002"
    assert "no default route" in facts.detail and "169.254.169.254/32 via 10.0.0.1" in facts.detail
    assert "lease" not in assess_route(IMDS, None, table).detail


def test_hetzner_route_on_private_nic_is_evidence_alone_and_a_warning_with_the_table():
    lookup = parse_ip_route_get(real("linux_ip_route_get_169.254.169.254_hetzner_dhcp_route_on_private_nic.txt"))
    alone = assess_route(IMDS, lookup, None)
    assert alone.code == "IMDS-NET-000" and "dev eth1 src 10.255.0.1" in alone.detail
    assert "not available" in alone.detail
    # A table of the same shape (synthetic): the default route leaves through eth0.
    table = parse_ip_route_show("default via 172.31.1.1 dev eth0\n10.0.0.0/16 via 10.0.0.1 dev eth1\n"
                                "169.254.169.254 via 10.0.0.1 dev eth1 proto dhcp src 10.255.0.1\n")
    facts = assess_route(IMDS, lookup, table)
    assert facts.code == "IMDS-NET-003" and "primary interface (default route) is eth0" in facts.detail


def test_secondary_source_address_on_primary_nic():
    table = parse_ip_route_show(real("linux_ip_addr_and_ip_route_azure_vm_ubuntu_accelnet.txt"))
    lookup = parse_ip_route_get("169.254.169.254 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0\n    cache\n")
    assert assess_route(IMDS, lookup, table).code == "IMDS-NET-005"


def test_kernel_refusals_and_local_address():
    for text in ("RTNETLINK answers: Network is unreachable", "RTNETLINK answers: Invalid argument"):
        facts = assess_route(IMDS, parse_ip_route_get(text), None)
        assert facts.code == "IMDS-NET-002" and "RTNETLINK" in facts.detail
    local = assess_route(IMDS, parse_ip_route_get("local 169.254.169.254 dev lo src 169.254.169.254 uid 0"), None)
    assert local.code == "IMDS-NET-004"
    blackhole = parse_ip_route_show("default via 10.0.0.1 dev eth0\nblackhole 169.254.169.254\n")
    assert assess_route(IMDS, None, blackhole).code == "IMDS-NET-002"
    assert assess_route(IMDS, None, None).code == "IMDS-NET-009"


@pytest.mark.parametrize("name,parse", [
    ("windows_route_print_azure_vm_single_nic.txt", parse_route_print),
    ("windows_route_print_azure_vm_two_nics.txt", parse_route_print),
    ("freebsd_netstat_rn_azure_with_imds_route.txt", parse_netstat_rn),
    ("linux_proc_net_route_azure_with_imds_route.txt", parse_proc_net_route),
])
def test_other_tables_route_via_primary(name, parse):
    assert assess_route(IMDS, None, parse(real(name))).code == "IMDS-NET-000"


def test_windows_route_on_secondary_nic():
    text = real("windows_route_print_azure_vm_two_nics.txt").replace(
        "169.254.169.254  255.255.255.255         10.1.0.1         10.1.0.4", 
        "169.254.169.254  255.255.255.255         10.1.0.1         10.1.0.6")
    facts = assess_route(IMDS, None, parse_route_print(text))
    assert facts.code == "IMDS-NET-003" and "10.1.0.6" in facts.detail


# --- check_route with fake commands -----------------------------------------------------------

def test_check_route_linux_commands_and_timeouts():
    run = FakeRun({("ip", "route", "get"): real("linux_ip_route_get_169.254.169.254_hetzner_dhcp_route_on_private_nic.txt"),
                   ("ip", "route", "show"): real("linux_ip_addr_and_ip_route_azure_vm_ubuntu_accelnet.txt")})
    result = check_route(machine=host(run=run, os_name="linux", root="/nonexistent"))
    assert result.code == "IMDS-NET-003" and result.evidence["interface"] == "eth1"
    assert result.commands.curl.startswith("ip route get 169.254.169.254")
    assert "Get-NetRoute -DestinationPrefix 169.254.169.254/32" in result.commands.powershell
    assert [c[0][:3] for c in run.calls] == [("ip", "route", "get"), ("ip", "route", "show")]
    assert all(timeout <= 2.0 for _, timeout in run.calls)
    json.dumps(result.to_dict())


def test_check_route_without_ip_reads_proc_net_route(tmp_path):
    (tmp_path / "proc/net").mkdir(parents=True)
    (tmp_path / "proc/net/route").write_text(real("linux_proc_net_route_azure_with_imds_route.txt"))
    result = check_route(machine=host(run=FakeRun({}), os_name="linux", root=str(tmp_path)))
    assert result.code == "IMDS-NET-000" and result.evidence["table"]["format"] == "proc-net-route"


def test_check_route_missing_route_reads_leases(tmp_path):
    leases = tmp_path / "run/systemd/netif/leases"
    leases.mkdir(parents=True)
    (leases / "2").write_text(real("linux_systemd_networkd_dhcp_lease_azure_routes_incl_imds.txt"))
    run = FakeRun({("ip", "route", "get"): CommandOutput(("ip",), 2, "", "RTNETLINK answers: Network is unreachable\n"),
                   ("ip", "route", "show"): real("linux_ip_route_azure_missing_default_and_imds_routes_broken.txt")})
    result = check_route(machine=host(run=run, os_name="linux", root=str(tmp_path)))
    assert result.code == "IMDS-NET-002" and result.status.value == "fail"
    assert "DHCP lease offers 169.254.169.254/32" in result.detail and result.evidence["dhcp_leases"]


def test_check_route_nothing_readable_is_skip(tmp_path):
    result = check_route(machine=host(run=FakeRun({}), os_name="linux", root=str(tmp_path)))
    assert result.code == "IMDS-NET-009" and result.status.value == "skip"
    assert result.evidence["ip_route_get"]["error"] == "not_found"


def test_check_route_windows_and_freebsd():
    windows = check_route(machine=host(run=FakeRun({("route", "print"): real("windows_route_print_azure_vm_two_nics.txt")}),
                                       os_name="windows"))
    assert windows.code == "IMDS-NET-000" and windows.evidence["interface"] == "10.1.0.4"
    bsd = check_route(machine=host(run=FakeRun({("netstat",): real("freebsd_netstat_rn_azure_with_imds_route.txt")}),
                                   os_name="freebsd", root="/nonexistent"))
    assert bsd.code == "IMDS-NET-000" and bsd.evidence["interface"] == "em0"


def test_loopback_needs_no_route_command():
    run = FakeRun({})
    assert check_route("127.0.0.1", machine=host(run=run)).code == "IMDS-NET-001"
    assert check_route("localhost", machine=host(run=run)).code == "IMDS-NET-001"
    assert run.calls == []


# --- firewall with fake commands --------------------------------------------------------------

def test_firewall_not_readable_is_skip():
    denied = CommandOutput(("iptables-save",), 1, "", "iptables-save v1.8.9 (nf_tables): Could not fetch rule set "
                           "generation id: Permission denied (you must be root)\n")
    result = check_firewall(machine=host(run=FakeRun({("iptables-save",): denied}), os_name="linux"))
    assert result.code == "IMDS-NET-029" and "Permission denied" in result.detail
    assert check_firewall(machine=host(os_name="windows")).code == "IMDS-NET-029"


def test_firewall_with_no_rules_loaded_is_clear_and_says_so():
    result = check_firewall(machine=host(run=FakeRun({("iptables-save",): "", ("nft",): ""}), os_name="linux"))
    assert result.code == "IMDS-NET-020" and result.status.value == "ok"
    assert result.detail == "No firewall rules are loaded: nothing blocks or redirects 169.254.169.254:80."
    assert result.evidence["rulesets"] == [] and result.evidence["iptables-save"]["empty"] is True
    assert result.evidence["nft list ruleset"]["empty"] is True
    # Tables without rules (left behind by an earlier iptables call) read the same.
    tables = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    again = check_firewall(machine=host(run=FakeRun({("iptables-save",): tables, ("nft",): ""}), os_name="linux"))
    assert (again.code, again.detail) == (result.code, result.detail)
    assert again.evidence["rulesets"][0]["kind"] in ("rules", "empty")


def test_firewall_empty_iptables_still_reads_nft_rules():
    nft = ("table inet filter {\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n"
           "\t\tip daddr 169.254.169.254 tcp dport 80 drop\n\t}\n}\n")
    result = check_firewall(machine=host(run=FakeRun({("iptables-save",): "", ("nft",): nft}), os_name="linux"))
    assert result.code == "IMDS-NET-021" and result.evidence["iptables-save"]["empty"] is True


def test_firewall_falls_back_to_iptables_S_per_table():
    run = FakeRun({("iptables", "-t", "filter"): "-P OUTPUT ACCEPT\n-A OUTPUT -d 169.254.169.254/32 -j DROP\n",
                   ("iptables", "-t", "nat"): real("linux_iptables_rules_azure_monitor_agent_imds_dnat_commands.txt")})
    result = check_firewall(machine=host(run=run, os_name="linux"))
    assert result.code == "IMDS-NET-021" and "-A OUTPUT -d 169.254.169.254/32 -j DROP" in result.detail
    assert result.evidence["analysis"]["redirects"]


def test_firewall_dnat_from_aks_capture():
    run = FakeRun({("iptables-save",): real("linux_iptables_nat_S_aad-metadata_aks_nmi_imds_dnat.txt")})
    result = check_firewall(machine=host(run=run, os_name="linux"))
    assert result.code == "IMDS-NET-023" and "10.240.3.134:2579" in result.detail


def test_firewall_nft_copies_of_iptables_nft_rules_are_not_counted_twice():
    save = "*filter\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DROP\nCOMMIT\n"
    nft = CommandOutput(("nft",), 0,
                        "table ip filter {\n\tchain OUTPUT {\n\t\ttype filter hook output priority filter; policy accept;\n"
                        "\t\tip daddr 169.254.169.254 tcp dport 80 counter packets 0 bytes 0 drop\n\t}\n}\n",
                        "# Warning: table ip filter is managed by iptables-nft, do not touch!\n")
    result = check_firewall(machine=host(run=FakeRun({("iptables-save",): save, ("nft",): nft}), os_name="linux"))
    assert result.code == "IMDS-NET-021"
    assert [r["rule_count"] for r in result.evidence["rulesets"]] == [1, 0]
    assert result.evidence["analysis"]["mentions"] == ["-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DROP"]


# --- classification -----------------------------------------------------------------------------

@pytest.mark.parametrize("exc,kind", [
    (socket.timeout("timed out"), ErrorKind.CONNECT_TIMEOUT),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), ErrorKind.CONNECT_REFUSED),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), ErrorKind.NETWORK_UNREACHABLE),
    (OSError(errno.EHOSTUNREACH, "No route to host"), ErrorKind.HOST_UNREACHABLE),
    (ConnectionResetError(errno.ECONNRESET, "reset"), ErrorKind.CONNECTION_RESET),
    (OSError(errno.ETIMEDOUT, "timed out"), ErrorKind.CONNECT_TIMEOUT),
    (OSError(10051, "WSAENETUNREACH"), ErrorKind.NETWORK_UNREACHABLE),
    (OSError(10065, "WSAEHOSTUNREACH"), ErrorKind.HOST_UNREACHABLE),
    (OSError(errno.EACCES, "Permission denied"), ErrorKind.TRANSPORT_ERROR),
    (OSError("no errno"), ErrorKind.TRANSPORT_ERROR),
])
def test_classify_socket_error(exc, kind):
    assert classify_socket_error(exc) is kind


def test_tcp_loopback_listening_and_closed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        ok = check_tcp("127.0.0.1", port, timeout=1.0, machine=host())
    assert ok.code == "IMDS-NET-010" and ok.evidence["source_address"] == "127.0.0.1"
    assert ok.evidence["elapsed_ms"] < 1000 and "Test-NetConnection 127.0.0.1 -Port" in ok.commands.powershell
    refused = check_tcp("127.0.0.1", port, timeout=1.0, machine=host())     # closed now
    assert refused.code == "IMDS-NET-012" and refused.evidence["error_kind"] == "connect_refused"
    assert refused.status.value == "fail"


def test_tcp_name_resolution_failure_is_a_finding(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", fail)
    result = check_tcp("imds.invalid", 80, machine=host())
    assert result.code == "IMDS-NET-017" and result.evidence["error_kind"] == "transport_error"


def test_network_checks_for_loopback_endpoint():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        run = FakeRun({("iptables-save",): "*filter\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -o lo -j ACCEPT\nCOMMIT\n"})
        route, tcp, firewall = network_checks(f"http://localhost:{port}", timeout=1.0,
                                              machine=host(run=run, os_name="linux"))
    assert (route.code, tcp.code, firewall.code) == ("IMDS-NET-001", "IMDS-NET-010", "IMDS-NET-020")
    assert firewall.evidence["packet"] == {"address": "127.0.0.1", "port": port, "source": "127.0.0.1",
                                           "out_interface": "lo"}
    assert not any(argv[0] == "ip" for argv, _ in run.calls)


# --- the real kernel (private namespace only) ---------------------------------------------------

def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=10)


@contextmanager
def iptables_rule(*spec: str, table: str = "filter") -> Iterator[None]:
    _sh("iptables", "-t", table, "-I", *spec)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-t", table, "-D", *spec], capture_output=True, timeout=10)


@pytest.fixture
def imds_listener() -> Iterator[int]:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((IMDS, 80))
        server.listen(8)
        yield 80


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind((IMDS, 0))
        return probe.getsockname()[1]


DROP = ("OUTPUT", "-d", IMDS, "-p", "tcp", "--dport", "80", "-j")


@netns
@needs_iptables
def test_real_drop_times_out_within_the_timeout(imds_listener):
    with iptables_rule(*DROP, "DROP"):
        start = time.monotonic()
        result = check_tcp(IMDS, 80, timeout=1.0, machine=host())
        took = time.monotonic() - start
        firewall = check_firewall(IMDS, 80, machine=host())
    assert result.code == "IMDS-NET-011" and result.evidence["error_kind"] == "connect_timeout"
    assert 0.9 <= took < 1.6
    assert firewall.code == "IMDS-NET-021"
    assert any(IMDS in text and "DROP" in text for text in firewall.evidence["analysis"]["mentions"])


@netns
@needs_iptables
@pytest.mark.parametrize("reject_with,code,kind", [
    ("tcp-reset", "IMDS-NET-012", "connect_refused"),
    ("icmp-port-unreachable", "IMDS-NET-012", "connect_refused"),
    ("icmp-net-unreachable", "IMDS-NET-013", "network_unreachable"),
    ("icmp-host-unreachable", "IMDS-NET-014", "host_unreachable"),
    ("icmp-admin-prohibited", "IMDS-NET-014", "host_unreachable"),
])
def test_real_reject_variants(imds_listener, reject_with, code, kind):
    with iptables_rule(*DROP, "REJECT", "--reject-with", reject_with):
        result = check_tcp(IMDS, 80, timeout=1.0, machine=host())
        firewall = check_firewall(IMDS, 80, machine=host())
    assert (result.code, result.evidence["error_kind"]) == (code, kind)
    assert result.evidence["elapsed_ms"] < 500
    assert firewall.code == "IMDS-NET-021" and "reject" in firewall.detail


@netns
def test_real_listening_closed_and_local_route(imds_listener):
    ok = check_tcp(IMDS, 80, timeout=1.0, machine=host())
    assert ok.code == "IMDS-NET-010" and ok.evidence["source_address"] == IMDS
    closed = check_tcp(IMDS, _closed_port(), timeout=1.0, machine=host())
    assert closed.code == "IMDS-NET-012"
    route = check_route(IMDS, machine=host())
    assert route.code == "IMDS-NET-004" and route.evidence["interface"] == "lo"


@netns
def test_real_address_removed_then_restored():
    _sh("ip", "addr", "del", f"{IMDS}/32", "dev", "lo")
    try:
        tcp = check_tcp(IMDS, 80, timeout=1.0, machine=host())
        route = check_route(IMDS, machine=host())
    finally:
        subprocess.run(["ip", "addr", "add", f"{IMDS}/32", "dev", "lo"], capture_output=True, timeout=10)
    assert tcp.code == "IMDS-NET-013" and tcp.evidence["error_kind"] == "network_unreachable"
    assert route.code == "IMDS-NET-002" and "Network is unreachable" in route.detail
    assert check_route(IMDS, machine=host()).code == "IMDS-NET-004"   # restored


@netns
@pytest.mark.parametrize("route_type,address,tcp_code,errno_value", [
    ("blackhole", "10.9.1.1", "IMDS-NET-017", errno.EINVAL),
    ("prohibit", "10.8.1.1", "IMDS-NET-016", errno.EACCES),
    ("unreachable", "10.7.1.1", "IMDS-NET-014", errno.EHOSTUNREACH),
])
def test_real_refusing_routes(route_type, address, tcp_code, errno_value):
    network = address.rsplit(".", 2)[0] + ".0.0/16"
    _sh("ip", "route", "add", route_type, network)
    try:
        tcp = check_tcp(address, 80, timeout=1.0, machine=host())
        route = check_route(address, machine=host())
    finally:
        subprocess.run(["ip", "route", "del", route_type, network], capture_output=True, timeout=10)
    assert tcp.code == tcp_code and tcp.evidence["errno"] == errno_value
    assert route.code == "IMDS-NET-002"


@netns
@needs_iptables
def test_real_owner_match_root_allowed_others_dropped(imds_listener):
    with iptables_rule("OUTPUT", "-d", IMDS, "-p", "tcp", "--dport", "80", "-m", "owner", "!", "--uid-owner", "0",
                       "-j", "DROP"), \
         iptables_rule("OUTPUT", "-d", IMDS, "-p", "tcp", "--dport", "80", "-m", "owner", "--uid-owner", "0",
                       "-j", "ACCEPT"):
        route, tcp, firewall = network_checks(f"http://{IMDS}", timeout=1.0, machine=host())
    assert firewall.code == "IMDS-NET-022" and firewall.status.value == "warn"
    assert "Only root may connect" in firewall.detail
    verdicts = {v["uid"]: v["verdict"] for v in firewall.evidence["analysis"]["verdicts"]}
    assert verdicts == {"0": "accept", "other": "drop"}
    assert firewall.evidence["packet"]["out_interface"] == "lo"
    assert route.code == "IMDS-NET-004"
    assert tcp.code == ("IMDS-NET-010" if os.geteuid() == 0 else "IMDS-NET-011")


@netns
@needs_iptables
def test_real_dnat_redirect_is_found():
    with iptables_rule("OUTPUT", "-d", IMDS, "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination",
                       "127.0.0.1:8421", table="nat"):
        firewall = check_firewall(IMDS, 80, machine=host())
    assert firewall.code == "IMDS-NET-023" and "127.0.0.1:8421" in firewall.detail
    assert "this host's processes" in firewall.detail


@netns
@needs_iptables
def test_real_clean_ruleset():
    assert check_firewall(IMDS, 80, machine=host()).code == "IMDS-NET-020"


@netns
@needs_nft
def test_real_native_nft_drop(imds_listener):
    _sh("nft", "add", "table", "inet", "imds_runbook_test")
    try:
        _sh("nft", "add", "chain", "inet", "imds_runbook_test", "out",
            "{ type filter hook output priority 0 ; policy accept ; }")
        _sh("nft", "add", "rule", "inet", "imds_runbook_test", "out", "ip", "daddr", IMDS, "tcp", "dport", "80", "drop")
        tcp = check_tcp(IMDS, 80, timeout=1.0, machine=host())
        firewall = check_firewall(IMDS, 80, machine=host())
    finally:
        subprocess.run(["nft", "delete", "table", "inet", "imds_runbook_test"], capture_output=True, timeout=10)
    assert tcp.code == "IMDS-NET-011"
    assert firewall.code == "IMDS-NET-021" and "ip daddr 169.254.169.254 tcp dport 80" in firewall.detail


@netns
@needs_iptables
def test_real_input_rule_dropping_replies(imds_listener):
    with iptables_rule("INPUT", "-s", IMDS, "-j", "DROP"):
        route, tcp, firewall = network_checks(f"http://{IMDS}", timeout=1.0, machine=host())
    assert tcp.code == "IMDS-NET-011"
    assert firewall.code == "IMDS-NET-021" and "drops the replies" in firewall.detail


@pytest.mark.parametrize("endpoint, os_name, expected", [
    ("http://169.254.169.254", "linux", (("ip", "route", "get", "169.254.169.254"), ("ip", "route", "show"))),
    ("http://169.254.169.254:80", "windows", (("route", "print", "-4"),)),
    ("http://169.254.169.254", "freebsd", (("netstat", "-rn", "-f", "inet"),)),
    ("http://localhost:40342", "linux", ()),
    ("http://127.0.0.1:8080", "linux", ()),
    ("http://[::1]:40342", "windows", ()),
])
def test_route_commands_are_the_ones_the_route_check_runs(endpoint, os_name, expected):
    from imds_helpers.analyze.network import check_route, endpoint_host_port, route_commands

    assert route_commands(endpoint, os_name) == expected
    run = FakeRun({(): ""})                    # every command answers, so every one is run
    check_route(endpoint_host_port(endpoint)[0], machine=host(run=run, os_name=os_name))
    assert tuple(argv for argv, _ in run.calls) == expected
