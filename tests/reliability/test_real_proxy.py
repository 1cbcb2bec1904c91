"""A real proxy process on loopback, and what the diagnosis says about it (namespace only).

The emulator serves Azure IMDS on 169.254.169.254:80. A real proxy listens on 127.0.0.1:
squid (Debian package ``squid``; adds ``X-Forwarded-For`` by default, which IMDS - and the
emulator - rejects with 400: the most realistic comparison) and tinyproxy (Debian package
``tinyproxy``; adds only ``Via``, so the proxied request succeeds). For each proxy-variable
variant, ``imds-runbook check --json --target vm`` runs on the default endpoint and:

* the ``proxy.env`` finding (code and the requests/curl decisions in its evidence) must match
  the truth: a real ``requests`` call (trust_env) and a real ``curl`` are sent and the proxy's
  own access log shows whether each one went through it;
* the proxy log proves the diagnosis itself sent NOTHING through the proxy, except - with
  ``--proxy-comparison`` - exactly one instance-metadata request, and never a token request;
* the ``proxy.comparison`` finding names what the proxy does: squid -> IMDS-PROXY-012 with the
  X-Forwarded-For rejection (IMDS-HTTP-010); tinyproxy -> IMDS-PROXY-011 (it relays).

A barrier request ("marker") through the proxy orders the log: everything logged before the
marker was sent before it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

import pytest
import requests

from imds_helpers.emulator import Emulator

from .conftest import IMDS, clean_env, cli, free_port, netns, secrets_in

pytestmark = netns
P = "<proxy>"                 # replaced by the running proxy's URL
URL = f"http://{IMDS}/metadata/instance?api-version=2021-02-01&format=json"
PROXY_PASSWORD = "pw-" + uuid.uuid4().hex[:12]


# --- the proxies ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProxyKind:
    name: str
    binary: str
    adds_forwarded_for: bool
    comparison_code: str          # proxy.comparison finding when the request goes through it
    config: Callable[[Path, int], str]
    argv: Callable[[str, Path], list[str]]
    parse: Callable[[str], list[tuple[str, str]]]    # log text -> [(method, url)]
    log_name: str


def _squid_config(folder: Path, port: int) -> str:
    return "\n".join([
        f"http_port 127.0.0.1:{port}",
        f"pid_filename {folder}/squid.pid",
        f"access_log stdio:{folder}/access.log",
        f"cache_log {folder}/cache.log",
        "cache_store_log none",
        "cache deny all",
        "http_access allow all",
        "strip_query_terms off",          # the log shows full URLs: a token request would stand out
        f"coredump_dir {folder}",
        "shutdown_lifetime 0 seconds",
        "dns_nameservers 127.0.0.1",
        "",                               # forwarded_for stays at its default: on
    ])


def _squid_parse(text: str) -> list[tuple[str, str]]:
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 7:
            rows.append((parts[5], parts[6]))
    return rows


def _tinyproxy_config(folder: Path, port: int) -> str:
    return "\n".join([f"Port {port}", "Listen 127.0.0.1", "Timeout 10", f'LogFile "{folder}/access.log"',
                      "LogLevel Connect", "MaxClients 20", ""])


def _tinyproxy_parse(text: str) -> list[tuple[str, str]]:
    rows = []
    for line in text.splitlines():
        if "Request (file descriptor" in line:
            parts = line.split("): ", 1)[1].split()
            rows.append((parts[0], parts[1]))
    return rows


PROXIES = {
    "squid": ProxyKind("squid", "squid", True, "IMDS-PROXY-012", _squid_config,
                       lambda conf, folder: ["squid", "-N", "-f", conf], _squid_parse, "access.log"),
    "tinyproxy": ProxyKind("tinyproxy", "tinyproxy", False, "IMDS-PROXY-011", _tinyproxy_config,
                           lambda conf, folder: ["tinyproxy", "-d", "-c", conf], _tinyproxy_parse, "access.log"),
}


class RunningProxy:
    def __init__(self, kind: ProxyKind) -> None:
        self.kind = kind
        # World-traversable: squid drops to its own user before it writes the log.
        self.folder = Path(tempfile.mkdtemp(prefix=f"imds-rel-{kind.name}-"))
        self.folder.chmod(0o777)
        self.port = free_port()
        conf = self.folder / f"{kind.name}.conf"
        conf.write_text(kind.config(self.folder, self.port))
        conf.chmod(0o644)
        self.log = self.folder / kind.log_name
        self.proc = subprocess.Popen(kind.argv(str(conf), self.folder), stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "stderr.txt", "wb"), start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{kind.name} did not start: "
                                       f"{(self.folder / 'stderr.txt').read_text(errors='replace')[-500:]}")
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"
        self.markers = 0

    def entries(self) -> list[tuple[str, str]]:
        try:
            return self.kind.parse(self.log.read_text(errors="replace"))
        except FileNotFoundError:
            return []

    def barrier(self) -> int:
        """Send a marker through the proxy and wait until it is logged; return its index."""
        self.markers += 1
        marker = f"http://{IMDS}/reliability-marker-{self.markers}"
        try:
            requests.get(marker, proxies={"http": self.url}, timeout=5)
        except requests.RequestException:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for index, (_, url) in enumerate(self.entries()):
                if url == marker:
                    return index
            time.sleep(0.02)
        raise AssertionError(f"{self.kind.name} never logged {marker}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def proxies() -> Iterator[Callable[[str], RunningProxy]]:
    started: dict[str, RunningProxy] = {}

    def get(name: str) -> RunningProxy:
        kind = PROXIES[name]
        if shutil.which(kind.binary) is None:
            pytest.skip(f"{name} is not installed (Debian package {name})")
        if name not in started:
            started[name] = RunningProxy(kind)
        return started[name]

    try:
        yield get
    finally:
        for proxy in started.values():
            proxy.stop()


@pytest.fixture(scope="module")
def imds() -> Iterator[Emulator]:
    # Rate limits off: several full checks per second would otherwise be throttled (429).
    with Emulator(mode="vm", scenario="vm-healthy", host=IMDS, port=80, rate_limits=False) as emu:
        yield emu


# --- the variants ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    name: str
    env: dict[str, str]
    code: str                      # proxy.env
    requests_via: bool             # what the analysis must say, checked against the real client
    curl_via: bool


VARIANTS = (
    Variant("no-bypass", {"http_proxy": P}, "IMDS-PROXY-002", True, True),
    Variant("no-bypass-upper-only", {"HTTP_PROXY": P}, "IMDS-PROXY-003", True, False),
    Variant("https-proxy-only", {"https_proxy": P, "HTTPS_PROXY": P}, "IMDS-PROXY-001", False, False),
    Variant("all-proxy", {"ALL_PROXY": P}, "IMDS-PROXY-002", True, True),
    Variant("no_proxy-exact", {"http_proxy": P, "HTTP_PROXY": P, "no_proxy": IMDS}, "IMDS-PROXY-001", False, False),
    Variant("NO_PROXY-upper-exact", {"http_proxy": P, "NO_PROXY": IMDS}, "IMDS-PROXY-001", False, False),
    Variant("NO_PROXY-cidr", {"http_proxy": P, "NO_PROXY": "169.254.0.0/16"}, "IMDS-PROXY-001", False, False),
    Variant("no_proxy-star", {"http_proxy": P, "no_proxy": "*"}, "IMDS-PROXY-001", False, False),
    Variant("no_proxy-dot-local", {"http_proxy": P, "no_proxy": ".local"}, "IMDS-PROXY-002", True, True),
    Variant("no_proxy-with-spaces", {"http_proxy": P, "no_proxy": " localhost , 169.254.169.254 "},
            "IMDS-PROXY-001", False, False),
    Variant("no_proxy-blank-separated", {"http_proxy": P, "no_proxy": "localhost 169.254.169.254"},
            "IMDS-PROXY-003", True, False),
    Variant("no_proxy-lower-wins-over-upper", {"http_proxy": P, "no_proxy": "localhost", "NO_PROXY": IMDS},
            "IMDS-PROXY-002", True, True),
    Variant("empty-no_proxy-falls-back-to-upper", {"http_proxy": P, "no_proxy": "", "NO_PROXY": IMDS},
            "IMDS-PROXY-001", False, False),
    Variant("credentials-in-proxy-url", {"http_proxy": "<proxy-with-credentials>"}, "IMDS-PROXY-002", True, True),
)
# tinyproxy: the comparison's other outcome (it relays), on the variants that reach it and one that does not.
TINYPROXY = ("no-bypass", "no-bypass-upper-only", "no_proxy-exact")
CASES = [("squid", v) for v in VARIANTS] + [("tinyproxy", v) for v in VARIANTS if v.name in TINYPROXY]


def _env(variant: Variant, proxy: RunningProxy) -> dict[str, str]:
    with_credentials = proxy.url.replace("http://", f"http://relia:{PROXY_PASSWORD}@")
    return {k: (proxy.url if v == P else with_credentials if v == "<proxy-with-credentials>" else v)
            for k, v in variant.env.items()}


def _between(proxy: RunningProxy, start: int, end: int) -> list[tuple[str, str]]:
    return [e for e in proxy.entries()[start:end] if "reliability-marker" not in e[1]]


@pytest.mark.parametrize("proxy_name,variant", CASES, ids=[f"{p}-{v.name}" for p, v in CASES])
def test_proxy_finding_matches_what_clients_really_do(proxy_name, variant, proxies, imds, reliability_counts):
    proxy = proxies(proxy_name)
    env = _env(variant, proxy)
    start = proxy.barrier() + 1

    # 1. The truth: a real requests call (trust_env) and a real curl, marked by their query.
    with mock.patch.dict(os.environ, clean_env(env), clear=True):
        session = requests.Session()
        assert session.trust_env
        try:
            session.get(URL + "&truth=requests", headers={"Metadata": "true"}, timeout=5)
        finally:
            session.close()
    has_curl = shutil.which("curl") is not None
    if has_curl:
        subprocess.run(["curl", "-s", "-o", "/dev/null", "-m", "5", "-H", "Metadata: true", URL + "&truth=curl"],
                       env=clean_env(env), timeout=15, check=False)
    end = proxy.barrier()
    seen = [url for _, url in _between(proxy, start, end)]
    assert any("truth=requests" in u for u in seen) == variant.requests_via, seen
    if has_curl:
        assert any("truth=curl" in u for u in seen) == variant.curl_via, seen

    # 2. The diagnosis, without the comparison: it must match the truth and send nothing via the proxy.
    if variant.requests_via or variant.curl_via:
        start = end + 1
        plain = cli(["check", "--json", "--target", "vm"], env=clean_env(env))
        end = proxy.barrier()
        assert _between(proxy, start, end) == [], "the diagnosis sent a request through the proxy"
        assert plain.stderr == "" and "Traceback" not in plain.stderr
        _assert_env_finding(json.loads(plain.stdout), variant)

    # 3. With --proxy-comparison: exactly the one instance-metadata request, and never a token.
    start = end + 1
    compared = cli(["check", "--json", "--target", "vm", "--proxy-comparison"], env=clean_env(env))
    end = proxy.barrier()
    through = _between(proxy, start, end)
    assert compared.stderr == ""
    data = json.loads(compared.stdout)
    _assert_env_finding(data, variant)
    checks = {c["id"]: c for c in data["checks"]}
    comparison = checks["proxy.comparison"]
    assert not any("/metadata/identity" in url for _, url in proxy.entries()), "a token request went via the proxy"
    if variant.requests_via:
        assert len(through) == 1, through
        method, url = through[0]
        assert method == "GET" and url.startswith(f"http://{IMDS}/metadata/instance?api-version=")
        assert comparison["code"] == proxy.kind.comparison_code, comparison["detail"]
        if proxy.kind.adds_forwarded_for:
            assert comparison["evidence"]["through_proxy_code"] == "IMDS-HTTP-010"
            assert "X-Forwarded-For" in comparison["detail"]
        else:
            assert comparison["evidence"]["through_proxy_code"] is None
    else:
        assert through == [] and comparison["code"] == "IMDS-PROXY-010"

    # The direct requests really were direct: the emulator saw no X-Forwarded-For on them.
    for entry in imds.request_log:
        if entry.get("path", "").startswith("/metadata/identity"):
            assert "X-Forwarded-For" not in (entry.get("headers") or {}), entry
    # Neither the proxy's password nor anything secret reaches the output.
    for output in (compared.stdout, compared.stderr):
        assert PROXY_PASSWORD not in output and secrets_in(output) == []
    # The direct checks still pass: the proxy variables do not break the diagnosis itself.
    assert checks["metadata.instance"]["code"] == "IMDS-META-000"
    assert checks["token.system.management"]["code"] == "IMDS-TOKEN-000"
    reliability_counts.scenario(f"proxy:{proxy_name}:{variant.name}")


def _assert_env_finding(data: dict, variant: Variant) -> None:
    finding = next(c for c in data["checks"] if c["id"] == "proxy.env")
    assert finding["code"] == variant.code, finding["detail"]
    assert (finding["evidence"]["requests"]["proxy"] is not None) == variant.requests_via
    assert (finding["evidence"]["curl"]["proxy"] is not None) == variant.curl_via
    assert PROXY_PASSWORD not in json.dumps(finding)


def test_variants_are_distinct():
    assert len({v.name for v in VARIANTS}) == len(VARIANTS)
