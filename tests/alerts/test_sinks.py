"""The sinks: queue messages and oversize blobs, deterministic blob names, signed webhooks with stable ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from shared.alerts.model import normalize
from shared.alerts.sinks import (
    QUEUE_MESSAGE_MAX_BYTES,
    AlertBatch,
    BlobSink,
    QueueSink,
    SinkError,
    WebhookSink,
)
from shared.standard_webhooks import verify
from tests.alerts.fakes import T0_MS, FakeClock, make_store
from tests.outbound.fakes import ScriptedPoster, public


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
