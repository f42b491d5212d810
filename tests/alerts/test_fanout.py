"""The alert fan-out end to end on the local host: one queue message per tenant, over a private simulator
with five MDA tenants (each its own port, budget, alerts and faults) and the session's Azurite.

Proves: no loss and no duplicates for healthy tenants while others fail in different ways (5xx storm, 403,
missing Key Vault secret); each failure lands in that tenant's own health rows and dead letters and backs
only that tenant off; two timers in one slot queue each tenant once; invalid messages are dead-lettered
with a reason; an idle tenant costs one request per slot; an alert inside the settle window is delivered
by a follow-up message when it settles.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import azure.functions as func
import pytest

from localdev.host import LocalHost
from shared.caches import reset_all_caches
from shared.storage import (
    QUEUE_ALERT_TENANT_PULLS,
    TABLE_HEALTH,
    queue_client,
    table_client,
)
from tests.fixtures.alerts import blob_ids

DAY_MS = 86_400_000
SIM_TENANTS = ["t1", "t2", "t3", "t4", "t5"]
HOST_JSON = {
    "extensions": {"queues": {"visibilityTimeout": "00:00:00", "maxDequeueCount": 2, "batchSize": 8}},
    "functionTimeout": "00:02:00",
}


@contextmanager
def local_host() -> Iterator[LocalHost]:
    """The local host without its timer scheduler: each test fires the timer itself (a minute boundary
    passing mid-test must not add a slot)."""
    host = LocalHost(alerts_app(), host_json=HOST_JSON).start(http=False, queues=False, timers=False)
    try:
        yield host
    finally:
        host.stop()


def alerts_app() -> func.FunctionApp:
    """Only the alert functions: the session's Azurite is shared, so other features' queues are left alone."""
    from functions import alerts

    app = func.FunctionApp()
    app.register_functions(alerts.bp)
    return app


@pytest.fixture
def world(simulator_factory: Any, azurite: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    sim = simulator_factory(mda_tenants=SIM_TENANTS, rate_limit=30, rate_window=2)
    prefix = f"fo{uuid.uuid4().hex[:8]}"
    env = {
        **sim.app_env("t1"),
        "AzureWebJobsStorage": azurite.connection_string,
        "MCAS_TENANT_NAME": f"{prefix}-t1",
        "MCAS_RATE_LIMIT_WINDOW_SECONDS": "2",
        "MCAS_ALERT_SINKS": "blob",
        "MCAS_ALERTS_SETTLE_SECONDS": "0",
        "MCAS_FIRST_FETCH_LOOKBACK": "3d",
        "MCAS_ALERTS_LEASE_SECONDS": "30",
        "MCAS_ALERTS_SCHEDULE": "0 * * * * *",
        "MCAS_ALERTS_FANOUT": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MCAS_TENANT_PROFILES", raising=False)
    reset_all_caches()
    _clear_registry()
    queue_client(QUEUE_ALERT_TENANT_PULLS).clear_messages()
    queue_client(f"{QUEUE_ALERT_TENANT_PULLS}-poison").clear_messages()
    try:
        yield {"sim": sim, "prefix": prefix, "env": env}
    finally:
        _clear_registry()
        reset_all_caches()


def _clear_registry() -> None:
    from shared.storage import TABLE_FANOUT, TABLE_TENANTS

    for name in (TABLE_TENANTS, TABLE_FANOUT):
        table = table_client(name)
        for row in list(table.list_entities()):
            table.delete_entity(row["PartitionKey"], row["RowKey"])


def _seed(sim: Any, tenant: str, count: int, seed: int) -> list[str]:
    now = int(time.time() * 1000)
    spec = {"count": count, "seed": seed, "start_ms": now - 2 * DAY_MS, "end_ms": now - 5000}
    sim.mda(tenant, "POST", "alerts/seed", spec)
    return sorted(a["_id"] for a in sim.mda(tenant, "GET", "alerts")["alerts"])


def _health(tenant: str) -> list[dict[str, Any]]:
    rows = table_client(TABLE_HEALTH).query_entities(f"PartitionKey eq 'alerts.{tenant}'")
    return sorted(rows, key=lambda r: r["RowKey"])  # newest first


def _letters_for(tenants: set[str]) -> dict[str, list[Any]]:
    from shared.deadletters import list_letters

    found: dict[str, list[Any]] = {t: [] for t in tenants}
    for letter in list_letters():
        try:
            tenant = json.loads(letter.body).get("tenant")
        except (ValueError, AttributeError):
            continue
        if tenant in found:
            found[tenant].append(letter)
    return found


def _allowed(sim: Any, tenant: str) -> int:
    return int(sim.mda(tenant, "GET", "throttle/stats")["allowed"])


def test_failing_tenants_do_not_affect_the_others_and_are_dead_lettered(world):
    from shared.alerts.fanout import FanoutState, schedule_due
    from shared.storage import TABLE_FANOUT
    from shared.tenants.registry import all_targets, registry

    sim, prefix = world["sim"], world["prefix"]
    names = {t: f"{prefix}-{t}" for t in SIM_TENANTS}
    seeded = {t: _seed(sim, t, 250, seed=i + 1) for i, t in enumerate(SIM_TENANTS)}
    reg = registry()
    reg.add(names["t2"], {"api_url": sim.api_url("t2")})
    reg.add(names["t3"], {"api_url": sim.api_url("t3")})  # 5xx storm below
    reg.add(  # an app registration without MDA permissions: 403
        names["t4"],
        {
            "api_url": sim.api_url("t4"),
            "client_id": sim.client_id("webhook_api"),
            "client_secret_name": "webhook-api-client-secret",
        },
    )
    reg.add(names["t5"], {"api_url": sim.api_url("t5"), "client_secret_name": "no-such-secret"})
    sim.add_fault(service="mda", tenant="t3", error_rate=1.0, status=503, retry_after=0)

    with local_host() as host:
        host.run_timer("alerts_pull_timer")
        host.drain_queues(timeout=240)

    for healthy in ("t1", "t2"):
        assert sorted(blob_ids(names[healthy])) == seeded[healthy], f"{healthy}: lost or duplicated alerts"
        rows = _health(names[healthy])
        assert [r["error"] for r in rows] == [""] * len(rows)
        assert sum(r["alerts_delivered"] for r in rows) == 250
        assert sum(r["throttled_429"] for r in rows) == 0
    for failing in ("t3", "t4", "t5"):
        assert blob_ids(names[failing]) == []
        assert _health(names[failing])[0]["error"], f"{failing}: its failure is not in its own health row"
    assert "ServerError" in _health(names["t3"])[0]["error"]
    assert "AuthError" in _health(names["t4"])[0]["error"]
    assert "Secret" in _health(names["t5"])[0]["error"]

    letters = _letters_for(set(names.values()))
    assert letters[names["t1"]] == [] and letters[names["t2"]] == []
    assert [x.source for x in letters[names["t3"]]] == [f"{QUEUE_ALERT_TENANT_PULLS}-poison"]
    assert [x.source for x in letters[names["t4"]]] == [QUEUE_ALERT_TENANT_PULLS]
    assert "403" in letters[names["t4"]][0].reason or "permission" in letters[names["t4"]][0].reason
    assert [x.source for x in letters[names["t5"]]] == [QUEUE_ALERT_TENANT_PULLS]

    # The next slot: healthy tenants are due again, failing ones back off (not queued, not dead-lettered).
    state = FanoutState(table_client(TABLE_FANOUT))
    sent: list[str] = []
    result = schedule_due(
        all_targets(), state=state, send=lambda body, _d: sent.append(body), now=time.time() + 60
    )
    queued = {json.loads(b)["tenant"] for b in sent}
    assert queued == {names["t1"], names["t2"]}
    assert result.not_due == 3
    assert all(state.load(names[t]).failures == 1 for t in ("t3", "t4", "t5"))  # type: ignore[union-attr]


def test_two_timers_in_one_slot_queue_each_tenant_once(world):
    from shared.alerts.fanout import FanoutState, schedule_due
    from shared.settings import get_settings
    from shared.storage import TABLE_FANOUT
    from shared.tenants.registry import TenantTarget

    base = get_settings().default_tenant
    import dataclasses

    targets = [TenantTarget(dataclasses.replace(base, name=f"{world['prefix']}-d{i}")) for i in range(40)]
    state = FanoutState(table_client(TABLE_FANOUT))
    sent: list[str] = []
    lock = threading.Lock()

    def send(body: str, _delay: float) -> None:
        with lock:
            sent.append(body)

    now = time.time()
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def timer() -> None:
        barrier.wait()
        results.append(schedule_due(targets, state=state, send=send, now=now))

    threads = [threading.Thread(target=timer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tenants = [json.loads(b)["tenant"] for b in sent]
    assert sorted(tenants) == sorted(t.name for t in targets), "a tenant was queued twice or not at all"
    assert sum(len(r.enqueued) for r in results) == 40
    assert sum(r.already_queued + r.not_due for r in results) == 40
    # The same slot again (a third firing, a restart): nothing new.
    again = schedule_due(targets, state=state, send=send, now=now + 1)
    assert again.enqueued == [] and len(sent) == 40
    # Every message carries the slot's deduplication key.
    assert {json.loads(b)["dedupe"] for b in sent} == {f"{t.name}@{int(now // 60 * 60)}" for t in targets}


def test_invalid_and_unknown_tenant_messages_are_dead_lettered_with_a_reason(world):
    from shared.alerts.fanout import handle_tenant_message
    from shared.deadletters import get_letter

    outcome = handle_tenant_message("{not json", message_id=f"bad-{uuid.uuid4().hex}")
    assert outcome.action == "dead_lettered"
    unknown = json.dumps({"v": 1, "tenant": f"{world['prefix']}-nobody", "slot_s": 60, "kind": "probe"})
    message_id = f"unknown-{uuid.uuid4().hex}"
    assert handle_tenant_message(unknown, message_id=message_id).action == "dead_lettered"
    from shared.deadletters import letter_id

    letter = get_letter(letter_id(QUEUE_ALERT_TENANT_PULLS, message_id, unknown))
    assert "is not a tenant" in letter.reason and letter.body == unknown


def test_an_idle_tenant_costs_two_requests_and_a_settling_alert_arrives_by_follow_up(world, monkeypatch):
    from shared.alerts.fanout import FanoutState, queue_sender, schedule_due
    from shared.storage import TABLE_FANOUT
    from shared.tenants.registry import all_targets

    sim, tenant = world["sim"], f"{world['prefix']}-t1"
    seeded = _seed(sim, "t1", 120, seed=7)
    monkeypatch.setenv("MCAS_ALERTS_SETTLE_SECONDS", "3")
    reset_all_caches()
    state = FanoutState(table_client(TABLE_FANOUT))
    with local_host() as host:
        host.run_timer("alerts_pull_timer")
        host.drain_queues(timeout=120)
        assert sorted(blob_ids(tenant)) == seeded

        before = _allowed(sim, "t1")
        schedule_due(all_targets(), state=state, send=queue_sender(), now=time.time() + 60)
        host.drain_queues(timeout=60)
        # Two one-item probes: new alerts, and closures/status changes (schema 2 delivers those too).
        assert _allowed(sim, "t1") - before == 2, "an idle tenant's slot must cost exactly two requests"
        assert _health(tenant)[0]["stopped"] == "idle"

        added = sim.mda("t1", "POST", "alerts/add", {"count": 2})
        before = _allowed(sim, "t1")
        schedule_due(all_targets(), state=state, send=queue_sender(), now=time.time() + 120)
        host.drain_queues(timeout=60)  # waits for the follow-up, which becomes visible once the alerts settle
        requests = _allowed(sim, "t1") - before
    delivered = blob_ids(tenant)
    assert sorted(delivered) == sorted([*seeded, *added["ids"]]), "lost or duplicated"
    # Probe, then per pull (now and at the follow-up) the closures feed and one page, and the follow-up probe.
    assert requests <= 6, f"probes, closures reads and one page expected, saw {requests} requests"
