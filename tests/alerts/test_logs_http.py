"""The `logs` sink end to end over real HTTPS: alerts pulled from the simulated MDA tenant into the simulated
Logs Ingestion endpoint (token from the simulated Entra ID, checkpoints and dead letters in Azurite).

The table rows are compared field by field with the projection of the simulator's own alert store, so a row
that is lost, duplicated, reordered into the wrong alert or altered on the way fails the test.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from shared.alerts.checkpoints import STREAM_SCHEDULED, checkpoint_store
from shared.alerts.logs_records import project
from shared.alerts.logs_sink import DEAD_LETTER_SOURCE, MAX_REQUEST_BYTES, LogsIngestionSink, logs_sink
from shared.alerts.model import normalize
from shared.alerts.pull import PullOptions, pull_tenant
from shared.backoff import Backoff
from shared.mda.alerts import AlertsApi
from shared.mda.client import client_for
from shared.settings import get_settings
from tests.fixtures.alerts import seed_alerts

DAY_MS = 86_400_000


@pytest.fixture
def logs_env(alerts_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    sim = alerts_env["sim"]
    for key, value in sim.logs_env().items():
        monkeypatch.setenv(key, value)
    from shared.caches import reset_all_caches

    reset_all_caches()
    sim.logs("DELETE", "records")
    yield alerts_env
    sim.logs("DELETE", "records")
    sim.logs("DELETE", "reject")
    sim.logs("DELETE", "deny")


def _sink() -> LogsIngestionSink:
    return logs_sink(backoff=Backoff(base=0.05, cap=0.5, jitter="full"), max_attempts=8)


def _pull(tenant: str, sink: LogsIngestionSink, start_ms: int) -> Any:
    profile = get_settings().tenant(tenant)
    api = AlertsApi(client_for(profile))
    return pull_tenant(
        profile,
        PullOptions(start_ms=start_ms, max_pages=1000),
        api=api,
        store=checkpoint_store(),
        sinks=[sink],
        deadline=api.client.deadline_in(240),
    )


def _expected_rows(seeded: list[dict[str, Any]], tenant: str) -> dict[str, dict[str, Any]]:
    return {a["_id"]: project(normalize(a, tenant=tenant)) for a in seeded}


@pytest.mark.slow
def test_5000_alerts_arrive_exactly_as_pulled_despite_429s_5xx_and_resets(logs_env: dict[str, Any]) -> None:
    sim, tenant = logs_env["sim"], logs_env["tenant"]
    seeded = seed_alerts(sim, 5000, seed=21, days=3)
    sim.add_fault(service="logs", throttle_burst=3, retry_after=1)
    sim.add_fault(service="logs", reset_rate=0.15)
    sim.add_fault(service="logs", error_rate=0.15, status=503, retry_after=0)
    sink = _sink()

    result = _pull(tenant, sink, min(a["timestamp"] for a in seeded))

    assert result.ok and result.alerts == 5000, result.as_dict()
    rows = sim.logs_records()
    expected = _expected_rows(seeded, tenant)
    # each alert exactly once
    assert len(rows) == 5000 and Counter(r["AlertId"] for r in rows) == Counter(list(expected))
    for row in rows:
        assert row == expected[row["AlertId"]]  # every column, the raw record included
    stats = sim.logs_stats()
    assert stats["max_request_bytes"] <= MAX_REQUEST_BYTES and stats["max_decoded_bytes"] <= MAX_REQUEST_BYTES
    assert stats["gzip_calls"] == stats["accepted"] == sink.stats.calls
    faults = sim.counters()["faults"]
    assert faults["logs:throttle"] == 3 and faults["logs:reset"] >= 3 and faults["logs:error"] >= 3
    assert sink.stats.retries == faults["logs:throttle"] + faults["logs:reset"] + faults["logs:error"]


def test_a_refused_record_is_dead_lettered_and_the_page_commits(logs_env: dict[str, Any]) -> None:
    from shared.deadletters import list_letters

    sim, tenant = logs_env["sim"], logs_env["tenant"]
    seeded = seed_alerts(sim, 250, seed=22, days=3)
    bad = seeded[137]["_id"]
    sim.logs("POST", "reject", {"field": "AlertId", "values": [bad]})
    sink = _sink()

    result = _pull(tenant, sink, min(a["timestamp"] for a in seeded))

    assert result.ok and result.alerts == 250 and result.stopped == "caught_up"
    rows = sim.logs_records()
    expected = _expected_rows(seeded, tenant)
    assert sorted(r["AlertId"] for r in rows) == sorted(set(expected) - {bad})
    assert all(r == expected[r["AlertId"]] for r in rows)
    letters = [x for x in list_letters() if x.source == DEAD_LETTER_SOURCE and bad in x.reason]
    assert len(letters) == 1 and "InvalidContent" in letters[0].reason
    assert sink.stats.dead_lettered == 1


def test_a_rejected_page_stays_uncommitted_until_the_service_accepts_it(logs_env: dict[str, Any]) -> None:
    """403 (the Monitoring Metrics Publisher role not yet propagated): nothing commits; the next run, once the
    role works, delivers everything - the checkpoint never skipped a page."""
    sim, tenant = logs_env["sim"], logs_env["tenant"]
    seeded = seed_alerts(sim, 120, seed=23, days=3)
    start = min(a["timestamp"] for a in seeded)
    sim.logs("POST", "deny", {"principal": sim.client_id("daemon")})

    failed = _pull(tenant, _sink(), start)

    assert not failed.ok and "OperationFailed" in (failed.error or "") and failed.alerts == 0
    cp = checkpoint_store().load(STREAM_SCHEDULED, tenant)
    assert cp is not None and cp.watermark_ms == start
    sim.logs("DELETE", "deny")
    done = _pull(tenant, _sink(), start)
    assert done.ok and done.alerts == 120
    assert sorted(r["AlertId"] for r in sim.logs_records()) == sorted(a["_id"] for a in seeded)


def test_the_managed_identity_credential_mode_gets_a_monitor_token(
    logs_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.caches import reset_all_caches

    monkeypatch.setenv("MCAS_CLIENT_CREDENTIAL_MODE", "managed_identity")
    reset_all_caches()
    sim, tenant = logs_env["sim"], logs_env["tenant"]
    seeded = seed_alerts(sim, 30, seed=24, days=3)
    result = _pull(tenant, _sink(), min(a["timestamp"] for a in seeded))
    assert result.ok and len(sim.logs_records()) == 30
    assert sim.counters()["tokens"].get("managed_identity", 0) >= 1


def test_the_workers_own_managed_identity_can_be_the_caller(
    logs_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MCAS_LOGS_CREDENTIAL=managed_identity: the calls carry the Function App's identity (the principal the
    Bicep gives Monitoring Metrics Publisher on the rule), not the MDA app registration's."""
    from shared.caches import reset_all_caches

    monkeypatch.setenv("MCAS_LOGS_CREDENTIAL", "managed_identity")
    reset_all_caches()
    sim, tenant = logs_env["sim"], logs_env["tenant"]
    seeded = seed_alerts(sim, 30, seed=25, days=3)
    start = min(a["timestamp"] for a in seeded)
    sim.logs("POST", "deny", {"principal": sim.info["managed_identities"]["system"]["principal_id"]})
    denied = _pull(tenant, _sink(), start)
    assert not denied.ok and "OperationFailed" in (denied.error or "")
    sim.logs("DELETE", "deny")
    sim.logs("POST", "deny", {"principal": sim.client_id("daemon")})  # the app registration: not used here
    done = _pull(tenant, _sink(), start)
    assert done.ok and sorted(r["AlertId"] for r in sim.logs_records()) == sorted(a["_id"] for a in seeded)
