"""Per-tenant rolling-window request limiter for the simulated Defender for Cloud Apps API.

The real service allows 30 requests per rolling minute per tenant
(https://learn.microsoft.com/defender-cloud-apps/api-introduction) and answers 429 beyond
it. Limit and window are live-configurable so tests and benchmarks can compress time (e.g. 30 per 2 s)
instead of sleeping through real minutes. The clock is injected so the behaviour is testable without
waiting.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottleStats:
    limit: int
    window_s: float
    in_window: int
    allowed: int
    throttled: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "limit": self.limit,
            "window_s": self.window_s,
            "in_window": self.in_window,
            "allowed": self.allowed,
            "throttled": self.throttled,
        }


class RollingWindowLimiter:
    """Admit at most `limit` requests in any `window_s`-second span; say how long a refused caller must wait.

    Refused requests are not recorded in the window, so a client that backs off as told gets in again after
    the advertised delay (a client that keeps hammering just keeps collecting 429s, which is what we count).
    """

    def __init__(self, limit: int, window_s: float, *, clock: Callable[[], float] = time.time) -> None:
        self._check_config(limit, window_s)
        self._limit = limit
        self._window = float(window_s)
        self._clock = clock
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()
        self._allowed = 0
        self._throttled = 0

    @staticmethod
    def _check_config(limit: int, window_s: float) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be a positive integer")
        if isinstance(window_s, bool) or not isinstance(window_s, int | float) or not window_s > 0:
            raise ValueError("window_s must be a positive number of seconds")

    def configure(self, *, limit: int | None = None, window_s: float | None = None) -> None:
        """Change the limit and/or window live; the recorded history is kept (it is trimmed lazily)."""
        with self._lock:
            new_limit = self._limit if limit is None else limit
            new_window = self._window if window_s is None else window_s
            self._check_config(new_limit, new_window)
            self._limit, self._window = new_limit, float(new_window)

    def reset(self) -> None:
        """Forget the history and the counts (tests start from a clean window)."""
        with self._lock:
            self._stamps.clear()
            self._allowed = self._throttled = 0

    def acquire(self) -> int | None:
        """Record one request. Return None when admitted, else the whole seconds (>= 1) until a slot frees."""
        with self._lock:
            now = self._clock()
            horizon = now - self._window
            stamps = self._stamps
            while stamps and stamps[0] <= horizon:
                stamps.popleft()
            if len(stamps) < self._limit:
                stamps.append(now)
                self._allowed += 1
                return None
            self._throttled += 1
            # The slot frees when the request `limit` places back ages out of the window.
            oldest_blocking = stamps[len(stamps) - self._limit]
            return max(1, math.ceil(oldest_blocking + self._window - now))

    def stats(self) -> ThrottleStats:
        with self._lock:
            horizon = self._clock() - self._window
            in_window = sum(1 for t in self._stamps if t > horizon)
            return ThrottleStats(self._limit, self._window, in_window, self._allowed, self._throttled)
