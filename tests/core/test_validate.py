from __future__ import annotations

import pytest

from imds_helpers.model import validate
from imds_helpers.model.errors import UsageError

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
                                   "http://h?x=1", "http://h:0", "", "http://h h", "http://[::1", "http://[x]",
                                   "http://u:p@h", "http://h\x00", "http://h:" + "9" * 5000])
def test_endpoint_bad_names_the_argument(value):
    with pytest.raises(UsageError, match="^--endpoint: "):
        validate.endpoint_url(value)


@pytest.mark.parametrize("value", ["management", "https://", "https://x/ y", "https://management.azure.com/.default",
                                   "http://[::1", "https://h:x/", "https://u:p@h/", "https://h/" + "a" * 3000])
def test_resource_bad(value):
    with pytest.raises(UsageError, match="^--resource: "):
        validate.resource_uri(value)


def test_resource_ok():
    assert validate.resource_uri("https://monitor.azure.com/") == "https://monitor.azure.com/"
    assert validate.resource_uri("api://1234") == "api://1234"


@pytest.mark.parametrize("value", ["0", "-1", "301", "nan", "inf", "abc", True, "1e400", 10**5000, -(10**5000),
                                   "9" * 5000], ids=lambda v: validate.shown(v)[:20])
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


@pytest.mark.parametrize("value, expected", [
    ("http://u:s3cret@h:3128", "'http://<credentials>@h:3128'"),
    ("u:s3cret@h", "'<credentials>@h'"),
    ("http://u:s3/cret@h/x", "'http://<credentials>@h/x'"),      # a "/" typed in the password
    ("http://u:s3@cret@h", "'http://<credentials>@h'"),         # an "@" typed in the password
    ("http://u:s3cret@[::1", "'http://<credentials>@[::1'"),     # does not parse, still hidden
    ("a\nb\x1b[2J", "'a\\nb\\x1b[2J'"),                        # one line, nothing for a terminal
    (10**5000, "a 5001-digit number"),                          # repr() would raise ValueError
    (["x"] * 10**5, "a list of 100000"),
], ids=lambda v: validate.shown(v)[:20])
def test_shown_is_short_one_line_and_hides_url_credentials(value, expected):
    assert validate.shown(value, url=True) == expected


def test_shown_bounds_long_text():
    text = validate.shown("x" * 10**6)
    assert len(text) < 120 and text.endswith("... (1000000 characters)")


def test_usage_error_is_one_bounded_line_without_url_passwords():
    err = UsageError("got 'http://u:s3cret@h/x'\nsecond line \x1b[31m" + "y" * 5000, argument="--x")
    message = str(err)
    assert message.isprintable() and len(message) <= 1003 and "s3cret" not in message
    assert message.startswith("--x: got 'http://<credentials>@h/x'\\nsecond line \\x1b[31m")


@pytest.mark.parametrize("value, problem", [
    ("http://127.0.0.1:3128", None), ("127.0.0.1:3128", None), ("socks5h://u:p@127.0.0.1:1080", None),
    ("http://[::1", "IPv6"), ("http://u:p@127.0.0.1:99999", "port"), ("http://:3128", "no host"),
    ("http://u:p/q@127.0.0.1:3128", "percent-encode"),
])
def test_proxy_url_problem(value, problem):
    from imds_helpers.analyze.proxy import proxy_url_problem

    found = proxy_url_problem(value)
    assert (found is None) if problem is None else (problem in found), found


def test_parameter_loader_keeps_what_parameter_files_use(tmp_path):
    """Anchors alone, comments, lists, nested environment, floats and ints as YAML writes them."""
    from imds_helpers.fleet.paramfile import load_parameter_yaml

    path = tmp_path / "p.yaml"
    path.write_text("# host\nendpoint: &e http://127.0.0.1:9\nresources: [https://monitor.azure.com/]\n"
                    "timeout_s: 2.5\nproxy_comparison: true\nenvironment: {NO_PROXY: '169.254.169.254'}\n"
                    "n: 0x1f\n")
    assert load_parameter_yaml(path) == {
        "endpoint": "http://127.0.0.1:9", "resources": ["https://monitor.azure.com/"], "timeout_s": 2.5,
        "proxy_comparison": True, "environment": {"NO_PROXY": "169.254.169.254"}, "n": 31}
