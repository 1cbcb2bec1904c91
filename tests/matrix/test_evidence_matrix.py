"""Collect -> analyze over every emulator scenario: the live run's report equals the analysis of
its bundle (same checks, statuses, codes - the whole report), the analysis is byte-identical
when repeated, it asks nothing the bundle does not hold, and no bundle holds the emulator's
canary or a token that still has its signature. The same bundle, encoded as an evidence digest
(imds_helpers/model/digest.py), fits in 4,096 bytes, holds neither, and analyzes to the same
verdict and (check id, status, code) list - one collection per row serves both (the digest's
other tests are in tests/core/test_digest.py)."""

from __future__ import annotations

import base64
import gzip
import json
import re

import jsonschema
import pytest

from imds_helpers.model import digest, evidence
from imds_helpers.analyze import analyze, analyze_with_misses
from imds_helpers.api import check_options
from imds_helpers.collect import LiveHost, parameters
from imds_helpers.emulator import SCENARIOS, Emulator
from imds_helpers.model.evidence_schema import json_schema
from imds_helpers.analyze.pipeline import Pipeline

from .fault_matrix import MATRIX, problems

IDS = [f"{c.scenario}{'+' + '+'.join(c.args[1::2]) if c.args else ''}" for c in MATRIX]
SIGNED_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
VALIDATOR = jsonschema.Draft202012Validator(json_schema())


def _collect(case, emu):
    mode = SCENARIOS[case.scenario].mode
    args = dict(zip(case.args[0::2], case.args[1::2]))
    opts = check_options(target=mode, endpoint=emu.base_url,
                         client_ids=[args["--client-id"]] if "--client-id" in args else [],
                         tokens_dir=str(emu.key_dir) if mode == "arc" else None)
    host = LiveHost()
    pipeline = Pipeline(opts, host)
    live = pipeline.run_all()
    return live, host.bundle(parameters(opts, pipeline.tokens_dir))


def triples(report) -> tuple[str, list[tuple[str, str, str]]]:
    data = report.to_dict()
    return data["verdict"], [(c["id"], c["status"], c["code"]) for c in data["checks"]]


@pytest.mark.parametrize("case", MATRIX, ids=IDS)
def test_live_equals_analysis_of_its_bundle(case):
    mode = SCENARIOS[case.scenario].mode
    with Emulator(mode=mode, scenario=case.scenario) as emu:
        live, bundle = _collect(case, emu)
    text = evidence.dumps(bundle)
    assert emu.canary not in text
    assert not SIGNED_JWT.search(text), "a token kept its signature"
    VALIDATOR.validate(json.loads(text))
    loaded = evidence.load(text)                     # what analyze reads from disk
    report, misses = analyze_with_misses(loaded)
    assert misses == []
    assert report.to_dict() == live.to_dict()
    assert problems(case, report.to_dict()) == []
    first = json.dumps(analyze(evidence.load(text)).to_dict(), sort_keys=True)
    assert first == json.dumps(analyze(evidence.load(text)).to_dict(), sort_keys=True)
    assert len(text) < (60_000 if case.scenario.endswith("healthy") else 3_000_000)
    _check_digest(loaded, report, emu.canary)


def _check_digest(bundle, report, canary):
    text = digest.encode(bundle)
    assert len(text.encode("ascii")) <= digest.MAX_DIGEST_BYTES
    plain = gzip.decompress(base64.b64decode("".join(text.splitlines()[1:-1]))).decode()
    for shown in (text, plain):
        assert canary not in shown and not SIGNED_JWT.search(shown)
    # the levels that keep what the checks read are enough for every scenario
    assert int(text.rsplit("level=", 1)[1]) <= 1
    assert triples(analyze(digest.decode(text))) == triples(report)
