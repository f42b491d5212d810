"""Idempotency claims: one winner per key and body within the TTL, tested with threads."""

from __future__ import annotations

import threading

from shared.jobs.claims import IdempotencyStore
from tests.jobs.fakes import FakeTable

DAY = 24 * 3600


def test_same_key_same_job_within_ttl_then_a_new_one():
    store = IdempotencyStore(FakeTable(), ttl_s=DAY)
    first = store.claim(scope="s", key="k", fingerprint="f", job_id="j1", now=0)
    again = store.claim(scope="s", key="k", fingerprint="f", job_id="j2", now=DAY - 1)
    other_body = store.claim(scope="s", key="k", fingerprint="g", job_id="j3", now=10)
    other_caller = store.claim(scope="t", key="k", fingerprint="f", job_id="j4", now=10)
    expired = store.claim(scope="s", key="k", fingerprint="f", job_id="j5", now=DAY + 1)
    assert (first.new, first.job_id) == (True, "j1")
    assert (again.new, again.job_id, again.same_request) == (False, "j1", True)
    assert (other_body.new, other_body.same_request) == (False, False)
    assert (other_caller.new, other_caller.job_id) == (True, "j4")
    assert (expired.new, expired.job_id) == (True, "j5")


def test_concurrent_claims_have_exactly_one_winner():
    store = IdempotencyStore(FakeTable(), ttl_s=DAY)
    results = []
    barrier = threading.Barrier(16)

    def claim(n: int) -> None:
        barrier.wait()
        results.append(store.claim(scope="s", key="race", fingerprint="f", job_id=f"j{n}", now=5))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.new for r in results) == 1
    assert len({r.job_id for r in results}) == 1


def test_release_only_frees_our_own_claim():
    table = FakeTable()
    store = IdempotencyStore(table, ttl_s=DAY)
    store.claim(scope="s", key="k", fingerprint="f", job_id="j1", now=0)
    store.release(scope="s", key="k", job_id="other")
    assert not store.claim(scope="s", key="k", fingerprint="f", job_id="j2", now=1).new
    store.release(scope="s", key="k", job_id="j1")
    assert store.claim(scope="s", key="k", fingerprint="f", job_id="j3", now=2).new
