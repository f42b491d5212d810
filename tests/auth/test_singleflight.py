"""Single flight: N concurrent callers share one execution and its outcome (result or exception)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from shared.auth.singleflight import SingleFlight


def _run_concurrently(n: int, target) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_concurrent_callers_share_one_execution() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0

    def slow() -> int:
        nonlocal calls
        calls += 1
        time.sleep(0.3)
        return 42

    results = _run_concurrently(64, lambda: flight.do("k", slow))
    assert results == [42] * 64
    assert calls == 1
    assert not flight.in_flight("k")


def test_failure_is_shared_not_repeated() -> None:
    """A failing dependency is hit once for the whole burst, and every caller sees the error."""
    flight: SingleFlight[int] = SingleFlight()
    calls = 0

    def failing() -> int:
        nonlocal calls
        calls += 1
        time.sleep(0.3)
        raise RuntimeError("down")

    results = _run_concurrently(16, lambda: flight.do("k", failing))
    assert calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    # The next call after the flight ended runs again.
    with pytest.raises(RuntimeError):
        flight.do("k", failing)
    assert calls == 2


def test_keys_are_independent() -> None:
    flight: SingleFlight[str] = SingleFlight()
    assert flight.do("a", lambda: "A") == "A"
    assert flight.do("b", lambda: "B") == "B"


def test_async_callers_share_one_execution() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0

    def slow() -> int:
        nonlocal calls
        calls += 1
        time.sleep(0.3)
        return 7

    async def main() -> list[int]:
        return await asyncio.gather(*(flight.do_async("k", slow) for _ in range(20)))

    assert asyncio.run(main()) == [7] * 20
    assert calls == 1
