"""Route parsers on real captures: ip route (show/get), /proc/net/route, route print, netstat."""

from __future__ import annotations

from imds_helpers.parsers.iproute import parse_ip_route_get, parse_ip_route_show
from imds_helpers.parsers.netstat import parse_netstat_rn
from imds_helpers.parsers.procroute import parse_proc_net_route
from imds_helpers.parsers.routeprint import parse_route_print
from imds_helpers.parsers.routes import Route, default_route, lookup

IMDS = "169.254.169.254"


def test_ip_route_azure_ubuntu_accelnet_amid_ip_addr_output(real):
    table = parse_ip_route_show(real("linux_ip_addr_and_ip_route_azure_vm_ubuntu_accelnet.txt"))
    assert table.kind == "routes"
    assert [r.destination for r in table.routes] == [
        "0.0.0.0/0", "10.0.0.0/24", "10.0.0.1/32", "168.63.129.16/32", "169.254.169.254/32", "172.17.0.0/16"]
    imds = lookup(table.routes, IMDS)
    assert (imds.gateway, imds.interface, imds.source, imds.metric, imds.proto) == ("10.0.0.1", "eth0", "10.0.0.4", 100, "dhcp")
    assert default_route(table.routes).interface == "eth0"
    assert table.skipped_lines > 10   # the ip addr output and prompts were not taken as routes


def test_ip_route_rhel_two_nics_routes_without_src(real):
    table = parse_ip_route_show(real("linux_ip_4_route_azure_rhel_nva_two_nics.txt"))
    imds = lookup(table.routes, IMDS)
    assert (imds.interface, imds.source) == ("eth0", None)
    assert {r.interface for r in table.routes} == {"eth0", "eth1"}


def test_ip_route_broken_vm_has_no_default_and_no_imds_route(real):
    table = parse_ip_route_show(real("linux_ip_route_azure_missing_default_and_imds_routes_broken.txt"))
    assert table.kind == "routes" and len(table.routes) == 2
    assert lookup(table.routes, IMDS) is None
    assert default_route(table.routes) is None
    assert table.routes[0].source == "10.0.0.17"   # old double-space layout


def test_ip_route_get_hetzner_route_on_private_nic(real):
    result = parse_ip_route_get(real("linux_ip_route_get_169.254.169.254_hetzner_dhcp_route_on_private_nic.txt"))
    assert result.kind == "route"
    assert (result.route.interface, result.route.gateway, result.route.source) == ("eth1", "10.0.0.1", "10.255.0.1")


def test_ip_route_get_kernel_answers():
    # Captured in the test namespace (iproute2 on Linux 6.x).
    local = parse_ip_route_get("local 169.254.169.254 dev lo src 169.254.169.254 uid 0 \n    cache <local> \n")
    assert local.kind == "local" and local.route.interface == "lo"
    one_line = parse_ip_route_get("local 169.254.169.254 dev lo src 169.254.169.254 uid 0 \\    cache <local> ")
    assert one_line.kind == "local"
    for message, kind in [("Network is unreachable", "unreachable"), ("No route to host", "host_unreachable"),
                          ("Permission denied", "prohibited"), ("Invalid argument", "blackhole")]:
        assert parse_ip_route_get(f"RTNETLINK answers: {message}\n").kind == kind


def test_ip_route_multipath_takes_first_nexthop():
    table = parse_ip_route_show("default proto static metric 100\n\tnexthop via 10.0.0.1 dev eth0 weight 1\n"
                                "\tnexthop via 10.0.1.1 dev eth1 weight 1\n")
    assert (table.routes[0].gateway, table.routes[0].interface) == ("10.0.0.1", "eth0")


def test_proc_net_route_walinuxagent(real):
    table = parse_proc_net_route(real("linux_proc_net_route_azure_with_imds_route.txt"))
    assert table.kind == "routes"
    imds = lookup(table.routes, IMDS)
    assert (imds.destination, imds.gateway, imds.interface) == ("169.254.169.254/32", "10.145.187.193", "eth0")
    assert lookup(table.routes, "168.63.129.16").destination == "168.63.129.16/32"
    assert default_route(table.routes).gateway == "10.145.187.193"
    assert lookup(table.routes, "192.168.43.7").interface == "docker0"


def test_route_print_single_nic(real):
    table = parse_route_print(real("windows_route_print_azure_vm_single_nic.txt"))
    assert table.kind == "routes"
    imds = lookup(table.routes, IMDS)
    assert (imds.gateway, imds.interface, imds.metric) == ("10.1.0.1", "10.1.0.4", 11)
    assert default_route(table.routes).interface == "10.1.0.4"
    assert table.interfaces[0] == {"index": "6", "mac": "7c-ed-8d-4d-30-f4",
                                   "description": "Microsoft Hyper-V Network Adapter"}
    assert all(":" not in r.destination for r in table.routes)   # the IPv6 table is not mixed in


def test_route_print_two_nics_imds_only_on_primary(real):
    table = parse_route_print(real("windows_route_print_azure_vm_two_nics.txt"))
    assert {r.interface for r in table.routes} >= {"10.1.0.4", "10.1.0.6"}
    assert lookup(table.routes, IMDS).interface == default_route(table.routes).interface == "10.1.0.4"
    assert len(table.interfaces) == 3


def test_route_print_localised_on_link_and_persistent_rows():
    text = ("Aktive Routen:\nNetzwerkziel    Netzwerkmaske   Gateway    Schnittstelle Metrik\n"
            "  10.1.0.0  255.255.255.0  Auf Verbindung  10.1.0.4  266\n"
            "Ständige Routen:\n  169.254.169.254  255.255.255.255  10.1.0.1  1\n")
    table = parse_route_print(text)
    active, persistent = table.routes
    assert active.gateway is None and active.interface == "10.1.0.4"
    assert persistent.persistent and lookup(table.routes, IMDS) is None   # persistent = configuration only


def test_netstat_freebsd(real):
    table = parse_netstat_rn(real("freebsd_netstat_rn_azure_with_imds_route.txt"))
    assert table.kind == "routes"
    imds = lookup(table.routes, IMDS)
    assert (imds.destination, imds.gateway, imds.interface) == ("169.254.169.254/32", "10.145.187.193", "em0")
    assert default_route(table.routes).interface == "em0"
    assert lookup(table.routes, "192.168.43.9").destination == "192.168.43.0/24"   # classful, no mask shown


def test_netstat_macos_short_forms():
    table = parse_netstat_rn("Destination        Gateway            Flags        Netif Expire\n"
                             "default            10.0.0.1           UGScg          en0\n"
                             "169.254            link#6             UCS            en0      !\n")
    assert [r.destination for r in table.routes] == ["0.0.0.0/0", "169.254.0.0/16"]
    assert table.routes[1].gateway is None


def test_lookup_prefers_longest_prefix_then_metric():
    routes = [Route("0.0.0.0/0", "10.0.0.1", "eth0", metric=100), Route("169.254.0.0/16", None, "eth1", metric=1000),
              Route("169.254.169.254/32", "10.0.0.1", "eth0", metric=200),
              Route("169.254.169.254/32", "10.0.1.1", "eth1", metric=50)]
    assert lookup(routes, IMDS).interface == "eth1"
    assert lookup(routes, "169.254.1.1").interface == "eth1"
    assert lookup(routes, "not an address") is None
