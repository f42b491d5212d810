"""Calling user functions the way the Python worker does: keyword arguments named after the bindings,
an optional `context`, and async functions awaited on one long-lived event loop (so loop-bound clients
created by one invocation still work in the next)."""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import azure.functions as func
from azure.functions._abc import RetryContext, TraceContext


class CapturingOut(func.Out[Any]):
    """Stands in for an output binding; the host reads `.value` after the function returns."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, val: Any) -> None:
        self.value = val

    def get(self) -> Any:
        return self.value


class _TraceContext(TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class LocalContext(func.Context):
    """The `context` argument: a fresh invocation id per call, like the worker's."""

    def __init__(self, function_name: str, function_directory: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._local = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> RetryContext:
        return _RetryContext()


class Invoker:
    """Runs sync functions in the calling thread and coroutines on a shared background event loop."""

    def __init__(self, *, timeout: float, function_directory: str = ".") -> None:
        self.timeout = timeout
        self.function_directory = function_directory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, name: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if "context" in inspect.signature(fn).parameters:
            kwargs = {**kwargs, "context": LocalContext(name, self.function_directory)}
        result = fn(**kwargs)
        if inspect.iscoroutine(result):
            return self._await(result)
        return result

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()

    def _await(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        try:
            return future.result(timeout=self.timeout)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"function exceeded functionTimeout ({self.timeout:.0f} s)") from None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="localhost-asyncio", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop
