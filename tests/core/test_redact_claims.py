from __future__ import annotations

import base64
import json

from hypothesis import given, strategies as st

from imds_helpers.model import redact
from imds_helpers.model.claims import decode_claims
from imds_helpers.model.findings import CheckResult, Report, Status
from imds_helpers.model.redact import PLACEHOLDER, redact_headers, redact_text, redact_value

CANARY = "imdsrbcanary0011223344556677"


def _jwt(claims: dict) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{enc({'typ': 'JWT', 'alg': 'RS256'})}.{enc(claims)}.{CANARY}sig"


def test_jwt_and_token_fields_are_redacted():
    token = _jwt({"aud": "x"})
    text = f'{{"access_token": "{token}", "expires_in": "3599"}} Authorization: Basic {CANARY}'
    out = redact_text(text)
    assert CANARY not in out and PLACEHOLDER in out and '"expires_in": "3599"' in out


def test_known_secrets_and_headers():
    assert CANARY not in redact_text(f"secret={CANARY} here", (CANARY,))
    assert redact_headers({"Authorization": f"Basic {CANARY}", "Server": "IMDS/1"}) == {
        "Authorization": PLACEHOLDER, "Server": "IMDS/1"}
    assert CANARY not in json.dumps(redact_value({"nested": [{"access_token": CANARY}]}))


def test_results_redact_evidence():
    check = CheckResult(id="t", code="X", status=Status.OK, title="t", detail="d",
                        evidence={"body": f'{{"access_token":"{CANARY}"}}', "raw": _jwt({})})
    report = Report(target="vm", endpoint="http://x", checks=(check,))
    assert CANARY not in json.dumps(report.to_dict())


@given(st.text())
def test_redact_never_crashes_and_removes_known_secret(text):
    assert CANARY not in redact_text(text + CANARY + text, (CANARY,))


def _all_patterns(text: str) -> str:
    """redact_text without its shortcut: every pattern, always."""
    text = redact._JWT.sub(PLACEHOLDER, text)
    text = redact._TOKEN_FIELD.sub(lambda m: m.group("key") + PLACEHOLDER, text)
    return redact._AUTH_HEADER.sub(lambda m: m.group("key") + PLACEHOLDER, text)


# Case variants, and the non-ASCII letters re's IGNORECASE takes for ASCII ones
# (long s, dotless i, Kelvin sign): the shortcut must not skip any of them.
TRICKY = ["BASIC abc", "bEaReR abc", "Baſic abc", "Basıc abc", "access_toKen=abc", "ACCESS_TOKEN: abc",
          "id_to\u212aen=abc", "eyJ0.eyJ1.c2ln", "xeyJhbGciOi.eyJzdWIi.sig", "Basic realm=/var/x.key",
          "ids_token=1", "basically fine", "Microsoft.Compute/virtualMachines/vm1", ""]


@given(st.one_of(st.sampled_from(TRICKY),
                 st.lists(st.one_of(st.sampled_from(TRICKY), st.text(max_size=12))).map(" ".join)))
def test_shortcut_never_changes_the_result(text):
    assert redact_text(text) == _all_patterns(text)


def test_shortcut_lets_plain_text_through_untouched():
    for text in ("Microsoft.Compute/virtualMachines/vm1", "eastus", "169.254.169.254", "IMDS-NET-002"):
        assert redact_text(text) is text


def test_decode_claims_keeps_display_claims_only():
    claims = decode_claims(_jwt({"aud": "https://management.azure.com/", "oid": "o", "exp": 2000, "secret": "s"}), now=1000)
    assert claims == {"aud": "https://management.azure.com/", "oid": "o", "exp": 2000, "expires_in_s": 1000}
    assert "error" in decode_claims("not-a-jwt")
    assert "error" in decode_claims("a.!!!.c")


@given(st.text())
def test_decode_claims_never_raises(text):
    assert isinstance(decode_claims(text), dict)
