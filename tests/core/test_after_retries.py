"""A step that succeeded only after retries is the IMDS-HTTP-017 warning, with the failed
attempts counted and explained, and the successful answer's evidence kept; a steady service
stays OK. (The Arc challenge's case is in tests/arc/test_arc_challenge.py.)"""

from __future__ import annotations

import pytest

from imds_helpers.model.answers import retry_summary
from imds_helpers.model.catalog import CATALOG
from imds_helpers.emulator import Emulator
from imds_helpers.emulator.scenarios import Answer
from imds_helpers.model.findings import Attempt, Status
from imds_helpers.collect.http import MetadataClient, Timeouts
from imds_helpers.analyze.metadata import check_instance
from imds_helpers.analyze.tokens import MANAGEMENT, Identity, check_token

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client() -> MetadataClient:
    return MetadataClient(Timeouts(connect=2, read=3, total=8))


def test_the_row_is_a_warning():
    assert CATALOG["IMDS-HTTP-017"].status is Status.WARN


def test_instance_answered_after_two_410s_is_a_warning(client):
    gone = Answer(410, {"error": "Gone"})
    with Emulator(mode="vm", scenario="vm-healthy",
                  scenario_params={"respond": (gone, gone), "categories": ("instance",)}) as emu:
        instance, newest = check_instance(client, emu.base_url)
    assert (instance.code, instance.status) == ("IMDS-HTTP-017", Status.WARN), instance.detail
    assert instance.detail.startswith("answered after 2 x 410 Gone (IMDS is updating) (3 attempts): ")
    assert [a.status for a in instance.attempts] == [410, 410, 200]
    # The OK finding's evidence is still there, and which code a steady service gives.
    assert instance.evidence["ok_code"] == "IMDS-META-000" and instance.evidence["vmId"]
    assert instance.evidence["failed_attempts"] == 2
    assert newest.code == "IMDS-META-005"      # the versions/newest requests did not flap


def test_token_after_404_then_500_keeps_its_claims(client):
    with Emulator(mode="vm", scenario="vm-healthy",
                  scenario_params={"respond": (Answer(404, {"error": "not_found"}), Answer(500, {"error": "x"})),
                                   "categories": ("token",), "stage": "valid"}) as emu:
        result = check_token(client, emu.base_url, MANAGEMENT)
    assert (result.code, result.status) == ("IMDS-HTTP-017", Status.WARN), result.detail
    assert "1 x 404 Not Found (not there yet: IMDS updating, or a new identity propagating)" in result.detail
    assert "1 x 500 Internal Server Error (transient server error) (3 attempts)" in result.detail
    assert result.evidence["claims"]["aud"] == MANAGEMENT and result.evidence["ok_code"] == "IMDS-TOKEN-000"
    assert "aud=https://management.azure.com/" in result.detail


def test_ama_identity_token_after_retry_remembers_it_was_amas(client):
    with Emulator(mode="vm", scenario="vm-healthy",
                  scenario_params={"respond": (Answer(429, {"error": "busy"}, headers=(("Retry-After", "0"),)),),
                                   "categories": ("token",), "stage": "valid"}) as emu:
        result = check_token(client, emu.base_url, MANAGEMENT, Identity(source="ama-config"))
    assert result.code == "IMDS-HTTP-017" and "1 x 429 Too Many Requests (throttled)" in result.detail
    assert result.evidence["ok_code"] == "IMDS-TOKEN-008"


def test_steady_service_stays_ok(client):
    with Emulator(mode="vm", scenario="vm-healthy") as emu:
        results = check_instance(client, emu.base_url) + (check_token(client, emu.base_url, MANAGEMENT),)
    assert [(r.code, r.status) for r in results] == [("IMDS-META-000", Status.OK), ("IMDS-META-005", Status.OK),
                                                     ("IMDS-TOKEN-000", Status.OK)]
    assert all("ok_code" not in r.evidence for r in results)


def test_a_failure_after_retries_stays_that_failure(client):
    """Retries that never got through are the failure's own code, not a flap."""
    with Emulator(mode="vm", scenario="vm-persistent-5xx") as emu:
        result = check_token(client, emu.base_url, MANAGEMENT)
    assert result.code == "IMDS-HTTP-013" and len(result.attempts) > 1


def test_summary_counts_in_order_of_appearance():
    def attempt(status=None, error=None):
        return Attempt("GET", "u", status, error, 1.0)
    failed = (attempt(410), attempt(503), attempt(410), attempt(error="connection_reset"), attempt(599))
    assert retry_summary(failed) == ("2 x 410 Gone (IMDS is updating), 1 x 503 Service Unavailable (transient "
                                     "server error), 1 x connection reset (connection torn down), 1 x 599 "
                                     "(transient server error)")
    assert retry_summary((attempt(410),), service="arc") == "1 x 410 Gone (HIMDS is updating)"
