"""The worker's state machine against fakes: what is recorded, retried, dead-lettered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.errors import TransientError
from shared.jobs import worker
from shared.jobs.store import JobStore
from shared.mda.errors import BadRequestError
from tests.jobs.builders import job_record
from tests.jobs.fakes import FakeTable

JOB_ID = "00000000-0000-4000-8000-00000000abcd"
MESSAGE = json.dumps({"v": 1, "jobId": JOB_ID, "correlationId": "corr-1", "action": "alerts.close"})


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> JobStore:
    letters: list[dict[str, Any]] = []

    def dead_letter(**kwargs: Any) -> Any:
        letters.append(kwargs)
        return type("Letter", (), {"id": f"letter{len(letters)}"})()

    monkeypatch.setattr("shared.deadletters.dead_letter", dead_letter)
    monkeypatch.setattr(worker, "_send_callback", lambda jobs, job: job)
    jobs = JobStore(FakeTable())
    jobs.letters = letters  # type: ignore[attr-defined]
    jobs.create(
        job_record(
            JOB_ID,
            correlation_id="corr-1",
            context="user",
            requested_by={"type": "user"},
            created_at="t",
            updated_at="t",
            sealed_assertion="v1.sealed",
        )
    )
    return jobs


def test_success_records_the_result_and_erases_the_assertion(store, monkeypatch):
    monkeypatch.setattr(worker, "_run", lambda job, redelivered: {"closed_benign": 2})
    job = worker.process_message(MESSAGE, message_id="m1", dequeue_count=1, store=store)
    assert job is not None and job.status == "succeeded" and job.attempts == 1
    assert job.result == {"closed_benign": 2, "correlationId": "corr-1"}
    assert job.sealed_assertion is None and job.finished_at


def test_duplicate_delivery_of_a_finished_job_does_not_run_it_again(store, monkeypatch):
    runs: list[bool] = []

    def run(job: Any, redelivered: bool) -> dict[str, Any]:
        runs.append(redelivered)
        return {}

    monkeypatch.setattr(worker, "_run", run)
    worker.process_message(MESSAGE, store=store)
    worker.process_message(MESSAGE, dequeue_count=2, store=store)
    assert runs == [False]


def test_terminal_error_fails_the_job_and_acknowledges(store, monkeypatch):
    def run(job: Any, redelivered: bool) -> Any:
        raise BadRequestError("Invalid reasonId", status=400, correlation_id="api-corr")

    monkeypatch.setattr(worker, "_run", run)
    job = worker.process_message(MESSAGE, store=store)
    assert job is not None and job.status == "failed"
    assert job.error == {
        "code": "bad_request",
        "message": "HTTP 400: Invalid reasonId (correlation id api-corr)",
        "status": 400,
        "apiCorrelationId": "api-corr",
    }


def test_transient_error_requeues_raises_then_poison_dead_letters(store, monkeypatch):
    seen: list[bool] = []

    def run(job: Any, redelivered: bool) -> Any:
        seen.append(redelivered)
        raise TransientError("MDA answered 503")

    monkeypatch.setattr(worker, "_run", run)
    for attempt in (1, 2):
        with pytest.raises(TransientError):
            worker.process_message(MESSAGE, dequeue_count=attempt, store=store)
        job = store.get(JOB_ID)
        assert job is not None and job.status == "queued" and job.error and job.error["retrying"]
    assert seen == [False, True]  # the second delivery knows an earlier attempt may have happened
    ended = worker.process_poison(MESSAGE, message_id="m1", dequeue_count=2, store=store)
    assert ended is not None and ended.status == "dead_lettered" and ended.sealed_assertion is None
    assert ended.error and ended.error["deadLetterId"] == "letter1"
    assert "MDA answered 503" in ended.error["message"]
    assert store.letters[0]["source"] == "mcas-jobs-poison"


def test_unreadable_or_unknown_messages_are_dead_lettered(store):
    assert worker.process_message("not json", store=store) is None
    unknown = json.dumps({"v": 1, "jobId": "00000000-0000-4000-8000-000000000000"})
    assert worker.process_message(unknown, store=store) is None
    assert [letter["reason"] for letter in store.letters] == [
        "job message is not JSON",
        "job 00000000-0000-4000-8000-000000000000 does not exist",
    ]
