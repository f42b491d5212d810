"""The one-item probe against the simulator's alert store in process, and the fan-out message contract."""

from __future__ import annotations

import json

import pytest

from shared.alerts.checkpoints import Checkpoint
from shared.alerts.fanout import TenantMessage, dedupe_key, slot_of
from shared.alerts.probe import probe_mda
from shared.errors import ValidationError
from tests.alerts.fakes import FakeClock, StoreSession, make_api, make_store


def _stored(count: int, clock: FakeClock, *, at_ms: int | None = None) -> tuple[StoreSession, list[dict]]:
    store, factory = make_store(clock)
    now_ms = int(clock() * 1000)
    alerts = (
        factory.at(count, at_ms)
        if at_ms is not None
        else factory.batch(count, start_ms=now_ms - 3_600_000, end_ms=now_ms - 1000, burst_share=0.3)
    )
    store.add(alerts)
    return StoreSession(store), sorted(alerts, key=lambda a: (a["timestamp"], a["_id"]))


@pytest.mark.parametrize("ignore_neq", [False, True])
def test_probe_names_the_oldest_undelivered_alert_in_one_one_item_request(ignore_neq):
    clock = FakeClock()
    session, alerts = _stored(50, clock)
    session.ignore_neq = ignore_neq
    api = make_api(session, clock)
    first = probe_mda(api, Checkpoint(watermark_ms=0))
    assert (first.has_new, first.oldest_ms) == (True, alerts[0]["timestamp"])
    ((method, path, body),) = session.calls
    assert (method, path, body["limit"], body["sortDirection"]) == ("POST", "/api/v1/alerts/", 1, "asc")

    newest = alerts[-1]
    at_newest = frozenset(a["_id"] for a in alerts if a["timestamp"] == newest["timestamp"])
    done = Checkpoint(watermark_ms=newest["timestamp"], ids_at_watermark=at_newest)
    probe = probe_mda(api, done)
    if ignore_neq:  # the answer is an alert already delivered: inconclusive, so the pull must look
        assert (probe.has_new, probe.oldest_ms) == (True, newest["timestamp"])
    else:
        assert not probe.has_new


def test_probe_of_a_checkpoint_in_the_middle_finds_the_next_alert():
    clock = FakeClock()
    session, alerts = _stored(30, clock)
    api = make_api(session, clock)
    middle = alerts[14]
    same_ms = frozenset(a["_id"] for a in alerts[:15] if a["timestamp"] == middle["timestamp"])
    probe = probe_mda(api, Checkpoint(watermark_ms=middle["timestamp"], ids_at_watermark=same_ms))
    following = next(a for a in alerts[15:] if a["_id"] not in same_ms)
    assert (probe.has_new, probe.oldest_ms) == (True, following["timestamp"])


def test_tenant_messages_round_trip_and_bad_ones_are_refused_with_a_reason():
    message = TenantMessage("acme-1", slot_of(1_700_000_123.4))
    parsed = TenantMessage.parse(message.to_json())
    assert (parsed.tenant, parsed.slot, parsed.kind) == ("acme-1", 1_700_000_100, "probe")
    assert parsed.dedupe == dedupe_key("acme-1", 1_700_000_100) == "acme-1@1700000100"
    follow = TenantMessage.parse(TenantMessage("acme-1", 60, "followup").to_json())
    assert follow.dedupe == "acme-1@60/followup"
    good = json.loads(message.to_json())
    for bad, reason in (
        ("[]", "JSON object"),
        (json.dumps({**good, "v": 2}), "version"),
        (json.dumps({**good, "tenant": "a/b"}), "valid tenant"),
        (json.dumps({**good, "slot_s": "soon"}), "slot_s"),
        (json.dumps({**good, "kind": "pull-everything"}), "kind"),
    ):
        with pytest.raises(ValidationError, match=reason):
            TenantMessage.parse(bad)
