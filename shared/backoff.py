"""How long to wait before the next attempt: one rule for every retry loop in the app.

Callers keep their own policy (which failures are worth another attempt, how many attempts); this module owns
the arithmetic: capped exponential delays with jitter, the server's `Retry-After` (seconds or an HTTP date),
and never sleeping past the caller's deadline. Clock, sleep and randomness are injectable so tests run in
milliseconds and deterministically.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Jitter = Literal["full", "equal", "none"]


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None if absent
    or unreadable. A date in the past means 0."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        return max(0.0, moment.timestamp() - now())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass
class Backoff:
    """Capped exponential backoff: attempt n waits up to `base * 2**(n-1)` (at most `cap`), jittered.

    `full` jitter draws from [0, d] (spreads a herd of clients best), `equal` from [d/2, d] (keeps a floor
    for dependencies that need a pause), `none` waits exactly d.
    """

    base: float = 1.0
    cap: float = 30.0
    jitter: Jitter = "full"
    rng: Callable[[], float] = field(default=random.random, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int) -> float:
        """The wait before retry number `attempt` (1-based)."""
        ceiling = min(self.cap, self.base * (2.0 ** max(0, attempt - 1)))
        if self.jitter == "full":
            return ceiling * self.rng()
        if self.jitter == "equal":
            return ceiling / 2 + (ceiling / 2) * self.rng()
        return ceiling

    def wait_for(self, attempt: int, retry_after: float | None = None, *, told_jitter: float = 0.0) -> float:
        """The wait for this attempt: the server's `Retry-After` when it gave one (never less, plus up to
        `told_jitter` of it so many clients do not return at once), else the backoff delay."""
        if retry_after is not None:
            return retry_after * (1.0 + told_jitter * self.rng())
        return self.delay(attempt)

    def fits(self, wait: float, deadline: float | None) -> bool:
        """Whether waiting `wait` seconds ends before `deadline` (a `clock()` value; None: no limit)."""
        return deadline is None or self.clock() + wait < deadline

    def sleep_within(self, wait: float, deadline: float | None) -> bool:
        """Sleep `wait` seconds unless that would pass `deadline`; return whether it slept (False: give up
        now, the caller reports its last error instead of waiting past its budget)."""
        if not self.fits(wait, deadline):
            return False
        if wait > 0:
            self.sleep(wait)
        return True
