"""Single flight: N concurrent callers share one execution and its outcome (result or exception)."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.auth.singleflight import SingleFlight

from .fakes import burst


class SlowCall:
    """A dependency that takes 0.3 s and counts its calls: returns `value`, or raises `error` when given."""

    def __init__(self, value: int = 0, error: Exception | None = None) -> None:
        self.value, self.error, self.calls = value, error, 0

    def __call__(self) -> int:
        self.calls += 1
        time.sleep(0.3)
        if self.error is not None:
            raise self.error
        return self.value


def test_concurrent_callers_share_one_execution() -> None:
    flight: SingleFlight[int] = SingleFlight()
    slow = SlowCall(42)
    results = burst(64, lambda: flight.do("k", slow))
    assert results == [42] * 64
    assert slow.calls == 1
    assert not flight.in_flight("k")


def test_failure_is_shared_not_repeated() -> None:
    """A failing dependency is hit once for the whole burst, and every caller sees the error."""
    flight: SingleFlight[int] = SingleFlight()
    failing = SlowCall(error=RuntimeError("down"))
    results = burst(16, lambda: flight.do("k", failing))
    assert failing.calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    # The next call after the flight ended runs again.
    with pytest.raises(RuntimeError):
        flight.do("k", failing)
    assert failing.calls == 2


def test_keys_are_independent() -> None:
    flight: SingleFlight[str] = SingleFlight()
    assert flight.do("a", lambda: "A") == "A"
    assert flight.do("b", lambda: "B") == "B"


def test_async_callers_share_one_execution() -> None:
    flight: SingleFlight[int] = SingleFlight()
    slow = SlowCall(7)

    async def main() -> list[int]:
        return await asyncio.gather(*(flight.do_async("k", slow) for _ in range(20)))

    assert asyncio.run(main()) == [7] * 20
    assert slow.calls == 1
