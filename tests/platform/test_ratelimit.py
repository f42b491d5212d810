"""The tenant-wide limiter: never more than N claims in any window, across instances sharing a store."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from shared.errors import ConfigurationError
from shared.ratelimit import (
    LocalRateLimiter,
    MemorySlotStore,
    RateLimitWaitTooLong,
    SlotRateLimiter,
    TableSlotStore,
    partition_key,
    window_seconds,
)
from tests.alerts.fakes import FakeClock


def _max_in_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while stamps[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_slot_limiter_admits_n_per_window_and_waits_for_the_oldest_slot():
    clock = FakeClock(1000.0)
    limiter = SlotRateLimiter(
        MemorySlotStore(), "t", 3, 10.0, margin_s=0.5, clock=clock, sleep=clock.sleep, rng=lambda: 0.0
    )
    stamps = []
    for _ in range(10):
        limiter.acquire()
        stamps.append(clock())
    assert stamps[:3] == [1000.0] * 3 and stamps[3] == pytest.approx(1010.5)
    assert _max_in_window(stamps, 10.0) == 3
    # Floor: 10 requests at 3 per window need 3 extra windows; the margin costs 0.5 s each.
    assert clock() - 1000.0 == pytest.approx(3 * 10.5)


def test_budget_is_respected_without_sleeping():
    clock = FakeClock(0.0)
    limiter = SlotRateLimiter(
        MemorySlotStore(), "t", 1, 60.0, clock=clock, sleep=clock.sleep, rng=lambda: 0.0
    )
    limiter.acquire()
    with pytest.raises(RateLimitWaitTooLong) as info:
        limiter.acquire(max_wait=5)
    assert info.value.wait_s > 59 and clock.sleeps == []


def test_penalty_after_a_429_pauses_every_limiter_sharing_the_store():
    clock = FakeClock(0.0)
    store = MemorySlotStore()
    a = SlotRateLimiter(store, "t", 30, 60.0, clock=clock, sleep=clock.sleep, rng=lambda: 0.0)
    b = SlotRateLimiter(store, "t", 30, 60.0, clock=clock, sleep=clock.sleep, rng=lambda: 0.0)
    a.penalize(7.0)
    assert b.acquire() == pytest.approx(7.0)


def test_many_threads_sharing_one_store_never_exceed_the_limit():
    """Four "instances" race for 5 slots per 0.3 s window on the real clock: the ETag-style claims hold."""
    store = MemorySlotStore()
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        limiter = SlotRateLimiter(store, "t", 5, 0.3, margin_s=0.0)
        for _ in range(6):
            limiter.acquire()
            with lock:
                stamps.append(time.time())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 24 and _max_in_window(stamps, 0.3 - 0.01) <= 5


def test_local_limiter():
    clock = FakeClock(0.0)
    limiter = LocalRateLimiter(2, 1.0, margin_s=0.0, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 1.0]


def test_window_setting_and_partition_keys():
    assert window_seconds(None) == 60 and window_seconds("2.5") == 2.5
    for bad in ("0", "-1", "x", "inf", "99999"):
        with pytest.raises(ConfigurationError, match="MCAS_RATE_LIMIT_WINDOW_SECONDS"):
            window_seconds(bad)
    assert (
        partition_key("https://Contoso.us2.portal.cloudappsecurity.com")
        == "contoso.us2.portal.cloudappsecurity.com"
    )
    assert partition_key("https://127.0.0.1:4431") == "127.0.0.1:4431"


def test_table_slots_on_azurite_hold_under_contention(azurite, monkeypatch):
    """Two limiters over the real Table service (ETag updates, insert-if-absent) share one budget."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.create_table_if_not_exists(f"rl{uuid.uuid4().hex[:12]}")
    key = f"k{uuid.uuid4().hex[:8]}"
    stamps: list[float] = []
    lock = threading.Lock()

    class RecordingStore(TableSlotStore):
        """Records the claim time of every claim the Table service accepted: the budget is a property of
        those stored claims, so a thread scheduled late on a busy machine cannot blur it."""

        def claim(self, key: str, slot: Any, used_at: float, owner: str) -> str | None:
            etag = super().claim(key, slot, used_at, owner)
            if etag is not None:
                with lock:
                    stamps.append(used_at)
            return etag

    limiters = [SlotRateLimiter(RecordingStore(table), key, 4, 0.5, margin_s=0.02) for _ in range(2)]

    def worker(limiter: SlotRateLimiter) -> None:
        for _ in range(6):
            limiter.acquire()

    threads = [threading.Thread(target=worker, args=(lim,)) for lim in limiters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 12 and _max_in_window(stamps, 0.5) <= 4
    assert sum(lim.claims for lim in limiters) == 12
    service.delete_table(table.table_name)
