from __future__ import annotations

import pytest

from imds_helpers import validate
from imds_helpers.errors import UsageError

GUID = "4a5b6c7d-1111-2222-3333-444455556666"
RES_ID = ("/subscriptions/0f1e2d3c-aaaa-bbbb-cccc-ddddeeeeffff/resourceGroups/rg-1/providers/"
          "Microsoft.ManagedIdentity/userAssignedIdentities/ama-id")


@pytest.mark.parametrize("value, expected", [
    ("http://169.254.169.254", "http://169.254.169.254"),
    ("http://localhost:40342/", "http://localhost:40342"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
])
def test_endpoint_ok(value, expected):
    assert validate.endpoint_url(value) == expected


@pytest.mark.parametrize("value", ["169.254.169.254", "ftp://x", "http://", "http://h:99999", "http://h/metadata",
                                   "http://h?x=1", "http://h:0", "", "http://h h"])
def test_endpoint_bad_names_the_argument(value):
    with pytest.raises(UsageError, match="^--endpoint: "):
        validate.endpoint_url(value)


@pytest.mark.parametrize("value", ["management", "https://", "https://x/ y", "https://management.azure.com/.default"])
def test_resource_bad(value):
    with pytest.raises(UsageError, match="^--resource: "):
        validate.resource_uri(value)


def test_resource_ok():
    assert validate.resource_uri("https://monitor.azure.com/") == "https://monitor.azure.com/"
    assert validate.resource_uri("api://1234") == "api://1234"


@pytest.mark.parametrize("value", ["0", "-1", "301", "nan", "inf", "abc", True])
def test_timeout_bad(value):
    with pytest.raises(UsageError, match="^--timeout: "):
        validate.timeout_s(value)


def test_selectors():
    assert validate.identity_selectors([GUID.upper()], [], [RES_ID]) == (("client_id", GUID), ("msi_res_id", RES_ID))
    with pytest.raises(UsageError, match="--msi-res-id: malformed resource id"):
        validate.identity_selectors([], [], ["/subscriptions/x/resourceGroups/rg"])
    with pytest.raises(UsageError, match="as both client_id and object_id"):
        validate.identity_selectors([GUID], [GUID], [])
    with pytest.raises(UsageError, match="given twice"):
        validate.identity_selectors([GUID, GUID], [], [])
    with pytest.raises(UsageError, match="--client-id: not a GUID"):
        validate.identity_selectors(["nope"], [], [])
