"""`LocalHost`: HTTP, queue polling and timers around one FunctionApp, usable in-process by tests."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from localdev.host.http import HttpFrontend
from localdev.host.index import FunctionSpec, app_functions, describe
from localdev.host.invoke import Invoker
from localdev.host.options import HostOptions
from localdev.host.outputs import StorageQueues
from localdev.host.queues import QueueStats, QueueWorker
from localdev.host.timers import TimerScheduler
from shared.errors import ConfigurationError

if TYPE_CHECKING:
    import azure.functions as func

logger = logging.getLogger("localdev.host")

FUNCTION_KEY_SETTING = "MCAS_LOCAL_FUNCTION_KEY"


class LocalHost:
    """A development stand-in for the Functions host (not a second runtime).

    `env` is where app settings come from (default: `os.environ`, read when a piece starts). `host_json` is a
    path or an already-parsed mapping; without it the Functions host's defaults apply.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        env: Mapping[str, str] | None = None,
        host_json: Path | Mapping[str, Any] | None = None,
        port: int = 0,
        function_key: str | None = None,
        function_directory: Path | None = None,
    ) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.options = HostOptions.load(host_json)
        configured_key = function_key or self.env.get(FUNCTION_KEY_SETTING)
        self.key_generated = not configured_key
        self.function_key = configured_key or secrets.token_urlsafe(32)
        self.port = port
        self.functions: dict[str, FunctionSpec] = {}
        for function in app_functions(app):
            spec = describe(function)
            self.functions[spec.name] = spec
            if spec.unsupported:
                logger.warning("function %s is not runnable locally: %s", spec.name, spec.unsupported)
        self._invoker = Invoker(
            timeout=self.options.function_timeout, function_directory=str(function_directory or ".")
        )
        self._storage: StorageQueues | None = None
        self._queues: QueueWorker | None = None
        self._timers: TimerScheduler | None = None
        self._http: HttpFrontend | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self, *, http: bool = True, queues: bool = True, timers: bool = True) -> LocalHost:
        """Serve HTTP and, unless disabled, poll queues and fire timers in background threads.

        Whatever fails to start (a busy port, a missing setting) stops the pieces already started.
        """
        self._stop.clear()
        try:
            if http and self._of_kind("http"):
                self._start_http()
            if self._of_kind("queue"):
                worker = self._queue_worker()
                worker.ensure_queues()  # as the Functions host does, even if drain_queues() polls
                if queues:
                    self._spawn("localhost-queues", worker.run_forever)
            if timers and self._of_kind("timer"):
                self._spawn("localhost-timers", self._timer_scheduler().run_forever)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._http is not None:
            self._http.stop()
            self._http = None
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        if self._queues is not None:
            self._queues.close()
            self._queues = None
        if self._storage is not None:
            self._storage.close()
            self._storage = None
        self._invoker.close()

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- on request ------------------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        """Base URL of the HTTP server (routes live under `/api/...`)."""
        if self._http is None:
            raise ConfigurationError(
                "LocalHost", "has no HTTP server running (start() it with http functions)"
            )
        return f"http://127.0.0.1:{self._http.port}"

    @property
    def api_url(self) -> str:
        prefix = f"/{self.options.route_prefix}" if self.options.route_prefix else ""
        return f"{self.http_url}{prefix}"

    def run_timer(self, name: str, *, past_due: bool = False) -> None:
        """Invoke a timer function once, now; its exception propagates."""
        if name not in self.functions or self.functions[name].kind != "timer":
            timers = ", ".join(s.name for s in self._of_kind("timer")) or "none"
            raise ConfigurationError("--run-timer", f"{name!r} is not a timer function (timers: {timers})")
        self._timer_scheduler().run(name, past_due=past_due)

    def drain_queues(self, timeout: float = 10.0) -> QueueStats:
        """Process queue messages until all trigger queues are empty; counts for this drain only."""
        worker = self._queue_worker()
        worker.ensure_queues()
        return worker.drain(timeout)

    def summary(self) -> list[str]:
        return [spec.summary() for spec in self.functions.values()]

    # -- internals -------------------------------------------------------------------------------------------
    def _of_kind(self, kind: str) -> list[FunctionSpec]:
        return [spec for spec in self.functions.values() if spec.kind == kind]

    def _start_http(self) -> None:
        specs = self._of_kind("http")
        try:
            self._http = HttpFrontend(
                specs,
                invoker=self._invoker,
                function_key=self.function_key,
                route_prefix=self.options.route_prefix,
                queues=self._storage_queues() if any(s.outputs for s in specs) else None,
                port=self.port,
            )
        except OSError as exc:
            raise ConfigurationError(
                "port", f"{self.port} on 127.0.0.1 cannot be used ({exc.strerror})"
            ) from None
        self._http.start()

    def _storage_queues(self) -> StorageQueues:
        if self._storage is None:
            self._storage = StorageQueues(self.env, self.options.message_encoding)
        return self._storage

    def _queue_worker(self) -> QueueWorker:
        if self._queues is None:
            self._queues = QueueWorker(
                self._of_kind("queue"),
                options=self.options,
                queues=self._storage_queues(),
                invoker=self._invoker,
            )
        return self._queues

    def _timer_scheduler(self) -> TimerScheduler:
        if self._timers is None:
            self._timers = TimerScheduler(self._of_kind("timer"), env=self.env, invoker=self._invoker)
        return self._timers

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
