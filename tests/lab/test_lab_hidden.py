"""HIDDEN: for every lab case, nothing the lab shows or writes before the answer names its
scenario. A session does what a trainee can do - read the story, the choices and the hints, probe
every path the primer teaches (raw exchanges, curl / PowerShell lines, token claims, the Arc
challenge, the tokens directory), print the lab - and everything that leaves a trace is collected:
those outputs, the emulator's request log and repr, every log record, thread names, the names of
files created under the temp directory and the tokens directory, os.environ. The scan looks for the
scenario's name, the case's key and the words that label the scenario (not the symptoms a probe is
meant to find: a FIFO's type or a 429 status are evidence), and for the emulator's canary. The scan
is tested: a leak planted in each kind of trace is caught."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading

import pytest

from imds_helpers.emulator import SCENARIOS
from imds_helpers.emulator.lab_scenarios import LAB_BY_KEY, LAB_CASES
from imds_helpers.runbooks.fault_lab import Lab

# Words that label a scenario (its name's parts, its settings' values), beyond the name itself.
# Scanned everywhere except the choices, fixes and hints, which name causes and fixes by design.
LABELS: dict[str, tuple[str, ...]] = {
    "vm-no-identity": (r"no.identity",),
    # IMDS's own 400 says "Multiple user assigned identities exist": evidence, not a label.
    "vm-multiple-user-assigned": (r"multiple-user", r"user_assigned"),
    "vm-unknown-resource": (r"unknown.resource",),
    "vm-throttled": (r"throttl",),
    "vm-forwarded-rejected": (r"forwarded.rejected",),
    "vm-malformed-json": (r"malformed",),
    "vm-truncated-body": (r"truncat",),
    # the client's own error kind "oversized_payload" is what it measured: evidence.
    "vm-oversized-body": (r"oversized(?!_payload)",),
    "vm-not-imds-html": (r"not.imds",),
    "vm-connection-reset": (r"connection.reset\b(?!\w)(?<!_reset)",),
    "vm-firewalled": (r"firewall", r"blackhole", r"iptables", r"\bdrop\b"),
    "vm-accept-then-hang": (r"accept.then", r"\bhang"),
    "vm-slow-drip": (r"drip",),
    "vm-old-api-versions": (r"old.api",),
    "vm-persistent-5xx": (r"persistent",),
    "arc-no-challenge-header": (r"no.challenge", r"challenge_header"),
    "arc-realm-outside-tokens-dir": (r"outside-", r"outside.tokens"),
    "arc-realm-not-key": (r"not.key\b",),
    "arc-realm-traversal": (r"traversal",),
    "arc-realm-fifo": (r"realm.fifo",),
    "arc-key-too-large": (r"too.large", r"key_size"),
    "arc-wrong-secret": (r"wrong.secret", r"reject_secrets"),
    "arc-agent-disconnected": (r"agent.disconnected", r"after_challenge"),
}
# The choices, fixes and hints are scanned for the name and the key only.
BY_DESIGN = ("choices", "hints")
INSTANCE = {"api-version": "2021-02-01"}


def test_every_lab_scenario_has_its_labels():
    assert sorted(LABELS) == sorted({c.scenario for c in LAB_CASES})


def leaks(case, surfaces: dict[str, str], canary: str) -> list[str]:
    """(surface, what) for every trace of the scenario (or the canary) in the collected outputs."""
    found = []
    for surface, text in surfaces.items():
        lowered = text.lower()
        for needle in (case.scenario, case.key, canary):
            if needle.lower() in lowered:
                found.append(f"{surface}: {needle!r}")
        if surface not in BY_DESIGN:
            found += [f"{surface}: /{label}/" for label in LABELS[case.scenario] if re.search(label, lowered)]
    return found


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()} {record.exc_text or ''}")


def _names_under(folder: str) -> list[str]:
    names = []
    for root, dirs, files in os.walk(folder):
        names += [os.path.join(root, n) for n in dirs + files]
    return names


def session(case, plant=None) -> tuple[dict[str, str], str]:
    """Everything a trainee can see of one case before answering, by surface; and the canary."""
    tmp = tempfile.gettempdir()
    before = set(os.listdir(tmp))
    records = _Records()
    root, ours = logging.getLogger(), logging.getLogger("imds_helpers")
    old_level = ours.level
    root.addHandler(records)
    ours.setLevel(logging.DEBUG)
    out: dict[str, list[str]] = {}

    def show(surface: str, *values) -> None:
        out.setdefault(surface, []).extend(v if isinstance(v, str) else json.dumps(v, default=str) for v in values)

    try:
        # 1 s per probe: what a probe shows does not depend on how long it waited (hangs end sooner)
        with Lab(case=case, timeout=1.0) as lab:
            if plant:
                plant(lab)
            show("story", lab.story, lab.target)
            show("lab", repr(lab), str(lab), lab.simulated, lab.base_url, lab.tokens_dir or "")
            show("choices", [c.to_dict() for c in lab.choices + lab.fixes])
            show("hints", *[lab.hint(level).to_dict() for level in (1, 2, 3)], *[lab.hint(n)._repr_markdown_()
                                                                              for n in (1, 2, 3)])
            token_path, token_params = lab.token_request()
            probes = [("/metadata/instance", INSTANCE, {}, True), ("/metadata/instance", INSTANCE, {}, False),
                      ("/metadata/instance", {}, {}, True), (token_path, token_params, {}, True),
                      ("/metadata/instance", INSTANCE, {"X-Forwarded-For": "10.0.0.4"}, True)]
            if lab.target == "vm":
                probes += [("/metadata/versions", {}, {}, True),
                           ("/metadata/instance/compute/location", {**INSTANCE, "format": "text"}, {}, True)]
            for path, params, headers, metadata in probes:
                exchange = lab.probe(path, params, headers=headers, metadata=metadata)
                show("probes", exchange.to_dict(), exchange._repr_markdown_(), lab.curl(path, params))
            show("probes", lab.token_claims())
            if lab.target == "arc":
                walk = lab.challenge()
                show("probes", walk.to_dict(), walk._repr_markdown_())
                realm = (walk.exchanges[0].response_headers.get("WWW-Authenticate") or "").partition("=")[2]
                fact = lab.stat(realm.strip('"')) if realm else None
                show("files", [f.to_dict() for f in lab.files()], fact.to_dict() if fact else "",
                     _names_under(lab.tokens_dir))
            show("emulator", repr(lab._emu), lab._emu.request_log)
            show("threads", [t.name for t in threading.enumerate()])
            show("files", sorted(set(os.listdir(tmp)) - before),
                 *[_names_under(os.path.join(tmp, n)) for n in sorted(set(os.listdir(tmp)) - before)])
            show("environment", dict(os.environ))
            canary = lab._emu.canary
    finally:
        root.removeHandler(records)
        ours.setLevel(old_level)
    show("logs", records.lines)
    return {surface: "\n".join(values) for surface, values in out.items()}, canary


@pytest.mark.timeout(120)
# Test ids are row numbers: pytest puts the running test's id in os.environ (PYTEST_CURRENT_TEST).
@pytest.mark.parametrize("case", LAB_CASES, ids=[f"row{n}" for n in range(len(LAB_CASES))])
def test_nothing_before_the_answer_names_the_scenario(case):
    surfaces, canary = session(case)
    assert leaks(case, surfaces, canary) == []
    assert surfaces["probes"] and surfaces["logs"] is not None and surfaces["emulator"]


PLANTS = {
    "a log line": lambda lab, name: logging.getLogger("imds_helpers.emulator").debug("scenario %s", name),
    "an environment variable": lambda lab, name: os.environ.__setitem__("IMDS_LAB_PLANTED", name),
    "a temp file name": lambda lab, name: tempfile.mkdtemp(prefix=f"imds-{name}-"),
    "a thread name": lambda lab, name: threading.Thread(target=lab._emu._stop.wait, name=name, daemon=True).start(),
    "the emulator's log": lambda lab, name: lab._emu.request_log.append({"scenario": name}),
    "a name in the tokens directory": lambda lab, name: os.makedirs(os.path.join(
        lab.tokens_dir or tempfile.gettempdir(), f"imds-{name}")),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", list(PLANTS))
def test_the_scan_catches_a_planted_leak(where):
    """Test the test: the scenario's name, or one of its label words, planted in a trace is found."""
    case, word_case = LAB_BY_KEY["lab20"], LAB_BY_KEY["lab01"]    # Arc (tokens dir), and a label word
    planted = []
    try:
        for target, needle in ((case, case.scenario), (word_case, "no_identity")):
            surfaces, canary = session(target, plant=lambda lab, n=needle: PLANTS[where](lab, n))
            found = leaks(target, surfaces, canary)
            assert found, f"{where}: {needle} not found"
            planted.append(found)
    finally:
        os.environ.pop("IMDS_LAB_PLANTED", None)
        for name in os.listdir(tempfile.gettempdir()):
            if name.startswith(("imds-arc-", "imds-vm-", "imds-no_identity")):
                path = os.path.join(tempfile.gettempdir(), name)
                for root, dirs, files in os.walk(path, topdown=False):
                    for n in files:
                        os.unlink(os.path.join(root, n))
                    for n in dirs:
                        os.rmdir(os.path.join(root, n))
                os.rmdir(path)


def test_the_scan_catches_the_canary_and_the_key():
    case = LAB_CASES[0]
    assert leaks(case, {"probes": "Bearer xyzCANARY123"}, "canary123") == ["probes: 'canary123'"]
    assert leaks(case, {"choices": f"case {case.key}"}, "canary123") == [f"choices: {case.key!r}"]
    assert leaks(case, {"choices": "no identity"}, "canary123") == []        # choices name causes by design
    assert leaks(case, {"story": "no identity"}, "canary123") == ["story: /no.identity/"]
    assert all(s.mode in ("vm", "arc") for s in SCENARIOS.values())
