"""Queue triggers over Azurite with host.json semantics.

Per poll: receive up to `batchSize` messages with a lease of `functionTimeout`, run them concurrently, then
- success: send captured output-binding values to their queues, delete the message;
- failure: if `dequeue_count >= maxDequeueCount`, copy the original wire body to `<queue>-poison` and delete;
  otherwise make it visible again after `visibilityTimeout` (the next receive bumps `dequeue_count`).
Bodies are base64 on the wire unless host.json says `"messageEncoding": "none"` (local-components §2.3).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as FunctionQueueMessage
from azure.storage.queue import QueueClient, QueueMessage

from localdev.host.index import FunctionSpec, resolve_setting_expressions
from localdev.host.invoke import Invoker
from localdev.host.options import HostOptions
from localdev.host.outputs import BoundOutputs, StorageQueues, decode_body

logger = logging.getLogger("localdev.host.queues")

MIN_POLL_INTERVAL = 0.1


@dataclass
class QueueStats:
    succeeded: int = 0
    failed: int = 0  # failed invocations, including the last one before a message is poisoned
    poisoned: int = 0

    def minus(self, other: QueueStats) -> QueueStats:
        return QueueStats(
            self.succeeded - other.succeeded, self.failed - other.failed, self.poisoned - other.poisoned
        )


@dataclass(frozen=True)
class _Trigger:
    spec: FunctionSpec
    source: QueueClient
    poison: QueueClient
    outputs: BoundOutputs


class QueueWorker:
    """Polls every queue-triggered function's queue; `drain()` for tests, `run_forever()` for the host."""

    def __init__(
        self, specs: Iterable[FunctionSpec], *, options: HostOptions, queues: StorageQueues, invoker: Invoker
    ) -> None:
        self.options = options
        self.invoker = invoker
        self.stats = QueueStats()
        self._queues = queues
        self._stats_lock = threading.Lock()
        self._triggers: list[_Trigger] = []
        for spec in specs:
            name = resolve_setting_expressions(
                spec.details["queue_name"], queues.env, what=f"function {spec.name}"
            )
            connection = spec.details["connection"]
            self._triggers.append(
                _Trigger(
                    spec,
                    queues.client(connection, name),
                    queues.client(connection, f"{name}-poison"),
                    queues.bind(spec),
                )
            )
        self._executor = ThreadPoolExecutor(
            max_workers=options.batch_size, thread_name_prefix="localhost-queue"
        )

    @property
    def queue_names(self) -> list[str]:
        return [t.source.queue_name for t in self._triggers]

    def ensure_queues(self) -> None:
        """Create trigger and output queues, as the Functions host does at start-up."""
        for trigger in self._triggers:
            self._queues.ensure(trigger.source)
            trigger.outputs.ensure()

    def poll_once(self) -> int:
        """Receive one batch per trigger queue and process it; returns how many messages were handled."""
        handled = 0
        for trigger in self._triggers:
            try:
                batch = list(
                    trigger.source.receive_messages(
                        max_messages=self.options.batch_size,
                        visibility_timeout=max(1, int(self.options.function_timeout)),
                    )
                )
            except ResourceNotFoundError:
                self._queues.ensure(trigger.source)  # e.g. Azurite restarted with an empty store
                continue
            handled += len(batch)
            list(self._executor.map(functools.partial(self._handle, trigger), batch))
        return handled

    def pending(self) -> int:
        """Messages still in trigger queues, including leased (invisible) ones."""
        total = 0
        for trigger in self._triggers:
            try:
                total += trigger.source.get_queue_properties().approximate_message_count or 0
            except ResourceNotFoundError:
                continue
        return total

    def drain(self, timeout: float) -> QueueStats:
        """Process until every trigger queue is empty (retries and poisoning included), else TimeoutError."""
        before = self._snapshot()
        deadline = time.monotonic() + timeout
        while True:
            if not self.poll_once():
                pending = self.pending()
                if not pending:
                    return self._snapshot().minus(before)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{pending} message(s) still queued after {timeout:.1f} s")
                time.sleep(0.05)

    def run_forever(self, stop: threading.Event) -> None:
        """Background polling with the host's back-off: fast while busy, up to maxPollingInterval idle."""
        delay = MIN_POLL_INTERVAL
        while not stop.wait(delay):
            try:
                handled = self.poll_once()
            except AzureError as exc:  # storage down (e.g. a chaos test restarting Azurite): keep polling
                logger.warning("queue polling failed (%s); retrying", type(exc).__name__)
                handled = 0
            delay = MIN_POLL_INTERVAL if handled else min(delay * 2, self.options.max_polling_interval)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    # -- one message -----------------------------------------------------------------------------------------
    def _handle(self, trigger: _Trigger, message: QueueMessage) -> None:
        spec = trigger.spec
        dequeue_count = int(message.dequeue_count or 1)
        if dequeue_count > self.options.max_dequeue_count:
            self._poison(trigger, message, "dequeue count already above maxDequeueCount")
            return
        try:
            arguments = trigger.outputs.arguments()
            trigger_value = FunctionQueueMessage(  # type: ignore[no-untyped-call]
                id=message.id,
                body=decode_body(message.content, self._queues.encoding),
                dequeue_count=dequeue_count,
                expiration_time=_utc(message.expires_on),
                insertion_time=_utc(message.inserted_on),
                time_next_visible=_utc(message.next_visible_on),
                pop_receipt=message.pop_receipt,
            )
            result = self.invoker.call(
                spec.name, spec.user_function, {spec.trigger_arg: trigger_value, **arguments}
            )
            trigger.outputs.flush(arguments, result)
        except Exception:
            logger.exception(
                "function %s failed on message %s (dequeue count %d)", spec.name, message.id, dequeue_count
            )
            self._count(failed=1)
            if dequeue_count >= self.options.max_dequeue_count:
                self._poison(trigger, message, f"failed {dequeue_count} time(s)")
            else:
                trigger.source.update_message(
                    message.id, message.pop_receipt, visibility_timeout=int(self.options.visibility_timeout)
                )
            return
        trigger.source.delete_message(message.id, message.pop_receipt)
        self._count(succeeded=1)

    def _poison(self, trigger: _Trigger, message: QueueMessage, reason: str) -> None:
        """Copy the original wire body (still encoded) to `<queue>-poison`, then delete the source message."""
        self._queues.send_wire(trigger.poison, message.content)
        trigger.source.delete_message(message.id, message.pop_receipt)
        self._count(poisoned=1)
        logger.warning("message %s moved to %s: %s", message.id, trigger.poison.queue_name, reason)

    def _count(self, *, succeeded: int = 0, failed: int = 0, poisoned: int = 0) -> None:
        with self._stats_lock:
            self.stats.succeeded += succeeded
            self.stats.failed += failed
            self.stats.poisoned += poisoned

    def _snapshot(self) -> QueueStats:
        with self._stats_lock:
            return QueueStats(self.stats.succeeded, self.stats.failed, self.stats.poisoned)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)
