"""The evidence digest (imds_helpers/model/digest.py): a hostile bundle still fits in 4,096
bytes (that every fault-matrix row's bundle does, and analyzes the same, is checked where the
row is collected: tests/matrix/test_evidence_matrix.py); a cut digest is named cut, a
corrupt one names what is wrong; gunzip is bounded; cksum is POSIX cksum's."""

from __future__ import annotations

import base64
import gzip
import json
import random
import re
import shutil
import subprocess

import pytest

from imds_helpers.analyze import analyze
from imds_helpers.analyze.metadata import REQUIRED_FIELDS
from imds_helpers.emulator import Emulator
from imds_helpers.model import digest, evidence
from imds_helpers.model.claims import DISPLAY_CLAIMS
from tests.matrix.fault_matrix import MATRIX
from tests.matrix.test_evidence_matrix import _collect


@pytest.fixture(scope="module")
def healthy() -> dict:
    with Emulator(mode="vm", scenario="vm-healthy") as emu:
        return _collect(MATRIX[0], emu)[1]


# --- always fits -----------------------------------------------------------------------------------

def _nasty(rng: random.Random, n: int) -> str:
    """Characters JSON escapes or encodes long: controls, quotes, non-BMP, plus ASCII."""
    pool = [chr(c) for c in range(32)] + ['"', "\\", "\U0010fffd", "\u2028", "é"] + list("abcXYZ019")
    return "".join(rng.choice(pool) for _ in range(n))


def test_hostile_bundle_fits(healthy):
    rng = random.Random(17)
    bundle = json.loads(json.dumps(healthy))
    record = bundle["http"][0]
    records = []
    for index in range(evidence.MAX_RECORDS):
        r = json.loads(json.dumps(record))
        r["request"]["url"] = f"http://x/{index}/" + _nasty(rng, 40)
        r["body"] = _nasty(rng, 20_000 if index < 8 else 200)
        r["headers"] = [[_nasty(rng, 30), _nasty(rng, 60)] for _ in range(20)]
        records.append(r)
    bundle["http"] = records
    bundle["commands"] = [dict(bundle["commands"][0], argv=[_nasty(rng, 20)], stdout=_nasty(rng, 5000))
                          for _ in range(evidence.MAX_RECORDS)]
    bundle["environment"] = {_nasty(rng, 50): _nasty(rng, 500) for _ in range(300)}
    bundle["host"] = {k: _nasty(rng, 3000) for k in bundle["host"]}
    bundle["parameters"]["resources"] = [_nasty(rng, 500) for _ in range(300)]
    bundle["parameters"]["identities"] = [["client_id", _nasty(rng, 300)] for _ in range(300)]
    bundle["identity"]["users"] = {_nasty(rng, 100): 10**900 for _ in range(100)}
    bundle["duration_ms"] = 1e300
    evidence.check(bundle)
    assert len(evidence.dumps(bundle)) > 10_000_000
    text = digest.encode(bundle)
    assert len(text.encode("ascii")) <= digest.MAX_DIGEST_BYTES
    assert text.rstrip().endswith(f"level={digest.LEVELS[-1]}")
    decoded = digest.decode(text)
    assert all(decoded[name] == [] for name in evidence.RECORD_KINDS)


def test_the_last_level_keeps_the_parameters_analyze_needs(healthy):
    """Level 5 caps every string at 24 bytes, but a client id cut short is no GUID and analyze()
    would refuse the digest: the run's parameters keep their texts (long list items are left out)."""
    client_id = "11111111-2222-3333-4444-555555555555"
    bundle = json.loads(json.dumps(healthy))
    bundle["parameters"]["identities"] = [["client_id", client_id], ["client_id", "x" * 400]]
    decoded = digest.reduce(bundle, digest.LEVELS[-1])
    evidence.check(decoded)
    assert all(decoded[name] == [] for name in evidence.RECORD_KINDS)
    assert decoded["parameters"]["identities"] == [["client_id", client_id]]
    assert decoded["parameters"]["resources"] == healthy["parameters"]["resources"]
    report = analyze(decoded)
    assert report.checks


def test_rules_are_one_table_of_contiguous_levels():
    assert digest.LEVELS == tuple(range(len(digest.LEVELS)))
    assert all(rule.part in digest._REDUCERS for rule in digest.RULES)
    assert [r["level"] for r in digest.rules_table()] == sorted(r["level"] for r in digest.rules_table())


def test_body_spec_keeps_what_the_checks_read():
    assert set(REQUIRED_FIELDS) <= set(digest.COMPUTE_READ)
    # a token keeps exactly the claims decode_claims shows, and stays unsigned
    claims = {name: f"v-{name}" for name in DISPLAY_CLAIMS} | {"exp": 2_000_000_000, "secret_claim": "x"}
    token = "eyJhbGciOiJSUzI1NiJ9." + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + ".c2ln"
    kept = digest._token(token)
    assert kept.endswith(".") and "secret_claim" not in base64.urlsafe_b64decode(kept.split(".")[1] + "==").decode()
    assert digest._token("not.a-jwt.at-all") == "unreadable"


def test_non_json_bodies_stay_non_json_and_keep_searched_texts():
    record = {"body": '{"a":1}' + " " * 600 + "x unreachable", "body_encoding": "utf-8", "body_truncated": False}
    digest._cut_body(record, 64)
    assert len(record["body"]) <= 64 and record["body_truncated"]
    assert "unreachable" in record["body"] and not digest._is_json(record["body"].encode())


def test_firewall_lines_for_other_destinations_go_first():
    rules = "\n".join(["*filter", ":OUTPUT ACCEPT [0:0]"] + [f"-A OUTPUT -d 10.0.{i}.0/24 -j ACCEPT" for i in range(200)]
                      + ["-A OUTPUT -d 169.254.0.0/16 -j DROP", "-A OUTPUT -p tcp -j REJECT",
                         "-A OUTPUT ! -d 10.1.0.0/16 -j LOG", "COMMIT"])
    cut = digest._cut_output(rules, 512, "169.254.169.254")
    assert cut.splitlines() == ["*filter", ":OUTPUT ACCEPT [0:0]", "-A OUTPUT -d 169.254.0.0/16 -j DROP",
                                "-A OUTPUT -p tcp -j REJECT", "-A OUTPUT ! -d 10.1.0.0/16 -j LOG", "COMMIT"]


# --- cut and corrupt --------------------------------------------------------------------------------

def test_cut_digests_are_named_cut(healthy):
    text = digest.encode(healthy)
    assert digest.decode(("x" * 3000 + "\n" + text)[-4096:]) == digest.decode(text)   # text before: ignored
    run_command_tail = (text + "more output after the digest\n" * 40)[-4096:]   # Run Command keeps the last 4,096 bytes
    with pytest.raises(digest.CutDigest, match="first part of the digest is missing"):
        digest.decode(run_command_tail)
    for end in (len(text) // 2, len(text) - 10, len(text) - 1 - len(text.splitlines()[-1]) // 2):
        with pytest.raises(digest.CutDigest, match="^cut: "):
            digest.decode(text[:end])
    assert digest.decode("Enable succeeded: \n[stdout]\n" + text + "\n[stderr]\n") == digest.decode(text)


def _replace_line(text: str, index: int, line: str) -> str:
    lines = text.split("\n")
    lines[index] = line
    return "\n".join(lines)


def test_corrupt_digests_name_the_problem(healthy):
    text = digest.encode(healthy)
    lines = text.split("\n")
    flipped = lines[3][:10] + ("A" if lines[3][10] != "A" else "B") + lines[3][11:]
    cases = {
        "cksum": _replace_line(text, 3, flipped),
        "holds": "\n".join(lines[:3] + lines[4:]),                       # a line lost: the length
        "not base64": _replace_line(text, 2, lines[2][:-1] + "*"),
        "END line is not": text.replace("cksum=", "crc="),
        "format 2": text.replace("IMDS-DIGEST 1 BEGIN", "IMDS-DIGEST 2 BEGIN"),
        "level 9": re.sub(r"level=\d", "level=9", text),
    }
    for expected, bad in cases.items():
        with pytest.raises(digest.BadDigest) as err:
            digest.decode(bad)
        assert expected in str(err.value) and "\n" not in str(err.value)
        assert not isinstance(err.value, digest.CutDigest)
        assert err.value.exit_code == 2


def _wrap(payload: bytes, level: int = 0) -> str:
    encoded = base64.b64encode(payload).decode()
    body = [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
    return "\n".join([digest.BEGIN, *body, f"{digest.END} bytes={len(payload)} cksum={digest.cksum(payload)} level={level}"]) + "\n"


def test_gunzip_is_bounded_and_the_bundle_checked():
    bomb = gzip.compress(b" " * (evidence.MAX_BUNDLE_BYTES + 4096), 9)
    with pytest.raises(digest.BadDigest, match="expands past"):
        digest.decode(_wrap(bomb))
    with pytest.raises(digest.BadDigest, match="not gzip"):
        digest.decode(_wrap(b"plain bytes"))
    with pytest.raises(digest.BadDigest, match="not an evidence bundle"):
        digest.decode(_wrap(gzip.compress(b'{"kind": "other"}')))
    with pytest.raises(digest.BadDigest, match="no digest"):
        digest.decode("hello")
    assert not digest.is_digest("hello") and digest.is_digest("..\nIMDS-DIGEST 1 END bytes=1 cksum=1 level=0\n")


# --- cksum ---------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("cksum") is None, reason="no cksum binary on this platform")
def test_cksum_is_posix_cksum():
    rng = random.Random(4)
    for size in (0, 1, 3, 255, 256, 257, 4096, 65_536, 100_003):
        data = bytes(rng.getrandbits(8) for _ in range(size))
        out = subprocess.run(["cksum"], input=data, capture_output=True, check=True, timeout=10).stdout.split()
        assert (digest.cksum(data), size) == (int(out[0]), int(out[1]))
