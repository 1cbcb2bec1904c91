from __future__ import annotations

import json
import time

import pytest

from imds_helpers.model import strictjson
from imds_helpers.model.answers import classify
from imds_helpers.model.findings import Attempt
from imds_helpers.collect.http import MetadataClient, Outcome, Timeouts
from imds_helpers.model.taxonomy import ErrorKind

from .conftest import drip, hang, reset, respond, truncated

FAST = Timeouts(connect=0.5, read=0.5, total=1.5)


def test_success_records_one_attempt_with_evidence_headers(raw_server):
    url = raw_server(respond("200 OK", b'{"a": "1"}'))
    outcome = MetadataClient(FAST).request(url + "/x", params={"api-version": "2019-11-01"})
    assert outcome.ok and outcome.json() == {"a": "1"}
    (attempt,) = outcome.attempts
    assert attempt.status == 200 and attempt.url.endswith("/x?api-version=2019-11-01")
    assert attempt.headers["Server"].startswith("IMDS/")


@pytest.mark.parametrize("handler, kind", [
    (reset, ErrorKind.CONNECTION_RESET),
    (hang, ErrorKind.READ_TIMEOUT),
    (drip, ErrorKind.DEADLINE_EXCEEDED),
    (truncated, ErrorKind.BAD_PAYLOAD),
])
def test_faults_are_classified_within_the_deadline(raw_server, handler, kind):
    url = raw_server(handler)
    started = time.monotonic()
    outcome = MetadataClient(FAST).request(url)
    assert outcome.error is kind
    assert time.monotonic() - started < FAST.total + 0.6


def test_connection_refused_is_immediate():
    started = time.monotonic()
    outcome = MetadataClient(FAST).request("http://127.0.0.1:9")
    assert outcome.error is ErrorKind.CONNECT_REFUSED
    assert time.monotonic() - started < 0.5


def test_oversized_body_is_cut(raw_server):
    url = raw_server(respond("200 OK", b"x" * 300_000))
    outcome = MetadataClient(FAST, max_body_bytes=100_000).request(url)
    assert outcome.error is ErrorKind.OVERSIZED_PAYLOAD and len(outcome.body) == 100_000


def test_retry_after_is_honoured_only_within_budget(raw_server):
    sleeps: list[float] = []
    url = raw_server(respond("429 Too Many Requests", b'{"error":"too_many_requests"}', {"Retry-After": "1"}))
    client = MetadataClient(Timeouts(connect=0.5, read=0.5, total=2.5), sleep=lambda s: (sleeps.append(s), time.sleep(s)))
    outcome = client.request(url)
    assert outcome.status == 429 and len(outcome.attempts) == 3
    assert sleeps == [1.0, 1.0]
    far = raw_server(respond("429 Too Many Requests", b"{}", {"Retry-After": "60"}))
    outcome = MetadataClient(FAST).request(far)
    assert len(outcome.attempts) == 1  # a 60 s wait does not fit a 1.5 s budget


def test_non_retryable_status_is_not_retried(raw_server):
    url = raw_server(respond("400 Bad Request", b'{"error":"invalid_request"}'))
    assert len(MetadataClient(FAST).request(url).attempts) == 1


def test_environment_proxies_are_ignored(raw_server, monkeypatch):
    url = raw_server(respond("200 OK", b"{}"))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert MetadataClient(FAST).request(url).ok


def test_token_bodies_are_redacted_in_attempts_and_repr(raw_server):
    secret = "eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.imdsrbcanary0123456789abcdef"
    url = raw_server(respond("200 OK", json.dumps({"access_token": secret, "expires_in": "3599"}).encode()))
    outcome = MetadataClient(FAST).request(url)
    assert "imdsrbcanary" not in repr(outcome)
    assert "imdsrbcanary" not in json.dumps([a.to_dict() for a in outcome.attempts])
    assert outcome.json()["access_token"] == secret  # the caller can still use it


@pytest.mark.parametrize("bad", [0, -1, 5000, float("nan")])
def test_timeouts_reject_nonsense(bad):
    with pytest.raises(ValueError):
        Timeouts(connect=bad)


# --- bounded JSON: nothing from outside can exhaust the parser -----------------------------------

DEEP_LIST = b"[" * 300_000
DEEP_OBJECT = b'{"a":' * 60_000 + b"1" + b"}" * 60_000
HUGE_INT = b'{"compute":{"vmId":' + b"9" * 5000 + b"}}"       # beyond Python's 4300-digit limit
LONG_INT = b'{"compute":{"vmId":' + b"9" * 1001 + b"}}"       # within it, beyond ours


@pytest.mark.parametrize("body, why", [
    (DEEP_LIST, "JSON nested deeper than 64 levels"),
    (DEEP_OBJECT, "JSON nested deeper than 64 levels"),
    (HUGE_INT, "a number with more than 1000 digits"),
    (LONG_INT, "a number with more than 1000 digits"),
    (b'{"x":' + b"1" * 1500 + b".5}", "a number out of range"),
    (b'{"x": 1e999}', "a number out of range"),
])
def test_hostile_json_is_a_named_finding_not_an_exception(body, why):
    outcome = Outcome(attempts=(Attempt("GET", "http://x/metadata/instance", 200, None, 1.0),), status=200,
                      headers={"Server": "IMDS/150.870.65.1", "Content-Type": "application/json"}, body=body)
    with pytest.raises(strictjson.OutOfBounds, match=why):
        outcome.json()
    answer = classify(outcome)
    assert (answer.code, answer.kind) == ("IMDS-HTTP-007", ErrorKind.BAD_PAYLOAD.value)
    assert answer.detail == f"HTTP 200 with a body that is not IMDS's answer: {why}"


def test_strictjson_counts_depth_of_arrays_and_objects_not_brackets_in_strings():
    nested = "[" * 64 + "]" * 64
    assert strictjson.loads(nested)
    with pytest.raises(strictjson.OutOfBounds, match="deeper than 64"):
        strictjson.loads("[" + nested + "]")
    with pytest.raises(strictjson.OutOfBounds, match="deeper than 64"):
        strictjson.loads('{"a": [1, ' * 33 + "2" + "]}" * 33)             # 66 levels, mixed
    # Brackets inside strings (escaped quotes too) are text, not nesting.
    tricky = json.dumps({"a": ["[[[{{{", 'say \\"[[[" and \\\\', {"b": "]]]}}}" * 100}]})
    assert strictjson.loads(tricky)["a"][0] == "[[[{{{"
    assert strictjson.loads(json.dumps(["[" * 5000])) == ["[" * 5000]
    with pytest.raises(strictjson.OutOfBounds, match="deeper than 10"):
        strictjson.loads("[" * 11 + "]" * 11, max_depth=10)


def test_strictjson_bounds_size_numbers_and_decodes_bytes_like_json():
    with pytest.raises(strictjson.OutOfBounds, match="larger than 10 bytes"):
        strictjson.loads(b'"0123456789"', max_bytes=10)
    assert strictjson.loads("-" + "9" * 1000) == -int("9" * 1000)          # 1000 digits: within
    with pytest.raises(strictjson.OutOfBounds, match="more than 1000 digits"):
        strictjson.loads("1" + "0" * 1000)
    assert strictjson.loads('{"a": [1]}'.encode("utf-16")) == {"a": [1]}
    assert strictjson.loads(b"\xef\xbb\xbf[1]") == [1]
    for constant in ("NaN", "Infinity", "1e999"):
        with pytest.raises(strictjson.NotJson):
            strictjson.loads(constant)


@pytest.mark.parametrize("text", ['{"name": "\\ud800"}', '{"\\udfff": 1}', '["a\\ud83d"]'])
def test_strictjson_refuses_lone_surrogates(text):
    # Half a UTF-16 pair cannot be written as UTF-8: the sidecar, the executed notebook and
    # stdout would raise on it later. It is refused where it enters.
    with pytest.raises(strictjson.NotJson, match="lone UTF-16 surrogate"):
        strictjson.loads(text)
    with pytest.raises(UnicodeDecodeError):           # the same as raw (CESU) bytes: not UTF-8
        strictjson.loads(b'{"name": "\xed\xa0\x80"}')


def test_strictjson_keeps_pairs_and_escaped_backslashes():
    assert strictjson.loads('["\\ud83d\\ude00"]') == ["\U0001F600"]
    assert strictjson.loads('["\\\\ud800"]') == ["\\ud800"]      # a backslash, then text
    assert strictjson.loads(json.dumps({"é": "ü"}, ensure_ascii=False)) == {"é": "ü"}
