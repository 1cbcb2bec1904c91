"""Every finding code can happen: each code of the catalogue is produced by some input.

Codes a fault-matrix row asserts on its own (tests/matrix/fault_matrix.py) count as produced;
every other code has one row in ``PRODUCERS``: a short call that really produces it - a step
function on a captured command output (tests/fixtures/real), an emulator scenario with
arguments, a loopback answer, a kernel fault inside tests/isolated.sh's namespace. The test
runs the producer and asserts the code is among what it returned. Producers that need the
private namespace, root or iptables skip with a reason naming that capability.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pytest

from imds_helpers.collect import arc_keyfile as kf
from imds_helpers.model import evidence
from imds_helpers.analyze import analyze
from imds_helpers.api import check_options, run_checks
from imds_helpers.analyze.arc import check_arc_environment, check_arc_token
from imds_helpers.model.catalog import CATALOG
from imds_helpers.collect import LiveHost, collect
from imds_helpers.emulator import Emulator
from imds_helpers.emulator.scenarios import Answer
from imds_helpers.collect.hostcmd import CommandOutput
from imds_helpers.collect.http import MetadataClient, Timeouts
from imds_helpers.analyze.metadata import check_instance
from imds_helpers.analyze.network import assess_route, check_firewall, check_route, check_tcp
from imds_helpers.parsers.iproute import parse_ip_route_get, parse_ip_route_show
from imds_helpers.parsers.routeprint import parse_route_print
from imds_helpers.analyze.platform import detect_platform
from imds_helpers.analyze.proxy import analyze_proxy
from imds_helpers.analyze.proxy_compare import compare_through_proxy
from imds_helpers.analyze.tokens import MANAGEMENT, Identity, check_token, check_vm_tokens
from arc.other_user import other_user
from matrix.fault_matrix import MATRIX

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "command-output"
IMDS = "169.254.169.254"
AZURE_TAG = "7783-7084-3265-9085-8269-3286-77"
RUNNING = "LoadState=loaded\nActiveState=active\nSubState=running\n"
STOPPED = "LoadState=loaded\nActiveState=inactive\nSubState=dead\n"
ARC_ENV = {"IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token",
           "IMDS_ENDPOINT": "http://localhost:40342"}
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
IN_NETNS = os.environ.get("IMDS_RUNBOOK_NETNS") == "1"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

pytestmark = pytest.mark.timeout(30)


def real(name: str) -> str:
    return (REAL / name).read_text(encoding="utf-8")


def needs(condition: bool, capability: str) -> None:
    if not condition:
        pytest.skip(f"needs {capability}")


def netns() -> None:
    needs(IN_NETNS, "tests/isolated.sh's private network namespace (unshare unavailable)")


class Run:
    """A host-command runner answering by the command's first words; anything else is
    'not installed'."""

    def __init__(self, answers: dict[tuple[str, ...], str | CommandOutput]) -> None:
        self.answers = answers

    def __call__(self, argv, timeout) -> CommandOutput:
        for prefix, out in self.answers.items():
            if tuple(argv[:len(prefix)]) == prefix:
                return out if isinstance(out, CommandOutput) else CommandOutput(tuple(argv), 0, out)
        return CommandOutput(tuple(argv), None, error="not_found")


def codes(results: Iterable) -> list[str]:
    return [r.code for r in results]


def client(total: float = 2.0, attempts: int = 4) -> MetadataClient:
    return MetadataClient(Timeouts(connect=0.5, read=1.0, total=total), max_attempts=attempts)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- platform: fake file trees and service managers ---------------------------------------------

def platform(*, tag: str | None = None, himds: bool = False, docker: bool = False, env=None,
             systemctl: str | None = None, target: str = "auto", endpoint: str | None = None) -> list[str]:
    with tempfile.TemporaryDirectory() as root:
        dmi = Path(root, "sys/class/dmi/id")
        dmi.mkdir(parents=True)
        if tag is not None:
            (dmi / "chassis_asset_tag").write_text(tag + "\n")
        if himds:
            Path(root, "opt/azcmagent/bin").mkdir(parents=True)
            Path(root, "opt/azcmagent/bin/himds").write_text("")
        if docker:
            Path(root, ".dockerenv").write_text("")
        run = Run({("systemctl",): systemctl} if systemctl else {})
        result = detect_platform(target, endpoint, host=LiveHost(env=env or {}, root=root, run=run, os_name="linux"))
        return codes(result.checks)


# --- proxy -------------------------------------------------------------------------------------

def proxy(endpoint: str = f"http://{IMDS}", env=None, **windows) -> list[str]:
    return codes(analyze_proxy(endpoint, env=env or {}, **windows).checks)


@contextmanager
def loopback_http(status: int, body: bytes, headers: dict[str, str]) -> Iterator[str]:
    """A one-answer HTTP server on loopback (a stand-in proxy or service)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    class Handler(BaseHTTPRequestHandler):
        server_version, sys_version = headers.get("Server", "loopback"), ""   # the one Server header

        def do_GET(self) -> None:
            self.send_response(status)
            others = {k: v for k, v in headers.items() if k != "Server"}
            for name, value in {**others, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


IMDS_JSON = {"Server": "IMDS/150.870.65.1601", "Content-Type": "application/json; charset=utf-8"}


def compare(proxy_url: str | None) -> list[str]:
    """The comparison as the pipeline runs it: the proxy client of a host whose environment
    names ``proxy_url`` (None: no proxy variable)."""
    endpoint = f"http://{IMDS}"
    host = LiveHost(env={"http_proxy": proxy_url} if proxy_url else {})
    with host.proxy_client(Timeouts(connect=0.5, read=1, total=2), endpoint) as through:
        return [compare_through_proxy(endpoint, through, env=host.env, url_problems=host.proxy_url_problems).code]


def through_proxy(status: int, body: bytes) -> list[str]:
    with loopback_http(status, body, IMDS_JSON) as proxy_url:
        return compare(proxy_url)


# --- network -----------------------------------------------------------------------------------

def firewall(save: str | CommandOutput, nft: str = "") -> list[str]:
    return [check_firewall(IMDS, 80, machine=LiveHost(run=Run({("iptables-save",): save, ("nft",): nft}),
                                                      os_name="linux")).code]


def save(*rules: str) -> str:
    return "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" + "".join(r + "\n" for r in rules) + "COMMIT\n"


def listening_tcp() -> list[str]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        return [check_tcp("127.0.0.1", server.getsockname()[1], timeout=1.0, machine=LiveHost()).code]


@contextmanager
def kernel_route(kind: str, network: str) -> Iterator[None]:
    netns()
    needs(shutil.which("ip") is not None, "the ip command (iproute2)")
    subprocess.run(["ip", "route", "add", kind, network], check=True, capture_output=True, timeout=10)
    try:
        yield
    finally:
        subprocess.run(["ip", "route", "del", kind, network], capture_output=True, timeout=10)


def tcp_through(kind: str, network: str, address: str) -> list[str]:
    with kernel_route(kind, network):
        return [check_tcp(address, 80, timeout=1.0, machine=LiveHost()).code]


def unroutable_tcp() -> list[str]:
    netns()   # only lo exists there: any other address has no route
    return [check_tcp("10.255.0.1", 80, timeout=1.0, machine=LiveHost()).code]


# --- instance metadata and tokens against the emulator ------------------------------------------

def vm(scenario: str = "vm-healthy", **params) -> Emulator:
    return Emulator(mode="vm", scenario=scenario, scenario_params=params)


def instance(scenario: str = "vm-healthy", *, smbios_uuid: str | None = None, **params) -> list[str]:
    with vm(scenario, **params) as emu:
        return codes(check_instance(client(), emu.base_url, smbios_uuid=smbios_uuid))


def instance_at(url: str, total: float = 2.0) -> list[str]:
    return codes(check_instance(client(total, attempts=1), url))


def token(scenario: str = "vm-healthy", identity: Identity = Identity(), attempts: int = 4, **params) -> list[str]:
    with vm(scenario, **params) as emu:
        return [check_token(client(attempts=attempts), emu.base_url, MANAGEMENT, identity).code]


def tokens_answer(answer: Answer, attempts: int = 4) -> list[str]:
    return token(respond=answer, categories=("token",), stage="valid", attempts=attempts)


def vm_tokens(scenario: str, **kwargs) -> list[str]:
    with vm(scenario) as emu:
        return codes(check_vm_tokens(client(), emu.base_url, resources=[MANAGEMENT], **kwargs))


# --- Arc -----------------------------------------------------------------------------------------

def arc(scenario: str = "arc-healthy", selector: dict | None = None, **params) -> list[str]:
    key_dir = tempfile.mkdtemp(prefix="arc-tokens-")
    try:
        with Emulator(mode="arc", scenario=scenario, key_dir=key_dir, scenario_params=params) as emu:
            host = LiveHost()     # its client sends the key its arc_key read: the two go together
            with host.client(Timeouts(connect=0.5, read=1.0, total=2.0)) as through:
                return codes(check_arc_token(through, emu.base_url, keys=host, tokens_dir=key_dir, **(selector or {})))
    finally:
        shutil.rmtree(key_dir, ignore_errors=True)


def arc_env(env: dict[str, str]) -> list[str]:
    """The Arc environment check on a host with that environment and no drop-in nor agent
    binary (an empty file tree)."""
    with tempfile.TemporaryDirectory() as root:
        host = LiveHost(env=env, root=root, os_name="linux")
        return [check_arc_environment(host.env, host=host).code]


def arc_run_nothing_listening() -> list[str]:
    """The whole Arc run (not only the challenge step) against a port nobody listens on."""
    report = run_checks(check_options(target="arc", endpoint=f"http://127.0.0.1:{closed_port()}",
                                      timeout=2, env={}))
    return codes(report.checks)


@contextmanager
def key_file(content: bytes, mode: int = 0o640) -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tokens:
        path = os.path.join(tokens, "0123abcd.key")
        with open(path, "wb") as handle:
            handle.write(content)
        os.chmod(path, mode)
        yield path, tokens


def realm(name: str, *, mode: int = 0o640, identity: kf.Identity | None = None) -> list[str]:
    with key_file(b"secret", mode) as (path, tokens):
        target = name.replace("<key>", path).replace("<dir>", tokens)
        return [kf.check_realm(target, tokens, identity=identity).code]


def read_key(content: bytes) -> list[str]:
    with key_file(content) as (path, _):
        return [kf.read_key(path, os.lstat(path))[1].code]


def unreadable_key() -> list[str]:
    """A mode-0000 key checked by a user that is neither root nor in the himds group."""
    if not IS_ROOT:
        return realm("<key>", mode=0)
    users = other_user()      # uid 65534 on a readable copy of the package (the checkout may be private)
    try:
        user = next(users)    # or a skip naming what is missing (setpriv, a Python that user can run)
        with key_file(b"secret", 0) as (path, tokens):
            os.chmod(tokens, 0o755)
            out = user.run("import sys; from imds_helpers.collect import arc_keyfile as kf; "
                           "print(kf.check_realm(sys.argv[1], sys.argv[2]).code)", path, tokens, timeout=20)
    finally:
        users.close()
    assert out.returncode == 0, out.stderr[-500:]
    return out.stdout.split()


ROOT = kf.Identity(0, "root", (0,), None)


# --- analysis of evidence ---------------------------------------------------------------------------

def not_in_evidence() -> list[str]:
    """A VM collected against the emulator, analysed with its HTTP records removed: every
    request the checks make has no answer in the bundle."""
    with vm() as emu:
        bundle = collect(check_options(target="vm", endpoint=emu.base_url, timeout=2, env={}, runner=Run({})))
    bundle = json.loads(evidence.dumps(bundle))
    bundle["http"] = []
    return codes(analyze(bundle).checks)


# --- the table ------------------------------------------------------------------------------------

PRODUCERS: dict[str, Callable[[], list[str]]] = {
    # platform
    "IMDS-PLAT-000": lambda: platform(tag=AZURE_TAG),
    "IMDS-PLAT-001": lambda: platform(himds=True, env=ARC_ENV, systemctl=RUNNING),
    "IMDS-PLAT-002": lambda: platform(tag=AZURE_TAG, himds=True, env=ARC_ENV, systemctl=RUNNING),
    "IMDS-PLAT-003": lambda: platform(tag="None"),
    "IMDS-PLAT-004": lambda: platform(target="vm", endpoint="http://127.0.0.1:8080"),
    "IMDS-PLAT-005": lambda: platform(env={"MSI_ENDPOINT": "http://localhost:50342/oauth2/token"}),
    "IMDS-PLAT-006": lambda: platform(tag=AZURE_TAG, docker=True),
    "IMDS-PLAT-007": lambda: platform(himds=True, env=ARC_ENV, systemctl=STOPPED),
    "IMDS-PLAT-008": lambda: platform(himds=True, systemctl=RUNNING),
    "IMDS-PLAT-009": lambda: platform(env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:2579"}),
    "IMDS-PLAT-010": lambda: platform(tag=AZURE_TAG, docker=True, target="vm", endpoint="http://127.0.0.1:8080"),
    # proxy configuration
    "IMDS-PROXY-000": lambda: proxy(),
    "IMDS-PROXY-001": lambda: proxy(env={"http_proxy": "http://p:3128", "no_proxy": IMDS}),
    "IMDS-PROXY-002": lambda: proxy(env={"http_proxy": "http://p:3128"}),
    "IMDS-PROXY-003": lambda: proxy(env={"HTTP_PROXY": "http://p:3128"}),
    "IMDS-PROXY-004": lambda: proxy(winhttp_output=real("windows_netsh_winhttp_show_proxy_with_proxy_and_local_bypass.txt")),
    "IMDS-PROXY-005": lambda: proxy("http://localhost:40342",
                                    winhttp_output=real("windows_netsh_winhttp_show_proxy_with_proxy_and_local_bypass.txt")),
    "IMDS-PROXY-006": lambda: proxy(wininet={"ProxyEnable": 1, "ProxyServer": "proxy:8080", "ProxyOverride": "<local>"}),
    "IMDS-PROXY-007": lambda: proxy(wininet={"ProxyEnable": 0, "AutoConfigURL": "http://wpad/wpad.dat"}),
    "IMDS-PROXY-008": lambda: proxy(env={"http_proxy": "http://[::1"}),
    "IMDS-PROXY-009": lambda: proxy(winhttp_output="garbage"),
    # the request through the proxy (a loopback stand-in proxy)
    "IMDS-PROXY-010": lambda: compare(None),
    "IMDS-PROXY-011": lambda: through_proxy(200, b'{"compute": {}}'),
    "IMDS-PROXY-012": lambda: through_proxy(400, b'{"error": "Bad request. X-Forwarded-For header is not allowed"}'),
    "IMDS-PROXY-013": lambda: compare(f"http://127.0.0.1:{closed_port()}"),
    # route (captured tables), TCP (loopback and the namespace's kernel), firewall (captured rules)
    "IMDS-NET-000": lambda: [assess_route(IMDS, None, parse_route_print(real("windows_route_print_azure_vm_single_nic.txt"))).code],
    "IMDS-NET-001": lambda: [check_route("localhost", machine=LiveHost(run=Run({}))).code],
    "IMDS-NET-002": lambda: [assess_route(IMDS, parse_ip_route_get("RTNETLINK answers: Network is unreachable"), None).code],
    "IMDS-NET-003": lambda: [assess_route(IMDS, None, parse_route_print(real("windows_route_print_azure_vm_two_nics.txt").replace(
        "169.254.169.254  255.255.255.255         10.1.0.1         10.1.0.4",
        "169.254.169.254  255.255.255.255         10.1.0.1         10.1.0.6"))).code],
    "IMDS-NET-004": lambda: [assess_route(IMDS, parse_ip_route_get(f"local {IMDS} dev lo src {IMDS} uid 0"), None).code],
    "IMDS-NET-005": lambda: [assess_route(IMDS, parse_ip_route_get(f"{IMDS} via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0"),
                                          parse_ip_route_show("default via 10.0.0.1 dev eth0 src 10.0.0.4\n")).code],
    "IMDS-NET-009": lambda: [assess_route(IMDS, None, None).code],
    "IMDS-NET-010": listening_tcp,
    "IMDS-NET-012": lambda: [check_tcp("127.0.0.1", closed_port(), timeout=1.0, machine=LiveHost()).code],
    "IMDS-NET-013": unroutable_tcp,
    "IMDS-NET-014": lambda: tcp_through("unreachable", "10.7.0.0/16", "10.7.1.1"),
    "IMDS-NET-016": lambda: tcp_through("prohibit", "10.8.0.0/16", "10.8.1.1"),
    "IMDS-NET-017": lambda: tcp_through("blackhole", "10.9.0.0/16", "10.9.1.1"),
    "IMDS-NET-020": lambda: firewall("", ""),
    "IMDS-NET-021": lambda: firewall(save(f"-A OUTPUT -d {IMDS}/32 -p tcp -m tcp --dport 80 -j DROP")),
    "IMDS-NET-022": lambda: firewall(save(f"-A OUTPUT -d {IMDS}/32 -p tcp -m owner --uid-owner 0 -j ACCEPT",
                                          f"-A OUTPUT -d {IMDS}/32 -p tcp -j DROP")),
    "IMDS-NET-023": lambda: firewall(real("linux_iptables_nat_S_aad-metadata_aks_nmi_imds_dnat.txt")),
    "IMDS-NET-025": lambda: firewall(save(f"-A OUTPUT -d {IMDS}/32 -p tcp -m mark --mark 0x1 -j DROP")),
    "IMDS-NET-029": lambda: [check_firewall(IMDS, 80, machine=LiveHost(run=Run({("iptables-save",): CommandOutput(
        ("iptables-save",), 1, "", "iptables-save v1.8.9 (nf_tables): Permission denied (you must be root)\n")}),
        os_name="linux")).code],
    # how a request went (emulator, loopback, the namespace's kernel)
    "IMDS-HTTP-001": lambda: instance_at_firewalled(),
    "IMDS-HTTP-002": lambda: instance_at(f"http://127.0.0.1:{closed_port()}"),
    "IMDS-HTTP-003": lambda: unroutable_instance(),
    "IMDS-HTTP-012": lambda: tokens_answer(Answer(410, {"error": "Gone"}), attempts=2),
    "IMDS-HTTP-014": lambda: tokens_answer(Answer(404, {"error": "not_found"}), attempts=2),
    "IMDS-HTTP-015": lambda: instance(respond=Answer(400, {"error": "Bad request. Required metadata header not specified"}),
                                      categories=("instance",)),
    "IMDS-HTTP-016": lambda: instance(respond=Answer(418, {"error": "teapot"}), categories=("instance",)),
    "IMDS-HTTP-018": not_in_evidence,
    # instance metadata
    "IMDS-META-001": lambda: instance(respond=Answer(200, {"compute": {"name": "vm"}}), categories=("instance",)),
    "IMDS-META-003": lambda: instance(respond=Answer(400, {"error": "Bad request. api-version is invalid"}),
                                      categories=("instance",)),
    "IMDS-META-004": lambda: instance(smbios_uuid="00000000-0000-0000-0000-000000000001"),
    "IMDS-META-006": lambda: instance(respond=Answer(400, {"error": "bad_request"}), categories=("versions",)),
    # tokens
    "IMDS-TOKEN-005": lambda: tokens_answer(Answer(200, {"token_type": "Bearer"})),
    "IMDS-TOKEN-006": lambda: tokens_answer(Answer(403, {"error": "access_denied", "error_description": "denied"})),
    "IMDS-TOKEN-007": lambda: vm_tokens("vm-no-identity", identities=[Identity("client_id", CLIENT_ID)]),
    "IMDS-TOKEN-008": lambda: token(identity=Identity(source="ama-config")),
    "IMDS-TOKEN-009": lambda: vm_tokens("vm-healthy", ama_identity="garbage"),
    # the Arc environment and challenge
    "IMDS-ARC-004": lambda: arc_env(ARC_ENV),
    "IMDS-ARC-010": arc_run_nothing_listening,
    "IMDS-ARC-011": lambda: arc(respond=Answer(200, {"hello": "world"})),
    "IMDS-ARC-012": lambda: arc(respond=Answer(400, {"error": "invalid_request", "error_description": "bad path"})),
    "IMDS-ARC-020": lambda: realm("tokens/abc.key"),
    "IMDS-ARC-023": lambda: realm("<dir>/never-written.key"),
    "IMDS-ARC-026": unreadable_key,
    "IMDS-ARC-027": lambda: read_key(b"secret\n"),
    "IMDS-ARC-028": lambda: read_key(b""),
    "IMDS-ARC-029": lambda: realm("<key>", mode=0o600, identity=ROOT),
    "IMDS-ARC-032": lambda: arc(after_challenge=Answer(400, {"error": "invalid_request", "error_description": "no"})),
    "IMDS-ARC-033": lambda: arc(after_challenge=Answer(200, {"token_type": "Bearer"})),
    "IMDS-ARC-034": lambda: arc("arc-legacy-agent", {"client_id": CLIENT_ID}),
    "IMDS-ARC-040": lambda: arc(selector={"client_id": CLIENT_ID}),
    "IMDS-ARC-050": lambda: arc_env({}),
    "IMDS-ARC-051": lambda: arc_env({"IMDS_ENDPOINT": "http://localhost:40342"}),
    "IMDS-ARC-052": lambda: arc_env({**ARC_ENV, "IMDS_ENDPOINT": "http://10.0.0.5:40342"}),
    "IMDS-ARC-053": lambda: arc_env({**ARC_ENV, "MSI_ENDPOINT": "http://x/", "MSI_SECRET": "s"}),
    "IMDS-ARC-099": lambda: arc("arc-realm-fifo"),
}


def unroutable_instance() -> list[str]:
    netns()   # only lo exists there: any other address has no route
    return instance_at("http://10.255.0.1")


def instance_at_firewalled() -> list[str]:
    """Connections never completed (the emulator keeps its listen queue full, as a DROP rule)."""
    with vm("vm-firewalled") as emu:
        return instance_at(emu.base_url, total=1.0)


def _matrix_codes() -> set[str]:
    """Codes a matrix row asserts on its own (an ``A|B`` alternative asserts neither alone)."""
    return {code for case in MATRIX for code in case.expect.values() if "|" not in code and code != "-"}


MATRIX_CODES = _matrix_codes()


def test_every_listed_code_is_in_the_catalogue():
    assert sorted(set(PRODUCERS) - set(CATALOG)) == []
    assert sorted(MATRIX_CODES - set(CATALOG)) == []
    alternatives = {c for case in MATRIX for v in case.expect.values() if "|" in v for c in v.split("|")}
    assert sorted(alternatives - set(CATALOG)) == []


def test_every_code_has_one_producer():
    missing = sorted(set(CATALOG) - MATRIX_CODES - set(PRODUCERS))
    assert missing == [], f"no input produces {missing}: add a producer, or emit or remove the code"
    assert sorted(set(PRODUCERS) & MATRIX_CODES) == [], "a matrix row already produces these: drop the producer"


@pytest.mark.parametrize("code", sorted(PRODUCERS))
def test_the_producer_produces_its_code(code):
    produced = PRODUCERS[code]()
    assert code in produced, produced
