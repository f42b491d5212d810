"""The job store's ETag loop and its large results: race-safe by design, tested with threads."""

from __future__ import annotations

import threading
from dataclasses import replace

from shared.jobs.store import INLINE_RESULT_CHARS, JobStore
from tests.jobs.builders import job_record
from tests.jobs.fakes import FakeBlobs, FakeTable


def test_update_is_etag_safe_under_contention():
    store = JobStore(FakeTable())
    store.create(job_record())
    barrier = threading.Barrier(8)

    def bump() -> None:
        barrier.wait()
        for _ in range(5):
            store.update(job_record().job_id, lambda j: replace(j, attempts=j.attempts + 1))

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    job = store.get(job_record().job_id)
    assert job is not None and job.attempts == 40


def test_large_results_go_to_a_blob_and_come_back():
    blobs = FakeBlobs()
    store = JobStore(FakeTable(), blobs)
    store.create(job_record())
    big = {"alerts": ["x" * 100] * (INLINE_RESULT_CHARS // 50)}
    store.update(job_record().job_id, lambda j: replace(j, result=big, status="succeeded"))
    job = store.get(job_record().job_id)
    assert job is not None and job.result == big and list(blobs.data) == [f"{job_record().job_id}.json"]
