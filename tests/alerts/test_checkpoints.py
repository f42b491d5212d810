"""Checkpoint arithmetic and the conditional store (ETag semantics in memory; Azurite in integration)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.alerts.checkpoints import (
    Checkpoint,
    CheckpointConflict,
    CheckpointRegression,
    MemoryCheckpointStore,
    _from_entity,
    _to_entity,
    check_monotonic,
)


def test_advance_keeps_ids_at_the_same_millisecond_and_resets_on_a_new_one():
    cp = Checkpoint(100)
    cp = cp.advanced([("a", 100), ("b", 100)])
    assert cp.watermark_ms == 100 and cp.ids_at_watermark == {"a", "b"}
    cp = cp.advanced([("c", 100)])
    assert cp.ids_at_watermark == {"a", "b", "c"}
    cp = cp.advanced([("d", 150), ("e", 170), ("f", 170)])
    assert cp.watermark_ms == 170 and cp.ids_at_watermark == {"e", "f"} and cp.delivered_total == 6
    assert (
        cp.covers("zzz", 169) and cp.covers("e", 170) and not cp.covers("g", 170) and not cp.covers("h", 171)
    )


def test_advance_never_moves_back_and_regression_is_refused():
    cp = Checkpoint(500, frozenset({"x"}))
    assert cp.advanced([("old", 10)]).watermark_ms == 500
    with pytest.raises(CheckpointRegression):
        check_monotonic(cp, Checkpoint(499))


@settings(max_examples=60, deadline=None)
@given(
    stamps=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=300),
    page=st.integers(min_value=1, max_value=40),
)
def test_paging_any_sorted_stream_delivers_each_alert_once(stamps, page):
    """Whatever the page size and however many alerts share a ms, pages built the way the engine queries
    (date >= watermark, minus ids at the watermark) deliver every alert once and the watermark only grows."""
    alerts = sorted((ts, f"id{i:04d}") for i, ts in enumerate(stamps))
    cp, delivered, marks = Checkpoint(0), [], []
    for _ in range(len(alerts) + 2):
        batch = [(i, ts) for ts, i in alerts if not cp.covers(i, ts)][:page]
        if not batch:
            break
        delivered += [i for i, _ in batch]
        new = cp.advanced(batch)
        check_monotonic(cp, new)
        cp = new
        marks.append(cp.watermark_ms)
    assert sorted(delivered) == sorted(i for _, i in alerts) and len(delivered) == len(set(delivered))
    assert marks == sorted(marks)


def test_memory_store_etag_conflicts():
    store = MemoryCheckpointStore()
    saved = store.save("alerts", "t", Checkpoint(1))
    with pytest.raises(CheckpointConflict):
        store.save("alerts", "t", Checkpoint(1))  # insert when one exists
    newer = store.save("alerts", "t", saved.advanced([("a", 5)]))
    with pytest.raises(CheckpointConflict):
        store.save("alerts", "t", saved.advanced([("b", 6)]))  # stale ETag
    loaded = store.load("alerts", "t")
    assert loaded == newer and loaded is not None and loaded.etag == newer.etag


def test_entity_round_trip_with_many_ids():
    """Thousands of ids at one ms exceed one Table string property; they are split and joined again."""
    ids = frozenset(f"{i:024x}" for i in range(5000))
    cp = Checkpoint(
        1_767_225_600_123, ids, lease_owner="run", lease_until=12.5, delivered_total=7, pages_total=2
    )
    entity = _to_entity("alerts", "contoso", cp)
    assert entity["ids_chunks"] > 1 and all(
        len(v) <= 30_000 for k, v in entity.items() if k.startswith("ids_") and isinstance(v, str)
    )
    assert _from_entity(entity, "e") == cp
