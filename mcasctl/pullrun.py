"""A pull run driven from a terminal: Ctrl-C stops it within moments, and progress is shown while it runs.

Ctrl-C (SIGINT) sets a stop event instead of raising in whatever the main thread is doing. Every place a
pull waits - the tenant's request budget, a 429 or retry backoff, another run's lease - sleeps on that event
and raises `Interrupted` when it is set, and a gate in front of the sinks refuses to start delivering another
page. The engine then ends the run as for any other error: the page being delivered is not committed and its
lease is released. A second Ctrl-C quits at once.

Progress goes to stderr: on a terminal one status line (pages, alerts, and any wait with its reason and the
time left); otherwise one line per page.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from mcasctl.errors import Interrupted

if TYPE_CHECKING:
    from shared.alerts.sinks import AlertBatch
    from shared.ratelimit import RateLimiter
    from shared.settings import TenantProfile

TICK_S = 0.25  # how often a wait looks at the stop event and redraws its countdown


@dataclass
class TenantProgress:
    pages: int = 0
    alerts: int = 0
    newest_ms: int | None = None
    waiting: str = ""


@dataclass
class Progress:
    """Counts delivered pages per tenant and shows them (and waits) on `stream`."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    tenants: dict[str, TenantProgress] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _drawn: bool = False

    @property
    def live(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def page(self, batch: AlertBatch) -> None:
        from shared.timeparse import iso_from_ms

        with self._lock:
            state = self.tenants.setdefault(batch.tenant, TenantProgress())
            state.pages += 1
            state.alerts += len(batch.alerts)
            state.newest_ms = max(state.newest_ms or 0, batch.last_ms)
            state.waiting = ""
            if self.live:
                self._draw()
            else:
                self.stream.write(
                    f"{batch.tenant}: page {state.pages}: {len(batch.alerts)} alerts up to "
                    f"{iso_from_ms(batch.last_ms)} ({state.alerts} in all)\n"
                )
                self.stream.flush()

    def wait(self, tenant: str, reason: str, left_s: float) -> None:
        with self._lock:
            state = self.tenants.setdefault(tenant, TenantProgress())
            state.waiting = f"waiting {left_s:.0f} s: {reason}" if left_s > 0 else ""
            if self.live:
                self._draw()

    def _draw(self) -> None:
        parts = []
        for name, state in sorted(self.tenants.items()):
            text = f"{name}: {state.pages} pages, {state.alerts} alerts"
            parts.append(f"{text}, {state.waiting}" if state.waiting else text)
        line = " | ".join(parts)
        import shutil

        width = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r" + line[: width - 1].ljust(width - 1))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        with self._lock:
            if self._drawn:
                import shutil

                width = shutil.get_terminal_size((100, 20)).columns
                self.stream.write("\r" + " " * (width - 1) + "\r")
                self.stream.flush()
                self._drawn = False


class StopControl:
    """The stop event and the waits that honour it."""

    def __init__(self, progress: Progress | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.event = threading.Event()
        self.progress = progress
        self._clock = clock

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        if self.event.is_set():
            raise Interrupted()

    def sleeper(self, tenant: str, reason: str) -> Callable[[float], None]:
        """A `sleep(seconds)` that wakes (raising Interrupted) as soon as the stop event is set."""

        progress = self.progress if tenant else None

        def sleep(seconds: float) -> None:
            end = self._clock() + max(0.0, seconds)
            shown = progress is not None and seconds >= 1.0  # short waits would only flicker
            try:
                while True:
                    left = end - self._clock()
                    if left <= 0:
                        return
                    if shown:
                        assert progress is not None
                        progress.wait(tenant, reason, left)
                    if self.event.wait(min(TICK_S, left)):
                        raise Interrupted()
            finally:
                if shown:
                    assert progress is not None
                    progress.wait(tenant, reason, 0)

        return sleep

    @contextmanager
    def on_ctrl_c(self, stream: TextIO | None = None) -> Iterator[None]:
        """First Ctrl-C sets the event; the second raises KeyboardInterrupt. Main thread only."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        out = stream or sys.stderr

        def handler(signum: int, frame: Any) -> None:
            if self.event.is_set():
                raise KeyboardInterrupt
            self.event.set()
            out.write("\nstopping after the current request (Ctrl-C again to quit at once)...\n")
            out.flush()

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


class StoppableLimiter:
    """The tenant's shared limiter, asked without waiting; the waits happen here, interruptibly."""

    def __init__(self, inner: RateLimiter, sleep: Callable[[float], None]) -> None:
        self._inner = inner
        self._sleep = sleep

    def acquire(self, *, max_wait: float | None = None) -> float:
        from shared.ratelimit import RateLimitWaitTooLong

        waited = 0.0
        while True:
            try:
                return waited + self._inner.acquire(max_wait=0.0)
            except RateLimitWaitTooLong as exc:
                if max_wait is not None and waited + exc.wait_s > max_wait:
                    raise RateLimitWaitTooLong(exc.wait_s) from None
                self._sleep(exc.wait_s)
                waited += exc.wait_s

    def penalize(self, seconds: float) -> None:
        self._inner.penalize(seconds)


@dataclass
class GateSink:
    """First in line: no new page starts delivery once a stop was asked for."""

    stop: StopControl
    name: str = "stop-gate"
    order: int = -1000

    def deliver(self, batch: AlertBatch, *, deadline: float | None) -> None:
        self.stop.check()


@dataclass
class ProgressSink:
    """Last in line: counts the page once every real sink has it."""

    progress: Progress
    name: str = "progress"
    order: int = 1000

    def deliver(self, batch: AlertBatch, *, deadline: float | None) -> None:
        self.progress.page(batch)


def stoppable_api(profile: TenantProfile, stop: StopControl) -> Any:
    """`AlertsApi` for the profile whose every wait (request budget, 429, retry backoff) honours `stop`."""
    from shared.auth import api_credential
    from shared.mda.alerts import AlertsApi
    from shared.mda.client import MdaClient
    from shared.ratelimit import limiter_for

    budget = f"request budget of {profile.rate_limit_per_minute}/min (MCAS_RATE_LIMIT_PER_MINUTE)"
    limiter = StoppableLimiter(
        limiter_for(profile.api_url, profile.rate_limit_per_minute), stop.sleeper(profile.name, budget)
    )
    client = MdaClient(
        profile.api_url,
        api_credential(profile),
        limiter=limiter,
        tenant=profile.name,
        sleep=stop.sleeper(profile.name, "the API asked to slow down (429) or failed; retrying"),
    )
    return AlertsApi(client)
