"""Two-way sync over real HTTP: a SOAR job on a tenant whose alert source is Microsoft Graph becomes a PATCH
(and a comment) on the simulated Graph API, and the next pull delivers the new version of the alert.

LocalHost (function keys) -> intake -> Azurite queue -> worker -> simulator (Entra, Key Vault, Graph).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from shared.alerts.config import AlertConfig
from shared.alerts.pull import default_environment, run_scheduled
from shared.caches import reset_all_caches
from shared.settings import get_settings
from tests.alerts.fakes import RecordingSink
from tests.jobs.test_jobs_http import TENANT, accepted, run_to_completion, seed

DAY_MS = 86_400_000


@pytest.fixture
def graph_jobs(jobs_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    sim = jobs_env["sim"]
    monkeypatch.setenv("MCAS_ALERT_SOURCE", "graph")
    monkeypatch.setenv("MCAS_ALERTS_SETTLE_SECONDS", "0")
    monkeypatch.setenv("MCAS_TENANT_NAME", f"g{uuid.uuid4().hex[:10]}")  # a fresh checkpoint per test
    reset_all_caches()
    sim.graph(TENANT, "POST", "reset")
    sim.graph(TENANT, "POST", "config", {"limit": 150, "window_s": 2})
    return jobs_env


def _pull() -> list[dict[str, Any]]:
    sink = RecordingSink()
    env = default_environment(
        AlertConfig.from_settings(get_settings()), extra_sinks=[sink], require_sink=False
    )
    results = run_scheduled(env=env, budget_s=60, start_ms=int(time.time() * 1000) - 3 * DAY_MS)
    assert all(r.ok for r in results), [(r.stream, r.error) for r in results]
    return [dict(a) for b in sink.batches for a in b.alerts]


def test_close_on_a_graph_tenant_is_a_patch_and_the_next_pull_delivers_it(graph_jobs, host, client):
    sim = graph_jobs["sim"]
    seed(sim, 5)
    first = _pull()
    assert len(first) == 5 and {r["source"] for r in first} == {"graph"}
    target = next(r for r in first if r["status"] != "resolved")
    close = {"action": "alerts.close", "kind": "benign", "reasonId": 6, "ids": [target["id"]]}
    close["comment"] = "pen test"
    data = run_to_completion(host, client, accepted(client.submit(close)))
    assert data["status"] == "succeeded", data
    result = data["result"]
    assert (result["closed_benign"], result["commented"], result["source"]) == (1, 1, "graph")
    assert result["changes"] == {
        "status": "resolved",
        "classification": "informationalExpectedActivity",
        "determination": "securityTesting",
    }
    [record] = [r for r in _pull() if r["id"] == target["id"]]
    assert record["version"] > target["version"]
    assert (record["status"], record["classification"], record["determination"]) == (
        "resolved",
        "informationalExpectedActivity",
        "securityTesting",
    )
    assert [c["comment"] for c in record["raw"]["comments"]] == ["pen test"]

    # The same close again (a SOAR retry): nothing differs, so no PATCH, no second comment, no new version.
    again = run_to_completion(host, client, accepted(client.submit(close)))
    assert again["result"]["alreadyClosed"] == [target["id"]] and again["result"]["commented"] == 0
    assert _pull() == []


def test_update_and_mark_on_a_graph_tenant(graph_jobs, host, client):
    sim = graph_jobs["sim"]
    seed(sim, 3)
    records = _pull()
    target = next(r for r in records if r["status"] == "new")
    job = {
        "action": "alerts.update",
        "ids": [target["id"], "ca" + "0" * 24],
        "assignedTo": "alex@contoso.com",
        "status": "inProgress",
        "determination": "compromisedAccount",
    }
    data = run_to_completion(host, client, accepted(client.submit(job)))
    assert data["status"] == "succeeded", data
    assert data["result"]["updated"] == 1 and data["result"]["alertsNotFound"] == ["ca" + "0" * 24]
    [record] = _pull()
    assert (record["assigned_to"], record["status"], record["determination"]) == (
        "alex@contoso.com",
        "inProgress",
        "compromisedAccount",
    )
    unread = run_to_completion(
        host, client, accepted(client.submit({"action": "alerts.mark_unread", "ids": [target["id"]]}))
    )
    assert unread["result"]["marked_unread"] == 1
    assert [r["status"] for r in _pull()] == ["new"]


def test_update_fields_the_mda_api_cannot_set_are_field_errors(jobs_env, host, client):
    response = client.submit(
        {"action": "alerts.update", "ids": ["a" * 24], "assignedTo": "x@y.z", "determination": "malware"}
    )
    assert response.status_code == 400
    errors = response.json()["fieldErrors"]
    assert set(errors) >= {"assignedTo", "determination"}
    ok = client.submit(
        {"action": "alerts.update", "ids": ["a" * 24], "status": "resolved", "classification": "truePositive"}
    )
    assert ok.status_code == 202
