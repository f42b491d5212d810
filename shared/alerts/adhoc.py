"""Ad-hoc window pulls from the `mcas-alert-pull-jobs` queue: parse, run on their own checkpoint, dead-letter.

A message is `{"tenant", "since"|"lookback", "until", "filters", "job_id"}`. Each job keeps its own checkpoint
(`alerts-adhoc/<tenant>.<job>`), so a redelivered message resumes instead of starting over, and a job longer
than one run re-enqueues itself. Invalid messages are dead-lettered with the reason, never retried.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.alerts.checkpoints import STREAM_ADHOC
from shared.alerts.config import AlertConfig
from shared.alerts.pull import (
    MAX_TIME_MS,
    PullEnvironment,
    PullOptions,
    PullResult,
    default_environment,
    run_tenants,
)
from shared.alerts.window import EPOCH, WindowRules, parse_window
from shared.errors import ConfigurationError, McasError, ValidationError
from shared.log_context import log_context
from shared.mda.filters import Filter, filter_from_json
from shared.settings import Settings, get_settings
from shared.timeparse import SETTING_DURATION, iso_from_ms


@dataclass(frozen=True)
class PullJob:
    job_id: str
    tenant: str | None
    start_ms: int
    end_ms: int
    filters: Filter

    def to_message(self) -> str:
        return json.dumps(
            {
                "job_id": self.job_id,
                "tenant": self.tenant,
                "since": iso_from_ms(self.start_ms),
                "until": iso_from_ms(self.end_ms),
                "filters": self.filters.to_json(),
            }
        )


# Any ISO-8601 (naive = UTC) or epoch milliseconds, the settings' duration grammar (`3600` = 3600 s); no cap,
# but both ends must render as dates, since checkpoints and messages store them so.
QUEUE_WINDOW = WindowRules(
    instants="iso8601",
    durations=SETTING_DURATION,
    instant_hint="ISO-8601 or epoch milliseconds",
    epoch_ms=True,
    echo_bad_instant=True,
    null_start_is_absent=False,
    lookback_from_now=True,
    lookback_must_be_text=False,
    both_message="give since or lookback, not both",
    bounds_us=(0, MAX_TIME_MS * 1000),
    bounds_message="must lie between 1970-01-01 and 9999-12-31",
    empty_allowed=True,
    order_error=("until", "is before since"),
)
_JOB_KEYS = {"job_id", "tenant", "since", "until", "lookback", "filters", "correlationId", "correlation_id"}


def parse_job(body: str, *, now_ms: int, default_job_id: str) -> PullJob:
    """Validate an ad-hoc pull message; ValidationError says what is wrong (the message is dead-lettered)."""
    try:
        raw = json.loads(body)
    except (ValueError, TypeError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise ValidationError("the message is not JSON") from None
    if not isinstance(raw, dict):
        raise ValidationError("the message must be a JSON object")
    unknown = set(raw) - _JOB_KEYS
    if unknown:
        raise ValidationError(f"unknown keys {sorted(unknown)}")
    job_id = str(raw.get("job_id") or default_job_id)
    if not job_id.replace("-", "").replace("_", "").isalnum() or len(job_id) > 64:
        raise ValidationError("job_id may hold up to 64 letters, digits, '-' and '_'")
    tenant = raw.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise ValidationError("tenant must be a profile name")
    window = parse_window(raw, QUEUE_WINDOW, now=EPOCH + dt.timedelta(milliseconds=now_ms))
    # The message's first problem is its reason: unreadable times, then filters, then the window they make.
    for error in window.errors:
        if error.parsing:
            raise ValidationError(str(error))
    try:
        filters = filter_from_json(raw.get("filters"))
    except (ConfigurationError, ValueError) as exc:
        raise ValidationError(str(exc)) from None
    if "date" in filters.to_json():
        raise ValidationError("filters must not constrain date; use since/until")
    if window.errors:
        raise ValidationError(str(window.errors[0]))
    start_ms, end_ms = window.since_ms, window.until_ms
    return PullJob(job_id, tenant, start_ms, end_ms, filters)


def run_job(
    job: PullJob,
    *,
    settings: Settings | None = None,
    env: PullEnvironment | None = None,
    budget_s: float | None = None,
    requeue: Callable[[PullJob], None] | None = None,
) -> PullResult:
    """An ad-hoc window pull with its own checkpoint (`alerts-adhoc/<tenant>.<job>`): a redelivered message
    resumes instead of starting over, and a job longer than one run re-enqueues itself."""
    settings = settings or get_settings()
    config = AlertConfig.from_settings(settings)
    env = env or default_environment(config)
    try:
        profile = settings.tenant(job.tenant) if job.tenant else settings.default_tenant
    except ConfigurationError as exc:
        raise ValidationError(str(exc)) from None
    options = PullOptions(
        stream=STREAM_ADHOC,
        key=f"{profile.name}.{job.job_id}",
        start_ms=job.start_ms,
        end_ms=job.end_ms,
        filters=job.filters,
        max_pages=config.max_pages_per_run,
        lease_s=config.lease_s,
        mark_complete=True,
    )
    deadline = env.clock() + (budget_s if budget_s is not None else config.time_budget_s)
    result = run_tenants([profile], options, env, deadline)[0]
    if result.stopped in ("budget", "page_cap"):
        (requeue or _requeue)(job)
    return result


def _requeue(job: PullJob) -> None:
    from shared.storage import QUEUE_ALERT_PULL_JOBS, queue_client

    queue_client(QUEUE_ALERT_PULL_JOBS).send_message(job.to_message())


def handle_job_message(
    body: str, *, message_id: str | None, dequeue_count: int | None = None
) -> PullResult | None:
    """Queue-trigger entry: invalid messages are dead-lettered (not raised); transient failures raise so the
    host retries; a job another run is already working on (busy) is left to that run."""
    from shared.deadletters import dead_letter
    from shared.storage import QUEUE_ALERT_PULL_JOBS

    now_ms = int(time.time() * 1000)
    default_id = message_id or hashlib.sha256(body.encode("utf-8", errors="replace")).hexdigest()[:24]
    with log_context(correlation_id=_correlation_of(body)):
        try:
            job = parse_job(body, now_ms=now_ms, default_job_id=default_id)
            with log_context(job_id=job.job_id):
                result = run_job(job)
        except ValidationError as exc:
            dead_letter(
                source=QUEUE_ALERT_PULL_JOBS,
                reason=f"invalid alert pull job: {exc}",
                body=body,
                message_id=message_id,
                dequeue_count=dequeue_count,
            )
            return None
        if result.error and result.terminal:
            # A refusal that retrying cannot change (bad request, permission): keep it, do not loop.
            dead_letter(
                source=QUEUE_ALERT_PULL_JOBS,
                reason=f"alert pull job {job.job_id} failed: {result.error}",
                body=body,
                message_id=message_id,
                dequeue_count=dequeue_count,
            )
            return result
        if result.error:
            raise McasError(f"alert pull job {job.job_id} failed: {result.error}")
        return result


def _correlation_of(body: str) -> str | None:
    """The message's correlation id, if it is an object that carries a string one (log context only)."""
    try:
        raw = json.loads(body)
    except (ValueError, RecursionError):
        return None
    value = (raw.get("correlationId") or raw.get("correlation_id")) if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None
