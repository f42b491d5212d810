"""Single flight: concurrent callers asking for the same key share one execution and its outcome.

Why: on a cold worker the Functions host runs many invocations at once on its thread pool (and async functions
on the event loop); without this, each would read Key Vault and request a token. With it, one caller does the
work and the rest wait for its result - or its exception, so a failing dependency is hit once, not N times.
Async followers wait on an asyncio future, not on a pool thread, so a burst of coroutines cannot starve the
default executor while the leader works.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("callbacks", "done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.callbacks: list[Callable[[], None]] = []

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class SingleFlight(Generic[T]):
    """Thread-safe; `do_async` runs the same flight from async code without blocking the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, _Call[T]] = {}

    def _join(self, key: Hashable) -> tuple[_Call[T], bool]:
        """(call, is_leader); must be called with the lock held."""
        call = self._calls.get(key)
        if call is not None:
            return call, False
        call = self._calls[key] = _Call()
        return call, True

    def _lead(self, key: Hashable, call: _Call[T], fn: Callable[[], T]) -> T:
        try:
            call.result = fn()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
                callbacks = list(call.callbacks)
            call.done.set()
            for callback in callbacks:
                callback()
        return call.result

    def do(self, key: Hashable, fn: Callable[[], T]) -> T:
        """Run `fn` unless a call for `key` is already running; then wait for it and share its outcome."""
        with self._lock:
            call, leader = self._join(key)
        if leader:
            return self._lead(key, call, fn)
        call.done.wait()
        return call.outcome()

    async def do_async(self, key: Hashable, fn: Callable[[], T]) -> T:
        """The async form: the leader runs `fn` on a worker thread; followers await without a thread."""
        import asyncio

        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] | None = None
        with self._lock:
            call, leader = self._join(key)
            if not leader:
                future: asyncio.Future[Any] = loop.create_future()

                def settle() -> None:
                    if not future.done():
                        future.set_result(None)

                def wake() -> None:
                    # RuntimeError: the waiter's loop is closed; nobody is left to wake.
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(settle)

                call.callbacks.append(wake)
                waiter = future
        if leader:
            return await asyncio.to_thread(self._lead, key, call, fn)
        assert waiter is not None
        await waiter
        return call.outcome()

    def in_flight(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._calls
