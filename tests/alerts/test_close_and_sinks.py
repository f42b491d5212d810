"""Closing alerts (never a blind retry), the sinks (signing, stable ids, oversize), jobs and settings."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import requests

from shared.alerts.adhoc import parse_job
from shared.alerts.config import AlertConfig, parse_sinks, validate_webhook_url
from shared.alerts.model import normalize
from shared.alerts.sinks import (
    QUEUE_MESSAGE_MAX_BYTES,
    AlertBatch,
    BlobSink,
    QueueSink,
    SinkError,
    WebhookSink,
)
from shared.errors import ConfigurationError, ValidationError
from shared.mda.errors import BadRequestError, ServerError
from shared.settings import Settings
from shared.standard_webhooks import verify
from shared.timeparse import setting_seconds
from tests.alerts.fakes import T0_MS, FakeClock, StoreSession, make_api, make_store, response
from tests.outbound.fakes import ScriptedPoster, public


def _open_alerts(count: int):
    clock = FakeClock()
    store, factory = make_store(clock)
    alerts = factory.at(count, T0_MS)
    for a in alerts:
        a["resolutionStatusValue"] = 0
    store.add(alerts)
    session = StoreSession(store)
    return store, session, make_api(session, clock), [a["_id"] for a in alerts]


def _close_calls(session: StoreSession) -> list[Any]:
    return [body for method, path, body in session.calls if "close_" in path]


def test_close_chunks_by_100_and_sends_the_documented_body():
    _store, session, api, ids = _open_alerts(250)
    result = api.close(
        "false_positive",
        ids,
        reason_id=1,
        comment="noise",
        send_feedback=True,
        feedback_text="too many",
        allow_contact=True,
        contact_email="soc@contoso.com",
    )
    calls = _close_calls(session)
    assert [len(c["filters"]["id"]["eq"]) for c in calls] == [100, 100, 50]
    assert {k: v for k, v in calls[0].items() if k != "filters"} == {
        "reasonId": 1,
        "comment": "noise",
        "sendFeedback": True,
        "feedbackText": "too many",
        "allowContact": True,
        "contactEmail": "soc@contoso.com",
    }
    assert result.closed == 250 and result.not_found == []


def test_ambiguous_failure_rechecks_and_retries_only_alerts_still_open():
    """The server applied the close but the answer was lost (502): re-read, nothing left open, no re-POST."""
    store, session, api, ids = _open_alerts(5)

    def applied_then_lost(method, path, body):
        store.close("benign", dict(body), handled_by="x")
        return response(502, {"detail": "bad gateway"})

    session.inject = [applied_then_lost]
    result = api.close("benign", ids, reason_id=2)
    assert len(_close_calls(session)) == 1  # never re-sent
    assert result.rechecks == 1 and sorted(result.confirmed_by_recheck) == sorted(ids) and result.closed == 0


def test_ambiguous_failure_retries_only_the_open_ones():
    store, session, api, ids = _open_alerts(4)
    store.close("benign", {"filters": {"id": {"eq": ids[:1]}}}, handled_by="other analyst")
    session.inject = [requests.ReadTimeout("lost")]
    result = api.close("benign", ids, reason_id=2)
    calls = _close_calls(session)
    assert len(calls) == 2 and calls[1]["filters"]["id"]["eq"] == ids[1:]
    assert result.closed == 3 and result.confirmed_by_recheck == ids[:1]


def test_after_an_ambiguous_failure_alerts_closed_otherwise_are_still_closed_as_asked():
    """Two alerts were closed earlier as false positives; asked to close them as benign, the outcome must not
    depend on whether the first call failed: re-read, they are not benign yet, so they are sent again."""
    store, session, api, ids = _open_alerts(4)
    store.close("false_positive", {"filters": {"id": {"eq": ids[:2]}}}, handled_by="earlier")
    session.inject = [response(503, {"detail": "unavailable"})]  # refused before it was processed
    session.inject_prefix = "/api/v1/alerts/close_"
    result = api.close("benign", ids, reason_id=2)
    calls = _close_calls(session)
    assert len(calls) == 2 and calls[1]["filters"]["id"]["eq"] == ids  # all four again, none skipped
    assert result.confirmed_by_recheck == [] and result.closed == 4
    assert {store.get(i)["resolutionStatusValue"] for i in ids} == {4}


def test_a_redelivered_close_job_skips_only_alerts_already_in_the_wanted_state():
    from shared.jobs.actions import ActionContext, _close
    from shared.mda.client import RequestStats

    store, session, api, ids = _open_alerts(3)
    store.close("benign", {"filters": {"id": {"eq": ids[:1]}}}, handled_by="first attempt")
    store.close("true_positive", {"filters": {"id": {"eq": ids[1:2]}}}, handled_by="someone else")
    context = ActionContext(
        profile=cast(Any, None), user_assertion=None, budget_s=60, redelivered=True, correlation_id="c"
    )
    params = {"kind": "benign", "ids": ids, "reasonId": 2}
    result = _close(api, params, context, api.client.deadline_in(60), RequestStats())
    assert result["alreadyClosed"] == ids[:1] and result["closed_benign"] == 2
    assert _close_calls(session)[-1]["filters"]["id"]["eq"] == ids[1:]
    assert {store.get(i)["resolutionStatusValue"] for i in ids} == {4}


def test_persistent_ambiguity_gives_up_after_the_recheck_budget():
    _store, session, api, ids = _open_alerts(2)
    session.inject = [response(500, {}), response(500, {}), response(500, {})]
    session.inject_prefix = "/api/v1/alerts/close_"
    with pytest.raises(ServerError):
        api.close("true_positive", ids, max_rechecks=2)
    assert len(_close_calls(session)) == 3


def test_refusals_are_not_rechecked_and_arguments_are_validated():
    _store, session, api, ids = _open_alerts(1)
    session.inject = [response(400, {"detail": "Invalid reasonId"})]
    with pytest.raises(BadRequestError):
        api.close("benign", ids, reason_id=4)
    assert len(session.calls) == 1
    for kwargs in ({"reason_id": 0}, {"reason_id": 1, "kind": "benign"}):
        with pytest.raises(ValidationError):
            api.close(kwargs.pop("kind", "true_positive"), ids, **kwargs)
    with pytest.raises(ValidationError, match="24 hex"):
        api.close("benign", ["nope"])


def test_get_and_mark_read():
    store, _session, api, ids = _open_alerts(1)
    assert api.get_alert(ids[0])["_id"] == ids[0]
    api.mark_read(ids[0])
    assert store.get(ids[0])["statusValue"] == 1
    api.mark_unread(ids[0])
    assert store.get(ids[0])["statusValue"] == 0


def _batch(count: int = 3, *, big: bool = False) -> AlertBatch:
    clock = FakeClock()
    _, factory = make_store(clock)
    raws = factory.at(count, T0_MS)
    if big:
        raws[0]["description"] = "x" * (QUEUE_MESSAGE_MAX_BYTES + 10)
    return AlertBatch.build("contoso", "alerts", "k" * 32, [normalize(r, tenant="contoso") for r in raws])


class _FakeQueue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_message(self, text: str) -> None:
        self.sent.append(text)


class _FakeContainer:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def upload_blob(self, name: str, data: bytes, **kwargs: Any) -> None:
        assert kwargs.get("overwrite") is True
        self.blobs[name] = data


def test_queue_sink_one_message_per_alert_and_oversize_goes_to_a_blob(monkeypatch):
    from shared.alerts import sinks

    monkeypatch.setattr(sinks, "_content_settings", lambda ct: ct)
    queue, payloads = _FakeQueue(), _FakeContainer()
    batch = _batch(4, big=True)
    QueueSink(queue, payloads).deliver(batch, deadline=None)
    messages = [json.loads(m) for m in queue.sent]
    assert sorted(m["id"] for m in messages) == sorted(a["id"] for a in batch.alerts)
    assert all(len(m.encode()) <= QUEUE_MESSAGE_MAX_BYTES for m in queue.sent)
    ref = next(m for m in messages if "payload_ref" in m)
    assert json.loads(payloads.blobs[ref["payload_ref"]["blob"]])["id"] == ref["id"]


def test_blob_sink_names_are_deterministic_per_page(monkeypatch):
    from shared.alerts import sinks

    monkeypatch.setattr(sinks, "_content_settings", lambda ct: ct)
    container = _FakeContainer()
    batch = _batch(3)
    BlobSink(container).deliver(batch, deadline=None)
    BlobSink(container).deliver(batch, deadline=None)
    assert list(container.blobs) == [f"contoso/alerts/2026/01/01/{T0_MS}-{'k' * 32}.ndjson"]
    lines = container.blobs[BlobSink.blob_name(batch)].decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [a["id"] for a in batch.alerts]


def _webhook(statuses: list[Any], key: bytes = b"k" * 32, keys: list[bytes] | None = None):
    clock = FakeClock(1_767_225_600.0)
    session = ScriptedPoster(statuses)
    calls: list[bool] = []

    def key_reader(refresh: bool) -> bytes:
        calls.append(refresh)
        return (keys or [key])[min(len(calls) - 1, len(keys or [key]) - 1)] if refresh else key

    sink = WebhookSink(
        "https://soar.example/hook",
        key_reader,
        poster=session,
        resolve=public,
        clock=clock,
        sleep=clock.sleep,
        rng=lambda: 0.5,
        now=clock,
    )
    return sink, session, clock, calls


def test_webhook_is_signed_per_standard_webhooks_and_retried_with_a_stable_id():
    key = b"s" * 32
    sink, session, clock, _ = _webhook([503, requests.ConnectionError("reset"), 429, 200], key=key)
    batch = _batch(3)
    sink.deliver(batch, deadline=None)
    ids = {r["headers"]["webhook-id"] for r in session.requests}
    assert ids == {f"msg_{batch.key}"} and len(session.requests) == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]  # backoff (jittered), backoff, Retry-After
    last = session.requests[-1]
    verify(last["data"], last["headers"], [key], now=clock)
    body = json.loads(last["data"])
    assert body["type"] == "mcas.alerts.page" and body["data"]["count"] == 3
    assert [a["id"] for a in body["data"]["alerts"]] == [a["id"] for a in batch.alerts]
    assert body["data"]["alerts"][0]["raw"]["_id"] == batch.alerts[0]["id"]


def test_webhook_refusal_or_exhausted_retries_raise_sink_error():
    sink, _, _, _ = _webhook([400])
    with pytest.raises(SinkError, match="HTTP 400"):
        sink.deliver(_batch(1), deadline=None)
    sink, _, _, _ = _webhook([500] * 5)
    with pytest.raises(SinkError, match="after 5 attempts"):
        sink.deliver(_batch(1), deadline=None)
    sink, _session, clock, _ = _webhook([500, 200])
    with pytest.raises(SinkError, match="budget"):
        sink.deliver(_batch(1), deadline=clock() + 0.1)


def test_webhook_rereads_the_secret_once_after_a_401():
    sink, session, clock, calls = _webhook([401, 200], keys=[b"n" * 32])
    sink.deliver(_batch(1), deadline=None)
    assert calls == [False, True]
    verify(session.requests[-1]["data"], session.requests[-1]["headers"], [b"n" * 32], now=clock)


def _settings(**extra: str) -> Settings:
    env = {
        "MCAS_API_URL": "https://contoso.us2.portal.cloudappsecurity.com",
        "MCAS_TENANT_ID": "tid",
        "MCAS_CLIENT_ID": "cid",
        "MCAS_KEY_VAULT_URL": "https://kv.vault.azure.net",
        **extra,
    }
    return Settings.from_env(env)


def test_alert_settings_defaults_and_validation():
    config = AlertConfig.from_settings(_settings())
    assert (config.sinks, config.first_fetch_lookback_s, config.max_pages_per_run) == ((), 86400, 100)
    assert (config.time_budget_s, config.settle_s, config.lease_s) == (480, 60, 120)
    assert parse_sinks("queue, blob,queue") == ("queue", "blob") and parse_sinks("none") == ()
    assert setting_seconds("90m", name="x") == 5400 and setting_seconds("7d", name="x") == 604800
    with pytest.raises(ConfigurationError, match="MCAS_ALERT_SINKS"):
        AlertConfig.from_settings(_settings(MCAS_ALERT_SINKS="queue,kafka"))
    with pytest.raises(ConfigurationError, match="MCAS_ALERT_WEBHOOK_URL"):
        AlertConfig.from_settings(_settings(MCAS_ALERT_SINKS="webhook"))
    with pytest.raises(ConfigurationError, match="https"):
        validate_webhook_url("http://soar.example/hook", allow_loopback=True)
    with pytest.raises(ConfigurationError, match="loopback"):
        validate_webhook_url("https://127.0.0.1:8443/hook", allow_loopback=False)
    assert validate_webhook_url("https://127.0.0.1:8443/hook", allow_loopback=True)
    with pytest.raises(ConfigurationError, match="MCAS_FIRST_FETCH_LOOKBACK"):
        AlertConfig.from_settings(_settings(MCAS_FIRST_FETCH_LOOKBACK="yesterday"))
    with pytest.raises(ConfigurationError, match="MCAS_ALERTS_MAX_PAGES_PER_RUN"):
        AlertConfig.from_settings(_settings(MCAS_ALERTS_MAX_PAGES_PER_RUN="0"))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("not json", "not JSON"),
        ("[1]", "object"),
        ('{"bogus": 1}', "unknown keys"),
        ('{"since": "2026-01-01", "lookback": "1h"}', "not both"),
        ('{"since": "last week"}', "ISO-8601"),
        ('{"lookback": "1h", "until": 1}', "before since"),
        ('{"filters": {"date": {"gte": 1}}}', "since/until"),
        ('{"filters": {"severity": 2}}', "operators"),
        ('{"job_id": "../x"}', "job_id"),
        ('{"tenant": 3}', "tenant"),
    ],
)
def test_invalid_jobs(body, problem):
    with pytest.raises(ValidationError, match=problem):
        parse_job(body, now_ms=T0_MS, default_job_id="m1")


def test_valid_job_defaults():
    job = parse_job(
        '{"lookback": "2h", "filters": {"severity": {"eq": [2]}}}', now_ms=T0_MS, default_job_id="m1"
    )
    assert (job.job_id, job.start_ms, job.end_ms) == ("m1", T0_MS - 7_200_000, T0_MS)
    assert parse_job(job.to_message(), now_ms=0, default_job_id="x") == job
