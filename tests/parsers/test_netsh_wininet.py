"""WinHTTP (netsh) output in English and Japanese, and WinINet registry values."""

from __future__ import annotations

from imds_helpers.parsers.netsh import parse_winhttp_show_proxy, split_bypass
from imds_helpers.parsers.wininet import parse_proxy_server, parse_wininet


def test_direct_access_english(real):
    assert parse_winhttp_show_proxy(real("windows_netsh_winhttp_show_proxy_direct_access.txt")).kind == "direct"


def test_direct_access_japanese(real):
    result = parse_winhttp_show_proxy(real("windows_netsh_winhttp_show_proxy_direct_access_ja-JP.txt"))
    assert result.kind == "direct" and result.proxy_server == ""


def test_set_proxy_output_real_padding(real):
    result = parse_winhttp_show_proxy(real("windows_netsh_winhttp_set_proxy_output_with_proxy.txt"))
    assert (result.kind, result.proxy_server, result.bypass_list) == ("proxy", "testProxy:8999", ())


def test_proxy_with_local_bypass(real):
    result = parse_winhttp_show_proxy(real("windows_netsh_winhttp_show_proxy_with_proxy_and_local_bypass.txt"))
    assert (result.kind, result.proxy_server, result.bypass_list) == ("proxy", "http://192.168.0.117:8080", ("<local>",))


def test_japanese_proxy_layout_without_english_words():
    # The ja-JP heading from the real capture with the labelled layout netsh uses for a proxy.
    text = ("現在の WinHTTP プロキシ設定:\n\n    プロキシ サーバー:  proxy.contoso.com:8080\n"
            "    バイパス一覧     :  (なし)\n")
    result = parse_winhttp_show_proxy(text)
    assert (result.kind, result.proxy_server, result.bypass_list) == ("proxy", "proxy.contoso.com:8080", ())


def test_bypass_list_separators():
    assert split_bypass("<local>;169.254.169.254; *.contoso.com,localhost") == (
        "<local>", "169.254.169.254", "*.contoso.com", "localhost")
    assert split_bypass("(none)") == ()


def test_wininet_values():
    result = parse_wininet({"ProxyEnable": 1, "ProxyServer": "http=proxy:80;https=proxy:443",
                            "ProxyOverride": "<local>;169.254.169.254"})
    assert result.kind == "proxy" and result.server_for("http") == "proxy:80"
    assert result.bypass_list == ("<local>", "169.254.169.254")
    disabled = parse_wininet({"ProxyEnable": 0, "ProxyServer": "proxy:80"})
    assert disabled.kind == "direct" and not disabled.enabled
    pac = parse_wininet({"ProxyEnable": b"\x00\x00\x00\x00", "AutoConfigURL": "http://wpad/wpad.dat"})
    assert pac.auto_config_url == "http://wpad/wpad.dat"
    assert parse_wininet({}).kind == "empty" and parse_wininet({"Other": 1}).kind == "unrecognised"


def test_proxy_server_forms():
    assert parse_proxy_server("proxy:3128") == {"*": "proxy:3128"}
    assert parse_proxy_server("http=a:1;https=b:2;ftp=c:3") == {"http": "a:1", "https": "b:2", "ftp": "c:3"}
