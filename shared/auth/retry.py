"""Bounded retries with exponential backoff and jitter for Key Vault and token-endpoint calls.

The SDKs' own retry loops are turned off (azure-core `retry_total=0`) or bypassed (MSAL's 5xx throttle cache),
so this is the one place that decides how long a cold invocation may wait on an unreachable dependency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from shared.backoff import Backoff

T = TypeVar("T")

_MAX_DELAY = 8.0
_log = logging.getLogger(__name__)


class RetryableError(Exception):
    """Raised inside an attempt to ask for another try; `reason` is safe to log (no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def backoff_delay(attempt: int, base: float) -> float:
    """Delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped, with equal jitter."""
    return Backoff(base, _MAX_DELAY, "equal").delay(attempt)


def with_retries(
    attempt: Callable[[], T],
    *,
    attempts: int,
    backoff: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `attempt` until it returns; `RetryableError` is retried up to `attempts` calls in all, then
    re-raised."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except RetryableError as exc:
            if number >= attempts:
                raise
            delay = backoff_delay(number, backoff)
            _log.warning(
                "%s failed (%s); retry %d of %d in %.2fs", what, exc.reason, number, attempts - 1, delay
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
