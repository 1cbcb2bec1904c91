"""Leak canaries: no token, Arc secret or proxy password in any result object, repr, dict,
exception message or log record.

The emulator puts its canary (``emu.canary``) literally into every token signature and every
Arc secret. Scenarios - the normal ones and hostile ones that ECHO tokens and secrets back
into error messages, headers and bodies - run through the whole pipeline with logging at
DEBUG everywhere (urllib3 and requests included). Then every object reachable from the
results is walked: each dataclass instance's ``repr()``, ``str()``, ``to_dict()``,
``_repr_markdown_()`` and ``_repr_html_()`` must hold no canary, no JWT and no Basic/Bearer value. Every dataclass
type in ``imds_helpers`` must either be seen in that walk or be listed in ``EXEMPT`` with the
reason it cannot hold a secret.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import pkgutil
import warnings
from typing import Any, Callable, Iterable

import pytest

import imds_helpers
from imds_helpers.model import answers
from imds_helpers.collect import arc_keyfile
from imds_helpers.runbooks import primer, runbook
from imds_helpers.api import Session, check_options, run_checks
from imds_helpers.emulator import Emulator
from imds_helpers.emulator.scenarios import Answer as EmuAnswer
from imds_helpers.emulator.service import Response
from imds_helpers.emulator.tokens import make_jwt
from imds_helpers.collect.http import MetadataClient, Timeouts
from imds_helpers.analyze.proxy import analyze_proxy
from imds_helpers.model.redact import PLACEHOLDER
from imds_helpers.fleet.sidecar import build_sidecar

from .conftest import clean_env, cli, free_port, secrets_in

PROXY_PASSWORD = "proxypwcanary0123456789"
TOKEN_PATH = "/metadata/identity/oauth2/token"
TIMEOUTS = Timeouts(connect=1.0, read=1.0, total=1.0)   # 5xx scenarios retry until the budget ends

# Dataclass types that never see an HTTP answer, a token or a key (so the walk need not meet them).
EXEMPT = {
    "imds_helpers.model.catalog.FindingSpec": "static catalogue words",
    "imds_helpers.runbooks.runbook.Param": "static parameter table",
    "imds_helpers.model.evidence.Timeouts": "numbers",
    "imds_helpers.model.evidence.Request": "a request's key: URL and header names, secret header values as the placeholder",
    "imds_helpers.model.evidence.TcpProbe": "addresses, errnos and timings of a TCP connect",
    "imds_helpers.model.evidence.Verdict": "a key-file rule's verdict (paths, modes, owners; never the key)",
    "imds_helpers.model.evidence.ArcKeyProbe": "two Verdicts and a header problem; the secret stays in the live host",
    "imds_helpers.analyze.tokens.Identity": "a selector and an identity id from the user or AMA's config",
    "imds_helpers.collect.arc_keyfile.Identity": "this process's uid/gids",
    "imds_helpers.model.evidence.CommandOutput": "output of local commands (ip, iptables, systemctl)",
    "imds_helpers.analyze.network.RouteFacts": "parsed route table",
    "imds_helpers.fleet.runner.HostRun": "paths, statuses and codes of a runner host (no check data)",
    "imds_helpers.fleet.runner.RunSummary": "HostRun rows",
    "imds_helpers.fleet.runner.HostPlan": "paths and the host's parameter file values",
    "imds_helpers.fleet.runner._Running": "a worker process handle",
    # The fleet's own records: inventory names, statuses, redacted one-line reasons, paths, vmIds and
    # Ansible's per-host record (built by the action plugin, which never puts the bundle in it).
    # The bundles themselves are scanned for canaries and signed tokens by tests/fleet.
    "imds_helpers.fleet.ansible_run.PlaybookRun": "ansible-playbook's command, exit code and per-host records",
    "imds_helpers.fleet.fleet_hosts.IdentityCheck": "an identity field: expected and found hostname / UUID / vmId",
    "imds_helpers.fleet.fleet_hosts.Outcome": "a host's fleet status, redacted reason, bundle path and host object",
    "imds_helpers.fleet.fleet_run.FleetHost": "a host's status, verdict, reason, codes and file paths",
    "imds_helpers.fleet.fleet_run.FleetProgress": "one progress line: host, stage, status, counts",
    "imds_helpers.fleet.fleet_run.FleetSummary": "FleetHost rows, timings and the PlaybookRun",
    "imds_helpers.emulator.model.ManagedIdentity": "the emulator's identity ids",
    "imds_helpers.emulator.model.Machine": "the emulator's machine description",
    "imds_helpers.emulator.scenarios.Answer": "the emulator's canned answers (test input)",
    "imds_helpers.emulator.scenarios.Scenario": "the emulator's scenario rows (test input)",
    "imds_helpers.emulator.service.Request": "the emulator's own wire object: it IS the request",
    "imds_helpers.emulator.service.Response": "the emulator's own wire object: it IS the token",
}


def _all_dataclasses() -> dict[str, type]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(imds_helpers.__path__, "imds_helpers."):
        if info.name.endswith(("__main__", ".demo")):   # demo: a command (and being edited elsewhere)
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == info.name:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def _is_parser_type(name: str) -> bool:
    return name.startswith("imds_helpers.parsers.")   # parsed local command output / registry values


class Scan:
    """Everything a run produced that a person or a file could see."""

    def __init__(self, canaries: Iterable[str]) -> None:
        self.canaries = [c for c in canaries if c]
        self.texts: list[tuple[str, str]] = []
        self.types: set[str] = set()
        self._seen: set[int] = set()
        self._alive: list[Any] = []     # keeps walked objects alive: a freed object's id may be reused

    def text(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def walk(self, where: str, obj: Any, depth: int = 0) -> None:
        if depth > 12 or id(obj) in self._seen or isinstance(obj, (str, bytes, int, float, bool, type(None))):
            return
        self._seen.add(id(obj))
        self._alive.append(obj)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            name = f"{type(obj).__module__}.{type(obj).__qualname__}"
            self.types.add(name)
            self.text(f"{where}: repr {name}", repr(obj))
            self.text(f"{where}: str {name}", str(obj))
            for method in ("to_dict", "_repr_markdown_", "_repr_html_"):
                if hasattr(obj, method):
                    value = getattr(obj, method)()
                    self.text(f"{where}: {name}.{method}()", value if isinstance(value, str)
                              else json.dumps(value, default=str))
            for f in dataclasses.fields(obj):
                self.walk(f"{where}.{f.name}", getattr(obj, f.name), depth + 1)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                self.walk(f"{where}[{key!r}]", value, depth + 1)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for i, value in enumerate(obj):
                self.walk(f"{where}[{i}]", value, depth + 1)
        elif type(obj).__module__.startswith("imds_helpers") and hasattr(obj, "__dict__"):
            self.text(f"{where}: repr {type(obj).__qualname__}", repr(obj))
            for key, value in vars(obj).items():
                self.walk(f"{where}.{key}", value, depth + 1)

    def leaks(self) -> list[tuple[str, list[str]]]:
        return [(where, found) for where, text in self.texts if (found := secrets_in(text, self.canaries))]


@pytest.fixture
def debug_logs(caplog):
    """Every log record at DEBUG, the HTTP libraries' too."""
    for name in ("", "urllib3", "requests", "imds_helpers", "imds_helpers.emulator"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _log_texts(caplog) -> list[tuple[str, str]]:
    texts = []
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        texts.append((f"log {record.name}:{record.levelname}", text))
    return texts


def _finish(scan: Scan, caplog, reliability_counts, caught_warnings=()) -> None:
    for where, text in _log_texts(caplog):
        scan.text(where, text)
    for w in caught_warnings:
        scan.text(f"warning {w.category.__name__}", str(w.message))
    assert caplog.records, "nothing was logged: the DEBUG capture is not working"
    leaks = scan.leaks()
    reliability_counts.add("objects_scanned", len(scan.texts))
    reliability_counts.add("leaks", len(leaks))
    assert leaks == [], leaks[:5]


# --- hostile answers that echo secrets --------------------------------------------------------

def _echo_token_params(canary: str) -> dict[str, Any]:
    """Token requests answered 400 with the token echoed in the error text and headers."""
    jwt = make_jwt({"aud": "https://management.azure.com/", "oid": "echo"}, canary)
    body = {"error": "invalid_request", "error_description": f"token {jwt} rejected; Bearer {jwt}; "
                                                           f'"access_token":"{jwt}"'}
    return {"respond": EmuAnswer(400, body, body, headers=(("WWW-Authenticate", f"Bearer {jwt}"), ("X-Echo", jwt))),
            "categories": ("token",), "stage": "valid"}


def _echo_text_params(canary: str) -> dict[str, Any]:
    """Every answer is a 500 text page that quotes a token."""
    jwt = make_jwt({"aud": "x"}, canary)
    text = f"upstream error: access_token={jwt} Authorization: Bearer {jwt}\n"
    return {"respond": EmuAnswer(500, text, text, content_type="text/plain", headers=(("X-Debug-Token", jwt),))}


def _echo_instance_params(canary: str) -> dict[str, Any]:
    """200 instance documents whose fields carry a token (a hostile responder)."""
    jwt = make_jwt({"aud": "x"}, canary)
    document = {"compute": {"vmId": "0f1e2d3c-aaaa-bbbb-cccc-ddddeeeeffff", "name": jwt, "location": f"Bearer {jwt}",
                            "resourceId": jwt, "azEnvironment": "AzurePublicCloud", "osType": "Linux", jwt: 1},
                "network": {"interface": [{"ipv4": {"ipAddress": [{"privateIpAddress": jwt}]}}]}}
    return {"respond": EmuAnswer(200, document, document), "categories": ("instance",), "stage": "valid"}


VM_SCENARIOS: list[tuple[str, str, Callable[[str], dict[str, Any]] | None]] = [
    ("vm-healthy", "vm-healthy", None),
    ("vm-user-assigned-only", "vm-user-assigned-only", None),
    ("vm-forwarded-rejected", "vm-forwarded-rejected", None),
    ("vm-malformed-json", "vm-malformed-json", None),
    ("vm-not-imds-html", "vm-not-imds-html", None),
    ("vm-persistent-5xx", "vm-persistent-5xx", None),
    ("vm-echo-token-in-error", "vm-healthy", _echo_token_params),
    ("vm-echo-token-in-text", "vm-healthy", _echo_text_params),
    ("vm-echo-token-in-instance", "vm-healthy", _echo_instance_params),
]
ARC_SCENARIOS = ["arc-healthy", "arc-wrong-secret", "arc-agent-disconnected", "arc-unknown-resource", "arc-legacy-agent",
                 "arc-key-unreadable", "arc-echo-secret"]


def _install_arc_echo(emu: Emulator) -> None:
    """After the challenge, answer 403 quoting the secret that was sent, bare and in headers."""
    original = emu._service.handle

    def echo(req):
        sent = req.header("Authorization") or ""
        if not sent:
            return original(req)
        secret = sent.partition(" ")[2]
        body = json.dumps({"error": "access_denied",
                           "error_description": f"key {secret} was not accepted (header {sent})"}).encode()
        return Response(403, body, headers=[("X-Echo-Secret", secret)], server_header=False)

    emu._service.handle = echo


# --- the tests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,scenario,params", VM_SCENARIOS, ids=[s[0] for s in VM_SCENARIOS])
def test_vm_pipeline_leaks_nothing(name, scenario, params, debug_logs, reliability_counts):
    with warnings.catch_warnings(record=True) as caught, \
            Emulator(mode="vm", scenario=scenario, rate_limits=False) as emu:
        warnings.simplefilter("always")
        if params:
            emu.set_scenario(scenario, **params(emu.canary))
        scan = Scan([emu.canary, PROXY_PASSWORD])
        env = {"http_proxy": f"http://user:{PROXY_PASSWORD}@127.0.0.1:{free_port()}", "no_proxy": "localhost"}
        opts = check_options(target="vm", endpoint=emu.base_url, proxy_comparison=True, env=env, timeout=1)
        session = Session(opts)
        report = session.run_all()
        scan.walk("session", session)
        scan.walk("report", report)
        scan.walk("runbook tables", [runbook.table(report.checks), runbook.verdict_table(report)])
        scan.text("report json", json.dumps(report.to_dict()))
        scan.walk("sidecar", build_sidecar(report, host="h", notebook="01_azure_vm_imds",
                                           parameters={"endpoint": emu.base_url}, started_at="x", duration_s=1))
        scan.walk("proxy", analyze_proxy(emu.base_url, env=env))
        # The raw layer: what the client and the classifier hold for a token request.
        client = MetadataClient(TIMEOUTS)
        try:
            outcome = client.request(emu.base_url + TOKEN_PATH, params={"api-version": "2018-02-01",
                                     "resource": "https://management.azure.com/"}, headers={"Metadata": "true"})
        finally:
            client.close()
        scan.walk("outcome", outcome)
        scan.text("outcome.text()", outcome.text())
        scan.walk("answer", answers.classify(outcome))
        try:
            outcome.json()
        except ValueError as err:                       # a body that is not JSON: the message holds none of it
            scan.text("Outcome.json() error", str(err))
        # The primer's teaching helpers show raw exchanges: redacted.
        scan.walk("primer", primer.get(emu.base_url, TOKEN_PATH, {"api-version": "2018-02-01",
                                                                  "resource": "https://management.azure.com/"}))
        scan.walk("primer claims", primer.token_claims(emu.base_url))
        served = json.dumps(emu.request_log)
    scan.text("emulator request_log", served)
    _finish(scan, debug_logs, reliability_counts, caught)
    reliability_counts.scenario(f"leaks:{name}")


@pytest.mark.parametrize("scenario", ARC_SCENARIOS)
def test_arc_pipeline_leaks_nothing(scenario, debug_logs, reliability_counts):
    row = "arc-healthy" if scenario == "arc-echo-secret" else scenario
    with warnings.catch_warnings(record=True) as caught, Emulator(mode="arc", scenario=row) as emu:
        warnings.simplefilter("always")
        if scenario == "arc-echo-secret":
            _install_arc_echo(emu)
        scan = Scan([emu.canary])
        opts = check_options(target="arc", endpoint=emu.base_url, tokens_dir=str(emu.key_dir))
        session = Session(opts)
        report = session.run_all()
        scan.walk("session", session)
        scan.walk("report", report)
        scan.walk("runbook tables", [runbook.table(report.checks), runbook.verdict_table(report)])
        scan.text("report json", json.dumps(report.to_dict()))
        # The key-file layer on its own: the realm and read verdicts never hold the secret.
        client = MetadataClient(TIMEOUTS)
        try:
            first = client.request(emu.base_url + TOKEN_PATH, params={"api-version": "2020-06-01",
                                   "resource": "https://management.azure.com/"}, headers={"Metadata": "true"})
        finally:
            client.close()
        challenge = arc_keyfile.parse_challenge(first.header("WWW-Authenticate"))
        scan.walk("challenge", challenge)
        if challenge.code is None:
            verdict = arc_keyfile.check_realm(challenge.realm, str(emu.key_dir))
            scan.walk("realm", verdict)
            if verdict.ok:
                secret, key = arc_keyfile.read_key(challenge.realm, verdict.lstat)
                scan.walk("key", key)
                assert secret is None or emu.canary in secret     # the canary really is in the secret
        if scenario in ("arc-healthy", "arc-echo-secret"):
            scan.walk("primer", primer.arc_challenge(emu.base_url, str(emu.key_dir)))
        served = json.dumps(emu.request_log)
    scan.text("emulator request_log", served)
    if scenario == "arc-echo-secret":
        token = next(c for c in report.checks if c.id == "arc.token")
        assert token.code == "IMDS-ARC-032" and PLACEHOLDER in token.detail   # the echo arrived, redacted
    _finish(scan, debug_logs, reliability_counts, caught)
    reliability_counts.scenario(f"leaks:{scenario}")


def test_cli_output_of_echo_scenarios_leaks_nothing(reliability_counts):
    """The same hostile answers through `imds-runbook check` (the listing, and JSON)."""
    for params, extra in ((_echo_token_params, []), (_echo_text_params, ["--json"]),
                          (_echo_instance_params, ["--json"])):
        with Emulator(mode="vm", scenario="vm-healthy", rate_limits=False) as emu:
            emu.set_scenario("vm-healthy", **params(emu.canary))
            run = cli(["check", "--target", "vm", "--endpoint", emu.base_url, "--timeout", "1", *extra],
                      env=clean_env())
        assert "Traceback" not in run.stderr, run.stderr
        found = secrets_in(run.stdout + run.stderr, [emu.canary])
        reliability_counts.add("objects_scanned")
        reliability_counts.add("leaks", len(found))
        assert found == []


def _walk_the_lab_and_the_digest(scan: Scan) -> None:
    """The blind lab's objects for an Arc case (a key file, a token: secrets the lab must not
    show), its score sheet and table; the digest's rules and a Run Command answer."""
    from imds_helpers.emulator.lab_scenarios import LAB_CASES
    from imds_helpers.model import digest, runcommand
    from imds_helpers.runbooks import fault_lab, lab_view

    case = next(c for c in LAB_CASES if c.scenario == "arc-wrong-secret")
    start = len(scan.texts)
    with fault_lab.Lab(case=case, timeout=2.0) as lab:
        canary = lab._emu.canary
        scan.walk("lab", (lab.choices, lab.fixes, lab.hint(1), lab.challenge(), lab.files(), lab.token_claims(),
                          lab_view.case(lab), lab_view.by_hand(lab), lab_view.choices(lab), lab_view.hints(lab, 1)))
        scan.walk("lab graded", (lab.grade(lab.choices[0].letter), lab.verdict(), lab_view.answer(lab, "A"),
                                 lab_view.after(lab)))
    scan.walk("lab sheet", fault_lab.exam(1, 1, "vm", lambda lab: lab.choices[0].letter))
    scan.walk("lab table", LAB_CASES)
    assert not [where for where, text in scan.texts[start:] if canary in text]
    scan.walk("digest", digest.RULES)
    scan.walk("run command", runcommand.unwrap({"value": [{"code": "ProvisioningState/succeeded", "level": "Info",
                                                           "message": "Enable succeeded: \n[stdout]\nx\n[stderr]\n"}]}))


def test_every_result_dataclass_is_walked_or_exempt(reliability_counts):
    """Run the walks of a VM and an Arc scenario, then compare with every dataclass type."""
    scan = Scan([])
    with Emulator(mode="vm", scenario="vm-healthy", rate_limits=False) as emu:
        session = Session(check_options(target="vm", endpoint=emu.base_url, proxy_comparison=True,
                                        env={"http_proxy": f"http://127.0.0.1:{free_port()}"}))
        report = session.run_all()
        scan.walk("vm", report)
        scan.walk("vm session", session)
        scan.walk("vm tables", [runbook.table(report.checks), runbook.verdict_table(report, caption="saved")])
        scan.walk("proxy", analyze_proxy(emu.base_url, env={"http_proxy": "http://p:1"},
                                         winhttp_output="Current WinHTTP proxy settings:\n\n    Proxy Server(s) :  p:1\n"
                                                        "    Bypass List     :  (none)\n",
                                         wininet={"ProxyEnable": 1, "ProxyServer": "p:1"}))
        client = MetadataClient(TIMEOUTS)
        outcome = client.request(emu.base_url + "/metadata/instance", params={"api-version": "2021-02-01"},
                                 headers={"Metadata": "true"})
        client.close()
        scan.walk("outcome", outcome)
        scan.walk("answer", answers.classify(outcome))
        scan.walk("primer", primer.get(emu.base_url, "/metadata/instance", {"api-version": "2021-02-01"}))
    with Emulator(mode="arc", scenario="arc-healthy") as emu:
        scan.walk("arc", run_checks(check_options(target="arc", endpoint=emu.base_url, tokens_dir=str(emu.key_dir))))
        client = MetadataClient(TIMEOUTS)
        first = client.request(emu.base_url + TOKEN_PATH, params={
            "api-version": "2020-06-01", "resource": "https://management.azure.com/"}, headers={"Metadata": "true"})
        client.close()
        challenge = arc_keyfile.parse_challenge(first.header("WWW-Authenticate"))
        verdict = arc_keyfile.check_realm(challenge.realm, str(emu.key_dir))
        scan.walk("arc", (challenge, verdict, arc_keyfile.read_key(challenge.realm, verdict.lstat)[1]))
        scan.walk("primer", primer.arc_challenge(emu.base_url, str(emu.key_dir)))
    _walk_the_lab_and_the_digest(scan)
    every = _all_dataclasses()
    missing = sorted(name for name in every if name not in scan.types and name not in EXEMPT
                     and not _is_parser_type(name))
    assert missing == [], f"dataclasses neither walked by the leak scans nor exempt (say why): {missing}"
    stale = sorted(name for name in EXEMPT if name not in every)
    assert stale == [], f"EXEMPT names types that no longer exist: {stale}"
    reliability_counts.add("objects_scanned", len(scan.texts))
