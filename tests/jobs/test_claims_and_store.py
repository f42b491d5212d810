"""Idempotency claims, the job store's ETag loop and sealing: race-safe by design, tested with threads."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from shared.errors import ConfigurationError
from shared.jobs.claims import IdempotencyStore
from shared.jobs.sealing import SealError, key_from_secret, seal, unseal
from shared.jobs.store import INLINE_RESULT_CHARS, JobRecord, JobStore
from tests.jobs.fakes import FakeBlobs, FakeTable

DAY = 24 * 3600


def record(job_id: str = "00000000-0000-4000-8000-000000000001") -> JobRecord:
    return JobRecord(
        job_id=job_id,
        action="alerts.close",
        spec={"action": "alerts.close", "params": {}},
        status="queued",
        correlation_id="c-1",
        context="application",
        requested_by={"type": "signature"},
        created_at="t0",
        updated_at="t0",
    )


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


def test_update_is_etag_safe_under_contention():
    store = JobStore(FakeTable())
    store.create(record())
    barrier = threading.Barrier(8)

    def bump() -> None:
        barrier.wait()
        for _ in range(5):
            store.update(record().job_id, lambda j: replace(j, attempts=j.attempts + 1))

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    job = store.get(record().job_id)
    assert job is not None and job.attempts == 40


def test_large_results_go_to_a_blob_and_come_back():
    blobs = FakeBlobs()
    store = JobStore(FakeTable(), blobs)
    store.create(record())
    big = {"alerts": ["x" * 100] * (INLINE_RESULT_CHARS // 50)}
    store.update(record().job_id, lambda j: replace(j, result=big, status="succeeded"))
    job = store.get(record().job_id)
    assert job is not None and job.result == big and list(blobs.data) == [f"{record().job_id}.json"]


def test_sealed_assertion_opens_only_for_its_job_and_key():
    key = key_from_secret("c" * 43 + "=")  # 32 bytes of base64
    sealed = seal(key, "job-1", "eyJ.user.assertion")
    assert "assertion" not in sealed and unseal(key, "job-1", sealed) == "eyJ.user.assertion"
    for job, k, value in (
        ("job-2", key, sealed),
        ("job-1", b"d" * 32, sealed),
        ("job-1", key, sealed[:-4] + "AAAA"),
    ):
        with pytest.raises(SealError):
            unseal(k, job, value)
    with pytest.raises(ConfigurationError):
        key_from_secret("dG9vIHNob3J0")
