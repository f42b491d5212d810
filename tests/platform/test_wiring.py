"""Metrics and log context wired into the capabilities, observed from the outside.

- An alert pull over the simulator records alerts_pulled / alert_pages / throttled_429 / pull_lag per tenant,
  and the API credential records token cache hits and misses; a discovery upload records upload_bytes; the
  dead-letter store records dead_letters (an SDK meter provider with an in-memory reader stands in for
  Azure Monitor).
- Log records from a function invocation carry its invocation id, and the tenant, job id and correlation id
  where the work knows them - including records written on pool threads (prefetch, tenant fan-out).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.functions.queue import QueueMessage

from localdev.host.invoke import LocalContext
from shared.caches import reset_all_caches
from shared.logging_setup import ContextFilter
from tests.fixtures.app_env import set_app_settings
from tests.fixtures.simulator import mda_throttle
from tests.platform.metric_reader import metric_points

DAY_MS = 86_400_000
TENANT = "contoso"


def _value(points: dict[str, Any], name: str, **attributes: str) -> Any:
    matching = [v for attrs, v in points.get(f"mcas.{name}", []) if attrs == attributes]
    assert len(matching) == 1, (name, attributes, points.get(f"mcas.{name}"))
    return matching[0]


@pytest.fixture
def tenant(app_env: dict[str, str], simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh tenant profile name against contoso, blob sink, no settle delay, 150 alerts seeded."""
    name = f"wire{uuid.uuid4().hex[:10]}"
    settings = {
        "MCAS_TENANT_NAME": name,
        "MCAS_ALERT_SINKS": "blob",
        "MCAS_ALERTS_SETTLE_SECONDS": "0",
        "MCAS_FIRST_FETCH_LOOKBACK": "3d",
        "MCAS_ALERTS_SCHEDULE": "0 */5 * * * *",
        "MCAS_ALERTS_FANOUT": "false",  # the timer pulls in-process here
        "MCAS_RATE_LIMIT_WINDOW_SECONDS": "2",
    }
    set_app_settings(monkeypatch, settings)
    try:
        with mda_throttle(simulator, TENANT, limit=30, window_s=2):
            now = int(time.time() * 1000)
            spec = {"count": 150, "seed": 21, "start_ms": now - 2 * DAY_MS, "end_ms": now - 1000}
            simulator.mda(TENANT, "POST", "alerts/seed", spec)
            yield name
    finally:
        simulator.mda(TENANT, "DELETE", "alerts")
        reset_all_caches()


class _Records(logging.Handler):
    """Keeps every record with the context stamped on it at emit time (in the emitting thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(ContextFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Records]:
    handler = _Records()
    root = logging.getLogger()
    root.addHandler(handler)
    for name in ("shared", "localdev"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def _timer() -> Any:
    import function_app
    from localdev.host.index import app_functions

    return {f.get_function_name(): f for f in app_functions(function_app.app)}["alerts_pull_timer"]


def test_an_alert_pull_records_its_figures_and_the_token_cache(tenant, reader):
    from azure.functions.timer import TimerRequest

    _timer().get_user_function()(TimerRequest(past_due=False), context=LocalContext("alerts_pull_timer", "."))

    points = metric_points(reader)
    assert _value(points, "alerts_pulled", tenant=tenant) == 150
    assert _value(points, "alert_pages", tenant=tenant) == 2
    assert _value(points, "throttled_429", tenant=tenant) == 0
    count, total = _value(points, "pull_lag", tenant=tenant)
    assert count == 1 and 0 <= total < 2 * DAY_MS / 1000  # age of the newest alert delivered
    assert _value(points, "token_cache_misses", tenant=tenant) == 1
    assert _value(points, "token_cache_hits", tenant=tenant) >= 1


def test_uploads_and_dead_letters_record_bytes_and_letters(app_env, reader):
    from shared.deadletters import dead_letter
    from shared.discovery.handler import handle_discovery_message
    from shared.settings import get_settings
    from shared.storage import CONTAINER_DISCOVERY_LOGS, container_client

    data = b"".join(b"2024-05-01 10:00:00,%d,TRAFFIC,end,10.0.0.1,allow,443\n" % n for n in range(200))
    name = f"wiring/{uuid.uuid4().hex}.log"
    container_client(CONTAINER_DISCOVERY_LOGS).upload_blob(name, data, overwrite=True)
    job = {
        "action": "discovery.upload",
        "blob": f"{CONTAINER_DISCOVERY_LOGS}/{name}",
        "source": "PALO_ALTO",
        "stream": "paloalto-hq",
    }
    outcome = handle_discovery_message(json.dumps(job), message_id=uuid.uuid4().hex)
    assert outcome.uploaded[0].outcome == "uploaded"
    source = f"wiring-{uuid.uuid4().hex[:8]}"
    dead_letter(source=source, reason="test", body="{}", message_id="m1")
    dead_letter(source=source, reason="test", body="{}", message_id="m2")

    points = metric_points(reader)
    assert _value(points, "upload_bytes", tenant=get_settings().default_tenant.name) == len(data)
    assert _value(points, "dead_letters", source=source) == 2


def test_function_log_records_carry_invocation_tenant_job_and_correlation(tenant, records):
    from azure.functions.timer import TimerRequest

    from functions import discovery, jobs

    context = LocalContext("alerts_pull_timer", ".")
    _timer().get_user_function()(TimerRequest(past_due=False), context=context)
    pull = [r for r in records.records if r.name.startswith("shared.") and r.levelno >= logging.DEBUG]
    assert pull and all(getattr(r, "invocation_id", None) == context.invocation_id for r in pull)
    api_calls = [r for r in pull if r.name == "shared.mda.client"]
    assert api_calls and all(getattr(r, "tenant", None) == tenant for r in api_calls)
    assert any(r.threadName.startswith("alert-prefetch") for r in api_calls)  # propagated into the pool
    records.records.clear()

    job_id, worker = str(uuid.uuid4()), LocalContext("jobs_worker", ".")
    body = json.dumps({"v": 1, "jobId": job_id, "correlationId": "soar-77"}).encode()
    jobs.jobs_worker(QueueMessage(id="m-1", body=body, dequeue_count=1), context=worker)
    letter = [r for r in records.records if r.name == "shared.deadletters"]
    assert letter and getattr(letter[0], "job_id", None) == job_id
    assert getattr(letter[0], "correlation_id", None) == "soar-77"
    assert getattr(letter[0], "invocation_id", None) == worker.invocation_id
    records.records.clear()

    upload = LocalContext("discovery_upload", ".")
    job = {
        "action": "discovery.upload",
        "blob": f"mcas-discovery-logs/missing/{uuid.uuid4().hex}.log",
        "source": "PALO_ALTO",
        "stream": "paloalto-hq",
        "tenant": tenant,
        "correlationId": "soar-78",
    }
    discovery.discovery_upload(
        QueueMessage(id="m-2", body=json.dumps(job).encode(), dequeue_count=1), context=upload
    )
    letter = [r for r in records.records if r.name == "shared.deadletters"]
    assert letter and getattr(letter[0], "correlation_id", None) == "soar-78"
    assert getattr(letter[0], "invocation_id", None) == upload.invocation_id


def test_token_cache_hits_are_batched_yet_all_counted(reader):
    """A counter add costs more than a cached header, so hits are summed and added at most once a second."""
    from shared.auth.tokens import AccessToken, CachedCredential, SourceInfo

    class Source:
        def fetch(self, *, force_refresh: bool) -> AccessToken:
            return AccessToken("t" * 40, expires_on=time.time() + 3600)

        def info(self) -> SourceInfo:
            return SourceInfo("application", "batched", "tid", "cid", "client secret", "https://login")

    now = [1000.0]
    credential = CachedCredential(Source(), refresh_margin=300, clock=lambda: now[0])
    for _ in range(11):  # one miss, then ten hits: the first is added at once, nine wait
        credential.authorization_header()
    points = metric_points(reader)
    assert _value(points, "token_cache_misses", tenant="batched") == 1
    assert _value(points, "token_cache_hits", tenant="batched") == 1
    now[0] += 1.5
    credential.authorization_header()
    assert _value(metric_points(reader), "token_cache_hits", tenant="batched") == 11 == credential.hits
