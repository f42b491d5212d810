"""Single flight: N concurrent callers share one execution and its outcome (result or exception)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Hashable
from typing import Any

import pytest

from shared.auth.singleflight import SingleFlight

from .fakes import burst


class CountingFlight(SingleFlight[int]):
    """A SingleFlight that counts the callers who have joined a flight, so a test can hold the flight open
    until every caller is inside it instead of hoping a sleep is long enough."""

    def __init__(self) -> None:
        super().__init__()
        self.joined = 0
        self._joined_changed = threading.Condition()

    def _join(self, key: Hashable) -> tuple[Any, bool]:
        joined = super()._join(key)
        with self._joined_changed:
            self.joined += 1
            self._joined_changed.notify_all()
        return joined

    def wait_for_callers(self, n: int) -> None:
        with self._joined_changed:
            assert self._joined_changed.wait_for(lambda: self.joined >= n, timeout=30), self.joined


class HeldCall:
    """A dependency that runs until `n` callers have joined its flight and counts its calls: returns `value`,
    or raises `error` when given."""

    def __init__(
        self, flight: CountingFlight, n: int, value: int = 0, error: Exception | None = None
    ) -> None:
        self.flight, self.n = flight, n
        self.value, self.error, self.calls = value, error, 0

    def __call__(self) -> int:
        self.calls += 1
        self.flight.wait_for_callers(self.n)
        if self.error is not None:
            raise self.error
        return self.value


def test_concurrent_callers_share_one_execution() -> None:
    flight = CountingFlight()
    slow = HeldCall(flight, 64, 42)
    results = burst(64, lambda: flight.do("k", slow))
    assert results == [42] * 64
    assert slow.calls == 1
    assert not flight.in_flight("k")


def test_failure_is_shared_not_repeated() -> None:
    """A failing dependency is hit once for the whole burst, and every caller sees the error."""
    flight = CountingFlight()
    failing = HeldCall(flight, 16, error=RuntimeError("down"))
    results = burst(16, lambda: flight.do("k", failing))
    assert failing.calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    # The next call after the flight ended runs again.
    failing.n = 17
    with pytest.raises(RuntimeError):
        flight.do("k", failing)
    assert failing.calls == 2


def test_keys_are_independent() -> None:
    flight: SingleFlight[str] = SingleFlight()
    assert flight.do("a", lambda: "A") == "A"
    assert flight.do("b", lambda: "B") == "B"


def test_async_callers_share_one_execution() -> None:
    flight = CountingFlight()
    slow = HeldCall(flight, 20, 7)

    async def main() -> list[int]:
        return await asyncio.gather(*(flight.do_async("k", slow) for _ in range(20)))

    assert asyncio.run(main()) == [7] * 20
    assert slow.calls == 1
