"""Alerts blueprint: the scheduled pull (timer), one pull per tenant (queue) and ad-hoc window pulls (queue).

The timer fans out (shared/alerts/fanout.py; with `MCAS_ALERTS_FANOUT=false` it pulls every tenant itself,
shared/alerts/pull.py); the ad-hoc queue jobs run shared/alerts/adhoc.py.

- `alerts_pull_timer`: schedule from the app setting `MCAS_ALERTS_SCHEDULE` (default `0 */5 * * * *`; the
  binding reads it as `%MCAS_ALERTS_SCHEDULE%`, so infra must set it - a missing setting breaks indexing),
  `run_on_startup=False` (a restart must not start a pull), `use_monitor=True` so a missed slot runs late
  rather than never.
- `alerts_tenant_pull`: one message per due tenant and slot on `mcas-alert-tenant-pulls`: probe, then pull
  that tenant only; `alerts_tenant_pull_poison` dead-letters messages that exhausted the host's retries and
  backs the tenant off.
- `alerts_pull_job`: one JSON message per ad-hoc window pull on `mcas-alert-pull-jobs`
  (`{"tenant", "since"|"lookback", "until", "filters", "job_id"}`); invalid messages are dead-lettered with
  the reason, transient failures raise so the host retries; `alerts_pull_job_poison` dead-letters jobs that
  exhausted those retries.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from shared.log_context import log_context
from shared.storage import QUEUE_ALERT_PULL_JOBS, QUEUE_ALERT_TENANT_PULLS

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated
log = logging.getLogger(__name__)


@bp.function_name(name="alerts_pull_timer")
@bp.timer_trigger(schedule="%MCAS_ALERTS_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def alerts_pull_timer(timer: func.TimerRequest, context: func.Context) -> None:
    from shared.alerts.fanout import fanout_enabled, run_timer_entry
    from shared.alerts.pull import run_scheduled_entry
    from shared.errors import ConfigurationError

    with log_context(invocation_id=context.invocation_id):  # each tenant's run adds its tenant
        try:
            if fanout_enabled():
                run_timer_entry(past_due=bool(timer.past_due))
            else:
                run_scheduled_entry(past_due=bool(timer.past_due))
        except ConfigurationError as exc:
            # A setting problem (no sink, a bad value) repeats every run until fixed: one clear line per run
            # (and /api/health names it), not a traceback every run.
            log.error("alert pull timer did not run: %s", exc)


@bp.function_name(name="alerts_tenant_pull")
@bp.queue_trigger(arg_name="msg", queue_name=QUEUE_ALERT_TENANT_PULLS, connection="AzureWebJobsStorage")
def alerts_tenant_pull(msg: func.QueueMessage, context: func.Context) -> None:
    from shared.alerts.fanout import handle_tenant_message

    with log_context(invocation_id=context.invocation_id):  # the run adds its tenant
        handle_tenant_message(_text(msg), **_delivery(msg))


@bp.function_name(name="alerts_tenant_pull_poison")
@bp.queue_trigger(
    arg_name="msg", queue_name=f"{QUEUE_ALERT_TENANT_PULLS}-poison", connection="AzureWebJobsStorage"
)
def alerts_tenant_pull_poison(msg: func.QueueMessage, context: func.Context) -> None:
    """A tenant's pull that exhausted the host's retries: dead-lettered, and that tenant backs off."""
    from shared.alerts.fanout import handle_poison_message

    with log_context(invocation_id=context.invocation_id):
        handle_poison_message(_text(msg), **_delivery(msg))


@bp.function_name(name="alerts_pull_job")
@bp.queue_trigger(arg_name="msg", queue_name=QUEUE_ALERT_PULL_JOBS, connection="AzureWebJobsStorage")
def alerts_pull_job(msg: func.QueueMessage, context: func.Context) -> None:
    from shared.alerts.adhoc import handle_job_message

    with log_context(invocation_id=context.invocation_id):  # the job adds its job id and correlation id
        handle_job_message(_text(msg), **_delivery(msg))


@bp.function_name(name="alerts_pull_job_poison")
@bp.queue_trigger(
    arg_name="msg", queue_name=f"{QUEUE_ALERT_PULL_JOBS}-poison", connection="AzureWebJobsStorage"
)
def alerts_pull_job_poison(msg: func.QueueMessage, context: func.Context) -> None:
    """Jobs that exhausted the host's retries go to the dead-letter store, never back into a retry loop."""
    from shared.deadletters import dead_letter

    with log_context(invocation_id=context.invocation_id):
        dead_letter(
            source=f"{QUEUE_ALERT_PULL_JOBS}-poison",
            reason="alert pull job exhausted its retries",
            body=msg.get_body(),
            **_delivery(msg),
        )


def _text(msg: func.QueueMessage) -> str:
    return msg.get_body().decode("utf-8", errors="replace")


def _delivery(msg: func.QueueMessage) -> dict[str, Any]:
    """How a handler names the queue message in a dead letter: its id and how often it was delivered."""
    return {"message_id": msg.id, "dequeue_count": getattr(msg, "dequeue_count", None)}
