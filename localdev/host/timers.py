"""Timer triggers: schedules resolved from `%SETTING%` expressions, fired on time (or on request)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from azure.functions.timer import TimerRequest

from localdev.host.cron import Schedule
from localdev.host.index import FunctionSpec, resolve_setting_expressions
from localdev.host.invoke import Invoker

logger = logging.getLogger("localdev.host.timers")

PAST_DUE_AFTER = dt.timedelta(seconds=5)  # fired this late (host busy or asleep): report IsPastDue


@dataclass(frozen=True)
class TimerBinding:
    spec: FunctionSpec
    schedule: Schedule


class TimerScheduler:
    """One thread that sleeps until the earliest next occurrence and runs the due timers, one at a time."""

    def __init__(self, specs: Iterable[FunctionSpec], *, env: Mapping[str, str], invoker: Invoker) -> None:
        self.invoker = invoker
        self.timers: dict[str, TimerBinding] = {}
        for spec in specs:
            expression = resolve_setting_expressions(
                spec.details["schedule"], env, what=f"function {spec.name}"
            )
            self.timers[spec.name] = TimerBinding(
                spec, Schedule.parse(expression, setting=spec.details["schedule"])
            )

    def run(self, name: str, *, past_due: bool = False, scheduled: dt.datetime | None = None) -> None:
        """Invoke one timer function now; its exception propagates to the caller."""
        binding = self.timers[name]
        now = dt.datetime.now(dt.UTC)
        status = {
            "Last": (scheduled or now).isoformat(),
            "Next": binding.schedule.next_after(now).isoformat(),
            "LastUpdated": now.isoformat(),
        }
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        self.invoker.call(name, binding.spec.user_function, {binding.spec.trigger_arg: request})

    def run_forever(self, stop: threading.Event) -> None:
        for name, binding in self.timers.items():
            if binding.spec.details.get("run_on_startup"):
                self._safe_run(name, past_due=False, scheduled=None)
        now = dt.datetime.now(dt.UTC)
        due = {name: b.schedule.next_after(now) for name, b in self.timers.items()}
        while due:
            name, when = min(due.items(), key=lambda item: item[1])
            wait = (when - dt.datetime.now(dt.UTC)).total_seconds()
            if stop.wait(max(0.0, wait)):
                return
            late = dt.datetime.now(dt.UTC) - when
            self._safe_run(name, past_due=late > PAST_DUE_AFTER, scheduled=when)
            # Occurrences missed while it ran are skipped, like the host's singleton timer.
            due[name] = self.timers[name].schedule.next_after(max(when, dt.datetime.now(dt.UTC)))

    def _safe_run(self, name: str, *, past_due: bool, scheduled: dt.datetime | None) -> None:
        try:
            self.run(name, past_due=past_due, scheduled=scheduled)
        except Exception:
            logger.exception("timer function %s failed", name)
