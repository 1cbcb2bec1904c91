"""DHCP leases, DMI values, cgroup markers and service states."""

from __future__ import annotations

from imds_helpers.parsers.container import parse_cgroup
from imds_helpers.parsers.dhcp import LeaseRoute, parse_lease
import uuid as stdlib_uuid

from hypothesis import given
from hypothesis import strategies as st

from imds_helpers.parsers.dmi import (AZURE_CHASSIS_ASSET_TAG, canonical_uuid, is_azure_asset_tag,
                                      looks_like_hyperv, parse_dmi_value, swap_uuid_fields, vmid_candidates)
from imds_helpers.parsers.services import parse_sc_query, parse_systemctl_show

IMDS_ROUTE = LeaseRoute("169.254.169.254/32", "10.0.0.1")


def test_systemd_networkd_lease(real):
    lease = parse_lease(real("linux_systemd_networkd_dhcp_lease_azure_routes_incl_imds.txt"))
    assert (lease.kind, lease.format, lease.address, lease.router, lease.server) == (
        "lease", "systemd-networkd", "10.0.0.69", "10.0.0.1", "168.63.129.16")
    assert IMDS_ROUTE in lease.routes
    assert lease.routes_to("169.254.169.254") == (LeaseRoute("0.0.0.0/0", "10.0.0.1"), IMDS_ROUTE)


def test_dhcpcd_dumplease(real):
    lease = parse_lease(real("linux_dhcpcd_dumplease_azure_classless_routes_incl_imds.txt"))
    assert (lease.format, lease.address, lease.router) == ("dhcpcd", "10.0.0.5", "10.0.0.1")
    assert [r.destination for r in lease.routes] == ["0.0.0.0/0", "168.63.129.16/32", "169.254.169.254/32"]


def test_dhclient_rfc3442_last_lease_wins():
    # Synthetic, in dhclient's lease-file syntax (option 121 as decimal octets).
    text = ("lease {\n  option routers 10.9.9.1;\n}\n"
            "lease {\n  interface \"eth0\";\n  fixed-address 10.0.0.5;\n  option routers 10.0.0.1;\n"
            "  option rfc3442-classless-static-routes 0,10,0,0,1,32,168,63,129,16,10,0,0,1,32,169,254,169,254,10,0,0,1;\n}\n")
    lease = parse_lease(text)
    assert (lease.format, lease.address, lease.router) == ("dhclient", "10.0.0.5", "10.0.0.1")
    assert lease.routes[-1] == IMDS_ROUTE and lease.routes[0] == LeaseRoute("0.0.0.0/0", "10.0.0.1")


def test_lease_without_imds_route_and_garbage():
    assert parse_lease("ADDRESS=10.0.0.4\nROUTER=10.0.0.1\n").routes_to("169.254.169.254") == ()
    assert parse_lease("").kind == "empty"
    assert parse_lease("hello world").kind == "unrecognised"
    assert parse_lease("option rfc3442-classless-static-routes 33,1,2;").routes == ()


def test_dmidecode_chassis_asset_tag(real):
    value = parse_dmi_value(real("linux_dmidecode_chassis_asset_tag_azure.txt"))
    assert value.kind == "value" and is_azure_asset_tag(value.value)
    assert value.value == AZURE_CHASSIS_ASSET_TAG
    # "MSFT AZURE VM" in decimal ASCII.
    assert "".join(chr(int(p[i:i + 2])) for p in value.value.split("-") for i in range(0, len(p), 2)) == "MSFT AZURE VM"


def test_dmidecode_bios_vendor_is_not_proof(real):
    value = parse_dmi_value(real("linux_dmidecode_bios_vendor_azure_ami.txt"))
    assert value.value == "American Megatrends Inc." and not is_azure_asset_tag(value.value)
    assert looks_like_hyperv("Microsoft Corporation\n", "Virtual Machine")
    assert not looks_like_hyperv("American Megatrends Inc.", "Virtual Machine")


def test_sysfs_values():
    assert parse_dmi_value("7783-7084-3265-9085-8269-3286-77\n").value == AZURE_CHASSIS_ASSET_TAG
    assert parse_dmi_value("\n").kind == "empty"
    assert parse_dmi_value("bad\x00value").kind == "unrecognised"


def test_vmid_candidates_byte_swap_for_gen1():
    # cloud-init's example: the first three fields are byte-swapped on generation 1 VMs.
    uuid = "527c2691-029f-fe4c-b1f4-a4da7ebac2cf"
    assert vmid_candidates(uuid, gen2=False) == ("91267c52-9f02-4cfe-b1f4-a4da7ebac2cf",)
    assert vmid_candidates(uuid, gen2=True) == (uuid,)
    assert vmid_candidates(uuid.upper()) == (uuid, "91267c52-9f02-4cfe-b1f4-a4da7ebac2cf")
    assert vmid_candidates("not-a-uuid") == ()


@given(st.uuids(), st.sampled_from(["{}", "{{{}}}", "urn:uuid:{}"]), st.booleans())
def test_uuid_helpers_agree_with_the_stdlib(value, wrapper, upper):
    # The helpers replace uuid.UUID on the quick path; they must read and swap as it does.
    digits = value.hex if "{{" in wrapper else str(value)
    assert canonical_uuid(wrapper.format(digits.upper() if upper else digits)) == str(value)
    assert swap_uuid_fields(str(value)) == str(stdlib_uuid.UUID(bytes_le=value.bytes))
    assert swap_uuid_fields(swap_uuid_fields(str(value))) == str(value)


@given(st.text(max_size=40))
def test_canonical_uuid_accepts_what_the_stdlib_accepts(text):
    try:
        expected = str(stdlib_uuid.UUID(text))
    except ValueError:
        expected = None
    assert canonical_uuid(text) == expected


def test_cgroup_markers():
    assert parse_cgroup("12:pids:/docker/3f1c\n0::/docker/3f1c\n").runtime == "docker"
    assert parse_cgroup("11:cpu:/kubepods/besteffort/pod1/abc\n").runtime == "kubernetes"
    assert parse_cgroup("0::/\n").kind == "no_marker"       # cgroup v2 namespace: proves nothing
    assert parse_cgroup("0::/user.slice/user-0.slice/session-3.scope\n").kind == "no_marker"
    assert parse_cgroup("").kind == "empty" and parse_cgroup("garbage").kind == "unrecognised"


def test_systemctl_show_states():
    running = parse_systemctl_show("LoadState=loaded\nActiveState=active\nSubState=running\n")
    assert running.running and running.state == "active/running"
    assert parse_systemctl_show("LoadState=loaded\nActiveState=failed\nSubState=failed\n").kind == "failed"
    assert parse_systemctl_show("LoadState=not-found\nActiveState=inactive\nSubState=dead\n").kind == "not_found"
    # Captured in a container without systemd:
    assert parse_systemctl_show("System has not been booted with systemd as init system (PID 1). Can't operate.\n"
                                "Failed to connect to bus: Host is down").kind == "no_systemd"


def test_sc_query_states_by_number():
    text = ("\nSERVICE_NAME: himds\n        TYPE               : 10  WIN32_OWN_PROCESS\n"
            "        STATE              : 4  RUNNING\n                                (STOPPABLE, NOT_PAUSABLE)\n")
    assert parse_sc_query(text).kind == "running"
    assert parse_sc_query(text.replace("4  RUNNING", "1  ANGEHALTEN")).kind == "stopped"   # localised word
    assert parse_sc_query("[SC] EnumQueryServicesStatus:OpenService FAILED 1060:\n\n"
                          "The specified service does not exist as an installed service.\n").kind == "not_found"
