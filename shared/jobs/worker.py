"""The queue-triggered worker: run one job, record its outcome, send the callback.

Per message (`{"v": 1, "jobId", "correlationId", "action"}` on `QUEUE_JOBS`):
- unreadable message or unknown job -> dead letter, acknowledged (retrying cannot help);
- job already succeeded/failed -> acknowledged without running again (at-least-once delivery);
- otherwise: `running` (attempts + 1), then the action in the right context:
  - success -> `succeeded` with the result;
  - terminal errors (bad request, permission, unknown data source, expired user assertion) -> `failed` with
    the error; the message is acknowledged;
  - transient errors (429 budget, 5xx, network, Key Vault) and anything unexpected -> back to `queued` with
    the error (`retrying: true`), and the exception propagates so the host retries; after `maxDequeueCount`
    the poison handler marks the job `dead_lettered` and stores the message in the dead-letter store.
- a finished job with a callback URL gets a signed POST (retried briefly; see shared/jobs/callback.py).
The correlation id is in every log line and in the result; the user's assertion never is.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigurationError, TerminalError, ValidationError
from shared.jobs.store import JobRecord, JobStore
from shared.log_context import bind, log_context

if TYPE_CHECKING:
    from shared.deadletters import DeadLetter

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ASSERTION_GRACE_S = 30  # an assertion expiring sooner than this cannot finish an OBO exchange reliably


class JobFailed(Exception):
    """A terminal, caller-visible failure decided by the worker itself."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


def _now_iso() -> str:
    from shared.timeparse import iso

    return iso(datetime.now(UTC))


def _parse(body: str) -> tuple[str, str | None]:
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise ValidationError("job message is not JSON") from None
    version = message.get("v") if isinstance(message, dict) else None
    if not isinstance(message, dict) or type(version) is not int or version != 1:  # (True == 1 in Python)
        raise ValidationError("job message is not a version 1 job reference")
    job_id = message.get("jobId")
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):  # `$` alone would admit a trailing \n
        raise ValidationError("job message has no valid jobId")
    correlation = message.get("correlationId")
    return job_id, correlation if isinstance(correlation, str) else None


@dataclass(frozen=True)
class _Delivery:
    """One queue message as the host handed it over, and the job reference read from it (if any)."""

    text: str
    message_id: str | None
    dequeue_count: int | None
    job_id: str | None = None
    correlation_id: str | None = None
    problem: str = ""  # why the message holds no job reference

    @classmethod
    def read(cls, body: str | bytes, message_id: str | None, dequeue_count: int | None) -> _Delivery:
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        try:
            job_id, correlation_id = _parse(text)
        except ValidationError as exc:
            return cls(text, message_id, dequeue_count, problem=exc.reason)
        return cls(text, message_id, dequeue_count, job_id, correlation_id)

    def logged(self) -> AbstractContextManager[object]:
        return log_context(job_id=self.job_id, correlation_id=self.correlation_id)

    def dead_letter(self, source: str, reason: str) -> DeadLetter:
        from shared.deadletters import dead_letter

        return dead_letter(
            source=source,
            reason=reason,
            body=self.text,
            message_id=self.message_id,
            correlation_id=self.correlation_id,
            dequeue_count=self.dequeue_count,
        )


def process_message(
    body: str | bytes,
    *,
    message_id: str | None = None,
    dequeue_count: int | None = None,
    store: JobStore | None = None,
) -> JobRecord | None:
    """Entry point of the queue trigger. Returns the job as it ended (None if there was no job to run)."""
    from shared.storage import QUEUE_JOBS

    delivery = _Delivery.read(body, message_id, dequeue_count)
    if delivery.job_id is None:
        delivery.dead_letter(QUEUE_JOBS, delivery.problem)
        return None
    with delivery.logged():
        return _process(delivery, delivery.job_id, store or _default_store())


def _process(delivery: _Delivery, job_id: str, jobs: JobStore) -> JobRecord | None:
    from shared.storage import QUEUE_JOBS

    job = jobs.get(job_id)
    if job is None:
        delivery.dead_letter(QUEUE_JOBS, f"job {job_id} does not exist")
        return None
    bind(correlation_id=job.correlation_id)  # the record's id wins over a message that lacks one
    if job.status in ("succeeded", "failed"):
        log.info("job %s already %s; duplicate delivery ignored [%s]", job_id, job.status, job.correlation_id)
        return job
    redelivered = job.attempts > 0 or (delivery.dequeue_count or 1) > 1
    running = jobs.update(job_id, _start)
    if running is None or running.status != "running":
        return running
    log.info(
        "job %s: %s attempt %d in %s context [%s]",
        job_id,
        running.action,
        running.attempts,
        running.context,
        running.correlation_id,
    )
    try:
        result = _run(running, redelivered=redelivered)
    except (JobFailed, ValidationError, TerminalError) as exc:
        finished = _finish(jobs, job_id, "failed", error=_error_of(exc))
        log.warning("job %s failed: %s [%s]", job_id, _error_of(exc)["message"], running.correlation_id)
    except Exception as exc:
        # Transient (or unexpected): leave it for the queue's retry; the poison handler ends it for good.
        error = _error_of(exc)
        jobs.update(job_id, lambda j: _requeue(j, error))
        log.warning(
            "job %s attempt %d did not finish (%s); the queue will retry [%s]",
            job_id,
            running.attempts,
            error["message"],
            running.correlation_id,
        )
        raise
    else:
        finished = _finish(jobs, job_id, "succeeded", result=result)
        log.info("job %s succeeded [%s]", job_id, running.correlation_id)
    if finished is not None:
        finished = _send_callback(jobs, finished)
    return finished


def process_poison(
    body: str | bytes,
    *,
    message_id: str | None = None,
    dequeue_count: int | None = None,
    store: JobStore | None = None,
) -> JobRecord | None:
    """Entry point of the `<QUEUE_JOBS>-poison` trigger: dead-letter the message, end the job."""
    delivery = _Delivery.read(body, message_id, dequeue_count)
    with delivery.logged():
        return _poison(delivery, store or _default_store())


def _poison(delivery: _Delivery, jobs: JobStore) -> JobRecord | None:
    from shared.storage import QUEUE_JOBS

    job_id = delivery.job_id
    job = jobs.get(job_id) if job_id else None
    last = (job.error or {}).get("message") if job is not None else None
    reason = "exhausted retries" + (f"; last error: {last}" if last else "")
    letter = delivery.dead_letter(f"{QUEUE_JOBS}-poison", reason)
    if job is None or job_id is None:
        return None
    error = {"code": "dead_lettered", "message": reason, "deadLetterId": letter.id}
    finished = _finish(jobs, job_id, "dead_lettered", error=error)
    log.error("job %s dead-lettered as %s [%s]", job_id, letter.id, job.correlation_id)
    if finished is not None and finished.status == "dead_lettered":
        finished = _send_callback(jobs, finished)
    return finished


# -- state transitions ---------------------------------------------------------------------------------------


def _start(job: JobRecord) -> JobRecord | None:
    if job.status in ("succeeded", "failed"):
        return None  # finished meanwhile (a duplicate delivery won)
    stamp = _now_iso()
    return replace(
        job,
        status="running",
        attempts=job.attempts + 1,
        started_at=job.started_at or stamp,
        updated_at=stamp,
        finished_at=None,
    )


def _requeue(job: JobRecord, error: dict[str, Any]) -> JobRecord | None:
    if job.finished:
        return None
    return replace(job, status="queued", error={**error, "retrying": True}, updated_at=_now_iso())


def _finish(
    jobs: JobStore,
    job_id: str,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> JobRecord | None:
    def change(job: JobRecord) -> JobRecord | None:
        if job.status in ("succeeded", "failed") or (job.status == status == "dead_lettered"):
            return None  # never overwrite a finished outcome
        stamp = _now_iso()
        final_result = None if result is None else {**result, "correlationId": job.correlation_id}
        return replace(
            job,
            status=status,  # type: ignore[arg-type]
            result=final_result,
            error=error,
            finished_at=stamp,
            updated_at=stamp,
            sealed_assertion=None,  # the user's assertion is not kept past the job's end
            assertion_expires_at=None,
        )

    return jobs.update(job_id, change)


def _error_of(exc: BaseException) -> dict[str, Any]:
    from shared.auth.redaction import redact

    if isinstance(exc, JobFailed):
        return {"code": exc.code, "message": exc.message}
    error: dict[str, Any] = {
        "code": _snake(type(exc).__name__),
        "message": redact(str(exc) or type(exc).__name__)[:1000],
    }
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        error["status"] = status
    api_correlation = getattr(exc, "correlation_id", None)
    if isinstance(api_correlation, str) and api_correlation:
        error["apiCorrelationId"] = api_correlation
    if isinstance(exc, ValidationError) and exc.field_errors:
        error["fieldErrors"] = exc.field_errors
    return error


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Error") or name).lower()


# -- running -------------------------------------------------------------------------------------------------


def _run(job: JobRecord, *, redelivered: bool) -> dict[str, Any]:
    from shared.jobs.actions import ActionContext, run_action
    from shared.jobs.config import jobs_config
    from shared.jobs.schema import JobSpec
    from shared.settings import get_settings

    settings = get_settings()
    spec = JobSpec.from_json(job.spec)
    try:
        profile = settings.tenant(spec.tenant) if spec.tenant else settings.default_tenant
    except ConfigurationError:
        raise JobFailed("unknown_tenant", f"no tenant profile named {spec.tenant!r} is configured") from None
    bind(tenant=profile.name)
    assertion = _open_assertion(job) if job.context == "user" else None
    context = ActionContext(
        profile=profile,
        user_assertion=assertion,
        budget_s=jobs_config().time_budget_s,
        redelivered=redelivered,
        correlation_id=job.correlation_id,
    )
    return run_action(spec, context)


def _open_assertion(job: JobRecord) -> str:
    """The submitting user's assertion, unsealed for this run only (never stored or logged in clear)."""
    from shared.auth.keyvault import secret_store
    from shared.jobs.config import jobs_config
    from shared.jobs.sealing import SealError, key_from_secret, unseal
    from shared.settings import get_settings

    if not job.sealed_assertion:
        raise JobFailed(
            "user_assertion_missing", "the job was submitted in user context but holds no assertion"
        )
    if job.assertion_expires_at is not None and job.assertion_expires_at - ASSERTION_GRACE_S < time.time():
        raise JobFailed(
            "user_assertion_expired",
            "the submitting user's token expired before the job ran; submit it again with a fresh token",
        )
    secret = secret_store(get_settings()).get(jobs_config().sealing_key_name).value
    try:
        return unseal(key_from_secret(secret), job.job_id, job.sealed_assertion)
    except SealError:
        raise JobFailed(
            "user_assertion_unreadable", "the sealed user assertion could not be opened"
        ) from None


def _default_store() -> JobStore:
    from shared.jobs.store import default_job_store

    return default_job_store()


# -- callback ------------------------------------------------------------------------------------------------


def _send_callback(jobs: JobStore, job: JobRecord) -> JobRecord:
    url = job.spec.get("callbackUrl")
    if not url or (job.callback or {}).get("status") == "delivered":
        return job
    from shared.jobs.callback import deliver
    from shared.jobs.config import jobs_config
    from shared.jobs.views import job_view

    config = jobs_config()
    payload = {"type": "job.finished", "timestamp": _now_iso(), "data": job_view(job)}
    outcome = deliver(
        str(url),
        payload,
        msg_id=f"job_{job.job_id}",
        keys=_callback_keys(config.callback_secret_name),
        allow_loopback=config.allow_loopback,
    ).as_dict()
    outcome["at"] = _now_iso()

    def change(current: JobRecord) -> JobRecord | None:
        return replace(current, callback=outcome)

    updated = jobs.update(job.job_id, change)
    log.info("job %s callback %s [%s]", job.job_id, outcome["status"], job.correlation_id)
    return updated or job


def _callback_keys(secret_name: str) -> Callable[[bool], list[bytes]]:
    """Reads the signing secret(s) through the auth helper's Key Vault store; refresh bypasses its cache."""

    def read(refresh: bool) -> list[bytes]:
        from shared.auth.keyvault import secret_store
        from shared.jobs.signature import parse_secrets
        from shared.settings import get_settings

        return parse_secrets(secret_store(get_settings()).get(secret_name, bypass_cache=refresh).value)

    return read
