"""Canaries: nothing a run leaves behind contains a token or an Arc secret.

Every emulator puts its canary (``imdsrbcanary`` + 16 hex) literally into every token
signature and every Arc key-file secret. The emulators that ``emulator_scenario`` starts inside
the kernels get random canaries the test does not know (``IMDS_EMULATOR_CANARY`` is not set),
so the scan looks for the PREFIX, which matches every canary at once. A JWT (header.claims) must not appear either.

Scanned: every file each run wrote (executed notebooks, HTML reports, sidecars, logs,
summary.csv/html/md, parameter files) and the stdout/stderr of every command.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imds_helpers.emulator.tokens import CANARY_PREFIX

from .conftest import CliRun, EndpointRuns, FleetRun

pytestmark = pytest.mark.timeout(420)
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ")
# A live run's evidence bundle (<host>.evidence.json) keeps a token's header and claims with the
# signature cut off (unusable as a bearer token): there, only a token WITH a signature is a leak.
SIGNED_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")


def _texts(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_bytes().decode("utf-8", errors="replace")
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _leaks(texts: dict[str, str], canaries: tuple[str, ...] = ()) -> list[str]:
    found = []
    for label, text in texts.items():
        for needle in (CANARY_PREFIX, *canaries):
            at = text.find(needle)
            if at >= 0:
                found.append(f"{label}: {needle!r} at {at}: ...{text[max(0, at - 60):at + 40]!r}...")
        match = (SIGNED_JWT if label.endswith(".evidence.json") else JWT).search(text)
        if match:
            found.append(f"{label}: JWT-looking text {match.group(0)[:24]!r}...")
    return found


def _cli_texts(run: CliRun) -> dict[str, str]:
    return {**_texts(run.out), "stdout": run.stdout, "stderr": run.stderr}


def _kinds(texts: dict[str, str]) -> set[str]:
    return {Path(label).suffix or label for label in texts}


def test_matrix_artefacts(matrix_run: CliRun):
    texts = _cli_texts(matrix_run)
    assert {".ipynb", ".html", ".json", ".log", ".csv", ".md", "stdout", "stderr"} <= _kinds(texts)
    assert sum(label.endswith(".ipynb") for label in texts) == len(matrix_run.hosts)
    assert _leaks(texts) == []


def test_fleet_artefacts(fleet_run: FleetRun):
    texts = _cli_texts(fleet_run.cli)
    assert {".ipynb", ".html", ".json", ".log", ".csv", ".md"} <= _kinds(texts)
    assert _leaks(texts) == []


def test_real_endpoint_artefacts(endpoint_runs: EndpointRuns):
    texts = _texts(endpoint_runs.root)
    for name, run in endpoint_runs.runs.items():
        texts[f"{name}: papermill stdout"] = run.stdout
        texts[f"{name}: papermill stderr"] = run.stderr
        texts[f"{name}: exception"] = str(run.error or "")
    assert {".ipynb", ".json", ".yaml"} <= _kinds(texts)
    assert endpoint_runs.tokens_issued > 0 and all(c.startswith(CANARY_PREFIX) for c in endpoint_runs.canaries)
    assert _leaks(texts, endpoint_runs.canaries) == []


def test_the_scan_would_see_a_leak():
    """The scanner itself: a canary or a JWT anywhere in a text is reported."""
    from imds_helpers.emulator.tokens import make_jwt, new_canary

    canary = new_canary()
    token = make_jwt({"aud": "https://management.azure.com/", "oid": "x"}, canary)
    assert _leaks({"a": f"<td>{canary}</td>"}) and _leaks({"b": f'"detail": "{token}"'})
    unsigned = token.rsplit(".", 1)[0] + "."                       # how a bundle keeps a token
    assert not _leaks({"h.evidence.json": f'"body": "{unsigned}"'}) and _leaks({"h.json": unsigned})
    assert _leaks({"h.evidence.json": f'"body": "{unsigned}c2lnbmF0dXJl"'})   # signed: a leak, canary or not
    assert _leaks({"c": token.split(".")[0] + "." + token.split(".")[1]})   # header.claims, no signature
    assert _leaks({"d": "nothing here"}) == []
