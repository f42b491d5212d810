"""The pull engine against the simulator's alert store in process: no loss, no duplicates, commits per page.

Each test states the invariant it guards; the same scenarios run over HTTPS + Azurite in the integration
tests.
"""

from __future__ import annotations

from shared.alerts.checkpoints import STREAM_SCHEDULED, Checkpoint, MemoryCheckpointStore
from shared.alerts.pull import PullOptions, pull_tenant
from shared.mda.filters import Filter
from tests.alerts.fakes import T0_MS, FakeClock, RecordingSink, StoreSession, make_api, make_store, profile

DAY_MS = 86_400_000


def _run(api, store, sinks, clock, *, options=None, budget=3600.0, on_page=None, run_id=None):
    return pull_tenant(
        profile(),
        options or PullOptions(start_ms=T0_MS, max_pages=1000),
        api=api,
        store=store,
        sinks=sinks,
        deadline=clock() + budget,
        clock=clock,
        wall=clock,
        sleep=clock.sleep,
        on_page=on_page,
        run_id=run_id,
    )


def _world(count=0, **session_kwargs):
    clock = FakeClock()
    alerts, factory = make_store(clock)
    if count:
        alerts.add(factory.batch(count, start_ms=T0_MS, end_ms=T0_MS + DAY_MS, burst_share=0.4))
    session = StoreSession(alerts, **session_kwargs)
    return clock, alerts, factory, session, make_api(session, clock)


def test_first_run_delivers_every_alert_once_in_time_order():
    """Bursts of up to 50 alerts per millisecond straddle page boundaries; none is lost or repeated."""
    clock, alerts, _, _, api = _world(1234)
    store, sink = MemoryCheckpointStore(), RecordingSink()
    result = _run(api, store, [sink], clock)
    expected = [a["_id"] for a in alerts.all()]
    assert sorted(sink.ids) == sorted(expected) and len(sink.ids) == len(set(sink.ids))
    stamps = [a["timestamp_ms"] for b in sink.batches for a in b.alerts]
    assert stamps == sorted(stamps)
    assert result.alerts == 1234 and result.pages == 13 and result.stopped == "caught_up" and result.ok
    cp = store.load(STREAM_SCHEDULED, "contoso")
    assert cp is not None and cp.watermark_ms == max(stamps) and cp.lease_owner is None


def test_hundreds_of_alerts_in_one_millisecond():
    """250 alerts share one ms (over two pages): `id.neq` of the ids at the watermark pages through them."""
    clock, alerts, factory, _session, api = _world()
    alerts.add(factory.at(3, T0_MS + 10))
    alerts.add(factory.at(250, T0_MS + 20))
    alerts.add(factory.at(3, T0_MS + 30))
    sink = RecordingSink()
    result = _run(api, MemoryCheckpointStore(), [sink], clock)
    assert len(sink.ids) == 256 == len(set(sink.ids)) and result.pages == 3
    assert all(len(b.alerts) == 100 for b in sink.batches[:2])


def test_server_ignoring_id_neq_falls_back_to_skip_within_the_millisecond():
    """If the service ignored `id.neq`, pages of pure repeats must not stall or duplicate the pull."""
    clock, alerts, factory, _session, api = _world(ignore_neq=True)
    alerts.add(factory.at(250, T0_MS + 20))
    alerts.add(factory.at(5, T0_MS + 40))
    sink = RecordingSink()
    result = _run(api, MemoryCheckpointStore(), [sink], clock)
    assert len(sink.ids) == 255 == len(set(sink.ids)) and result.ok


def test_alerts_arriving_mid_pull_are_delivered_once():
    """Alerts created while a pull runs (newer than the watermark) come in this run or the next, once."""
    clock, alerts, factory, _, api = _world(450)
    added: list[str] = []

    def arrive(batch, cp):
        if len(added) < 40:
            new = factory.at(20, int(clock() * 1000))
            alerts.add(new)
            added.extend(a["_id"] for a in new)

    store, sink = MemoryCheckpointStore(), RecordingSink()
    _run(api, store, [sink], clock, on_page=arrive)
    _run(api, store, [sink], clock)
    assert len(added) == 40
    assert sorted(sink.ids) == sorted(a["_id"] for a in alerts.all()) and len(sink.ids) == len(set(sink.ids))


def test_sink_failure_leaves_the_page_uncommitted_and_the_next_run_redelivers_only_it():
    """The checkpoint advances only after every sink acknowledged; a refused page comes again, same key."""
    clock, _alerts, _, _, api = _world(500)
    store = MemoryCheckpointStore()
    first, second = RecordingSink("blob", 10), RecordingSink("queue", 90)
    second.fail_on = {3}
    failed = _run(api, store, [first, second], clock)
    assert failed.stopped == "error" and "queue sink" in (failed.error or "") and failed.pages == 2
    cp = store.load(STREAM_SCHEDULED, "contoso")
    assert cp is not None and cp.lease_owner is None  # released: the next run need not wait
    assert cp.watermark_ms == second.batches[-1].last_ms
    again = _run(api, store, [first, second], clock)
    assert again.ok and len(second.ids) == 500 == len(set(second.ids))
    # The blob sink saw page 3 twice, under the same deterministic key: an overwrite, not a duplicate.
    keys = [b.key for b in first.batches]
    assert len(keys) == 6 and keys[2] == keys[3] and len(set(first.ids)) == 500


def test_overlapping_run_skips_while_another_holds_the_lease():
    """A second run never delivers while the first holds a live lease on the checkpoint."""
    clock, _, _, _, api = _world(300)
    store, sink = MemoryCheckpointStore(), RecordingSink()
    store.save(STREAM_SCHEDULED, "contoso", Checkpoint(T0_MS).leased("other-run", clock() + 60))
    result = _run(api, store, [sink], clock)
    assert result.stopped == "busy" and sink.batches == []
    clock.now += 61  # the other run died: its lease expires
    assert _run(api, store, [sink], clock).alerts == 300


def test_waiting_for_a_lease_within_the_budget():
    clock, _, _, _, api = _world(50)
    store, sink = MemoryCheckpointStore(), RecordingSink()
    store.save(STREAM_SCHEDULED, "contoso", Checkpoint(T0_MS).leased("other-run", clock() + 5))
    options = PullOptions(start_ms=T0_MS, wait_for_lease=True)
    result = _run(api, store, [sink], clock, options=options)
    assert result.alerts == 50 and 5 <= sum(clock.sleeps) <= 5.6 and max(clock.sleeps) <= 0.5


def test_run_whose_checkpoint_was_taken_over_stops_before_delivering_again():
    """If another run takes the checkpoint (our lease expired), our next conditional write fails first."""
    clock, _, _, _, api = _world(400)
    store, sink = MemoryCheckpointStore(), RecordingSink()

    def steal(batch, cp):
        if len(sink.batches) == 1:
            clock.now += 121  # we stall past our 120 s lease; another run legitimately takes over
            current = store.load(STREAM_SCHEDULED, "contoso")
            assert current is not None
            store.save(STREAM_SCHEDULED, "contoso", current.leased("thief", clock() + 600))

    result = _run(api, store, [sink], clock, on_page=steal)
    assert result.stopped == "lease_lost" and len(sink.batches) == 1 and result.error is None
    cp = store.load(STREAM_SCHEDULED, "contoso")
    assert cp is not None and cp.lease_owner == "thief"  # never overwritten by the loser


def test_time_budget_stops_cleanly_and_the_next_run_continues():
    clock, alerts, _, session, api = _world(1000)

    def slow(method, path):
        clock.now += 10  # every API call takes 10 s

    session.after_call = slow
    store, sink = MemoryCheckpointStore(), RecordingSink()
    result = _run(api, store, [sink], clock, budget=60)
    assert result.stopped == "budget" and 0 < result.pages < 10 and result.ok
    cp = store.load(STREAM_SCHEDULED, "contoso")
    assert cp is not None and cp.lease_owner is None and cp.delivered_total == result.alerts
    session.after_call = None
    _run(api, store, [sink], clock)
    assert sorted(sink.ids) == sorted(a["_id"] for a in alerts.all())


def test_page_cap_limits_catch_up_per_run():
    clock, _, _, _, api = _world(1000)
    store, sink = MemoryCheckpointStore(), RecordingSink()
    options = PullOptions(start_ms=T0_MS, max_pages=3)
    result = _run(api, store, [sink], clock, options=options)
    assert (result.pages, result.stopped) == (3, "page_cap")
    assert _run(api, store, [sink], clock, options=options).pages == 3
    assert len(sink.ids) == len(set(sink.ids)) >= 600


def test_window_end_and_filters_bound_the_pull():
    """`end_ms` (settle delay / job `until`) and extra filters bound the window."""
    clock, alerts, _, _, api = _world(600)
    end = T0_MS + DAY_MS // 2
    options = PullOptions(start_ms=T0_MS, end_ms=end, filters=Filter().eq("severity", 2))
    sink = RecordingSink()
    result = _run(api, MemoryCheckpointStore(), [sink], clock, options=options)
    expected = {a["_id"] for a in alerts.all() if a["timestamp"] <= end and a["severityValue"] == 2}
    assert set(sink.ids) == expected and result.ok


def test_checkpoint_is_monotonic_over_many_runs():
    """Across runs of random sizes the committed watermark never decreases."""
    clock, alerts, factory, _, api = _world(700)
    store, sink = MemoryCheckpointStore(), RecordingSink()
    marks: list[int] = []
    for size in (1, 2, 1, 3, 5, 1):
        _run(api, store, [sink], clock, options=PullOptions(start_ms=T0_MS, max_pages=size))
        alerts.add(factory.at(7, int(clock() * 1000) - 1))
        cp = store.load(STREAM_SCHEDULED, "contoso")
        assert cp is not None
        marks.append(cp.watermark_ms)
    assert marks == sorted(marks)
    assert len(sink.ids) == len(set(sink.ids))


def test_malformed_alert_is_skipped_not_fatal():
    clock, alerts, factory, _, api = _world()
    good = factory.at(3, T0_MS + 5)
    bad = dict(factory.at(1, T0_MS + 6)[0])
    bad["_id"] = ""
    alerts.add([*good, bad])
    sink = RecordingSink()
    result = _run(api, MemoryCheckpointStore(), [sink], clock)
    assert len(sink.ids) == 3 and result.skipped_malformed == 1 and result.ok
