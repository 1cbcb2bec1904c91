"""The runbooks with their REAL defaults: plain papermill with no endpoint parameter at all,
emulators owning 169.254.169.254:80 and localhost:40342 (tests/isolated.sh's namespace only;
elsewhere every test here skips). Scenarios are switched on the running emulators."""

from __future__ import annotations

import json

import pytest

from matrix.fault_matrix import problems

from .conftest import (ARC_SCENARIOS, NETNS, NOT_IN_NETNS, TOKENS_DIR_PRIVATE, UAMI_SCENARIO, VM_SCENARIOS,
                       RUNBOOK_CASES, EndpointRuns)

pytestmark = [pytest.mark.netns, pytest.mark.timeout(300), pytest.mark.skipif(not NETNS, reason=NOT_IN_NETNS)]
CASES = {c.scenario: c for c in RUNBOOK_CASES}
REAL = {"vm": "http://169.254.169.254", "arc": "http://localhost:40342"}


@pytest.mark.parametrize("scenario", VM_SCENARIOS + ARC_SCENARIOS)
def test_scenario_at_the_real_endpoint(endpoint_runs: EndpointRuns, scenario: str):
    if scenario.startswith("arc") and not TOKENS_DIR_PRIVATE:
        pytest.skip("no private tmpfs on /var/opt: the Arc emulator would write into the real tokens directory")
    run = endpoint_runs.runs[scenario]
    assert run.error is None, run.error
    sidecar = run.sidecar
    mode = scenario.split("-", 1)[0]
    assert sidecar["endpoint"] == REAL[mode]          # chosen by the runbook, not given
    assert "endpoint" not in run.parameters and sidecar["parameters"]["endpoint"] == ""
    assert problems(CASES[scenario], sidecar) == []
    assert run.requests and {e["scenario"] for e in run.requests} == {scenario}   # it really asked


def test_user_assigned_identities_from_a_host_file(endpoint_runs: EndpointRuns):
    run = endpoint_runs.runs["web-01"]
    assert run.error is None, run.error
    first, second = run.identities["user_assigned"][:2]
    sidecar = run.sidecar
    assert sidecar["host"] == "web-01" and sidecar["endpoint"] == REAL["vm"]
    checks = {c["id"]: c for c in sidecar["checks"]}
    by_client = checks[f"token.client_id:{first['client_id'][:8]}.monitor"]
    by_res_id = checks[f"token.msi_res_id:{second['name']}.monitor"]
    for check, identity in ((by_client, first), (by_res_id, second)):
        assert check["code"] == "IMDS-TOKEN-000", check
        claims = check["evidence"]["claims"]
        assert claims["oid"] == identity["object_id"]                         # the token is that identity's
        assert claims["xms_mirid"].lower() == identity["msi_res_id"].lower()
        assert claims["aud"].rstrip("/") == "https://monitor.azure.com"
    # Without a selector the service cannot choose among three identities; with one named, a warning.
    assert checks["token.system.monitor"]["code"] == "IMDS-TOKEN-003"
    assert checks["token.system.monitor"]["status"] == "warn"
    assert sidecar["verdict"] != "fail"
    asked = [e["query"] for e in run.requests if (e["path"] or "").endswith("/oauth2/token")]
    assert {"client_id": first["client_id"]}.items() <= next(q for q in asked if "client_id" in q).items()
    assert any(q.get("msi_res_id") == second["msi_res_id"] for q in asked)
    assert all(q.get("resource") == "https://monitor.azure.com/" for q in asked)
    assert all(e["scenario"] == UAMI_SCENARIO for e in run.requests)


def _error_cell(nb: dict) -> tuple[int, dict]:
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for k, cell in enumerate(code):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return k, cell
    pytest.fail("no cell has an error output")


@pytest.mark.parametrize("name, says", [
    ("bad-cli", "client_ids: must be a list"),           # papermill -p gives the text '["not-a-guid"]'
    ("bad-guid", "client_ids: "),                         # a list with a malformed id
    ("bad-name", "unknown parameter 'client_id' (did you mean 'client_ids'?)"),
])
def test_bad_parameter_stops_the_first_cell_with_one_line(endpoint_runs: EndpointRuns, name: str, says: str):
    run = endpoint_runs.runs[name]
    nb = json.loads(run.notebook.read_text(encoding="utf-8"))
    k, cell = _error_cell(nb)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "runbook.start(" in "".join(cell["source"])          # the first cell after the parameters
    assert all(c.get("execution_count") is None and not c.get("outputs") for c in code[k + 1:])
    (error,) = [o for o in cell["outputs"] if o["output_type"] == "error"]
    assert error["ename"] == "UsageError" and says in error["evalue"]
    assert error["traceback"] == [f"UsageError: {error['evalue']}"]   # one line, no traceback
    assert "Traceback (most recent call last)" not in json.dumps(nb)
    assert not run.sidecar_path.exists() and run.requests == []       # stopped before any request
    if name == "bad-cli":
        assert run.returncode == 1
        assert f"UsageError: {error['evalue']}" in run.stderr           # what papermill's user reads
    else:
        assert run.error is not None and run.error.ename == "UsageError"
        assert says in run.error.evalue and run.error.evalue == error["evalue"]
    if name == "bad-guid":
        assert "not-a-guid" in error["evalue"]


def test_tokens_were_issued(endpoint_runs: EndpointRuns):
    """The leak scan (test_no_leaks) is meaningful only if canary-bearing tokens were served."""
    assert endpoint_runs.tokens_issued >= 4
