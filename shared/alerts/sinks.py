"""Where delivered alerts go: a storage queue, blob NDJSON, a signed SOAR webhook, a Log Analytics table
through the Logs Ingestion API (`logs_sink.py`; any mix), or a file.

A page is delivered to every configured sink before its checkpoint is committed; a sink that does not accept
the page raises `SinkError` and the page is redelivered by a later run. So every sink sees each alert at least
once, and each is built to make redelivery harmless:
- blob: one blob per page with a deterministic name - a redelivered page overwrites itself;
- webhook: `webhook-id` is stable per page (Standard Webhooks), so receivers drop redeliveries;
- logs: rows carry `AlertId` and `AlertVersion`, on which queries dedupe (see `logs_sink.py`);
- queue: one message per alert carrying the alert `id`, which consumers use to drop duplicates (a queue cannot
  deduplicate), and it runs last so a failing idempotent sink never causes queue duplicates.
Each alert is JSON-encoded once per page and the bytes are shared by all sinks.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shared.alerts.model import NormalizedAlert
from shared.errors import TransientError

if TYPE_CHECKING:
    from shared.outbound.addresses import Resolver
    from shared.outbound.pinned import Poster

log = logging.getLogger(__name__)

QUEUE_MESSAGE_MAX_BYTES = 48 * 1024  # 64 KiB message limit after base64 (4/3) encoding
# One encoder for every alert (json.dumps with options builds one per call); alert records are trees, so
# the circular-reference bookkeeping is skipped.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
WEBHOOK_EVENT_TYPE = "mcas.alerts.page"


class SinkError(TransientError):
    """A sink did not accept a page; the page is not committed and will be delivered again."""

    def __init__(self, sink: str, message: str) -> None:
        self.sink = sink
        super().__init__(f"{sink} sink: {message}")


@dataclass(frozen=True)
class AlertBatch:
    """One page of new alerts for one tenant, encoded once."""

    tenant: str
    stream: str
    key: str  # deterministic per page content: the blob name and webhook-id derive from it
    alerts: Sequence[NormalizedAlert]
    lines: Sequence[str] = field(default=(), repr=False)  # JSON per alert, same order

    @classmethod
    def build(cls, tenant: str, stream: str, key: str, alerts: Sequence[NormalizedAlert]) -> AlertBatch:
        encode = _ENCODER.encode
        return cls(tenant, stream, key, alerts, [encode(a) for a in alerts])

    @property
    def first_ms(self) -> int:
        return min(a["timestamp_ms"] for a in self.alerts)

    @property
    def last_ms(self) -> int:
        return max(a["timestamp_ms"] for a in self.alerts)

    def ndjson(self) -> bytes:
        return "\n".join([*self.lines, ""]).encode("utf-8")


class Sink(Protocol):
    name: str
    order: int  # lower runs first: idempotent sinks before the queue

    def deliver(self, batch: AlertBatch, *, deadline: float | None) -> None: ...


def deliver_all(sinks: Sequence[Sink], batch: AlertBatch, *, deadline: float | None) -> None:
    for sink in sorted(sinks, key=lambda s: s.order):
        sink.deliver(batch, deadline=deadline)


class QueueSink:
    """One base64 message per alert on `mcas-alerts`; an alert too big for a message goes to a blob."""

    name = "queue"
    order = 90

    def __init__(self, queue: Any = None, payloads: Any = None, *, max_workers: int = 8) -> None:
        self._queue = queue
        self._payloads = payloads
        self._max_workers = max_workers

    def _queue_client(self) -> Any:
        if self._queue is None:
            from shared.storage import QUEUE_ALERTS, queue_client

            self._queue = queue_client(QUEUE_ALERTS)
        return self._queue

    def _payload_container(self) -> Any:
        if self._payloads is None:
            from shared.storage import CONTAINER_ALERT_PAYLOADS, container_client

            self._payloads = container_client(CONTAINER_ALERT_PAYLOADS)
        return self._payloads

    def message_for(self, alert: NormalizedAlert, line: str) -> str:
        # A character is at most 4 UTF-8 bytes: only encode to measure when the text could be too big.
        if len(line) * 4 <= QUEUE_MESSAGE_MAX_BYTES or len(line.encode("utf-8")) <= QUEUE_MESSAGE_MAX_BYTES:
            return line
        version = alert.get("version")  # schema 2: every version of an alert has its own payload blob
        suffix = f".{version}" if version is not None else ""
        blob_name = f"{alert['tenant']}/{alert['id']}{suffix}.json"
        self._payload_container().upload_blob(
            blob_name,
            line.encode("utf-8"),
            overwrite=True,
            content_settings=_content_settings("application/json"),
        )
        reference = {
            "schema_version": alert["schema_version"],
            "id": alert["id"],
            "tenant": alert["tenant"],
            "timestamp": alert["timestamp"],
            "timestamp_ms": alert["timestamp_ms"],
            **({"version": version} if version is not None else {}),
            "title": alert["title"][:512],
            "severity": alert["severity"],
            "payload_ref": {"container": "mcas-alert-payloads", "blob": blob_name},
        }
        return json.dumps(reference, separators=(",", ":"))

    def deliver(self, batch: AlertBatch, *, deadline: float | None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        queue = self._queue_client()

        def send(index: int) -> None:
            queue.send_message(self.message_for(batch.alerts[index], batch.lines[index]))

        try:
            if len(batch.alerts) <= 2 or self._max_workers <= 1:
                for index in range(len(batch.alerts)):
                    send(index)
            else:
                with ThreadPoolExecutor(max_workers=self._max_workers) as pool:
                    list(pool.map(send, range(len(batch.alerts))))
        except Exception as exc:
            raise SinkError(self.name, f"enqueue failed ({type(exc).__name__})") from exc


class BlobSink:
    """NDJSON, one blob per page: `<tenant>/<stream>/<yyyy>/<mm>/<dd>/<first ms>-<page key>.ndjson`."""

    name = "blob"
    order = 10

    def __init__(self, container: Any = None) -> None:
        self._container = container

    def _client(self) -> Any:
        if self._container is None:
            from shared.storage import CONTAINER_ALERTS, container_client

            self._container = container_client(CONTAINER_ALERTS)
        return self._container

    @staticmethod
    def blob_name(batch: AlertBatch) -> str:
        first = batch.alerts[0]["timestamp"]  # ISO: 2025-01-31T...
        day = f"{first[0:4]}/{first[5:7]}/{first[8:10]}"
        return f"{batch.tenant}/{batch.stream}/{day}/{batch.first_ms}-{batch.key}.ndjson"

    def deliver(self, batch: AlertBatch, *, deadline: float | None) -> None:
        try:
            self._client().upload_blob(
                self.blob_name(batch),
                batch.ndjson(),
                overwrite=True,
                content_settings=_content_settings("application/x-ndjson"),
                metadata={"tenant": batch.tenant, "alerts": str(len(batch.alerts)), "page": batch.key},
            )
        except Exception as exc:
            raise SinkError(self.name, f"upload failed ({type(exc).__name__})") from exc


class FileSink:
    """`mcasctl alerts pull|export --out FILE.ndjson`: appended and fsynced before the checkpoint commits.

    The file only ever holds whole lines: a page that fails half-way (Ctrl-C, a full disk) is cut back off,
    and a line left incomplete by a killed process is removed when the file is next opened for appending.
    """

    name = "file"
    order = 20

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def deliver(self, batch: AlertBatch, *, deadline: float | None) -> None:
        data = batch.ndjson()
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    start = os.fstat(fd).st_size
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view) :]
                        os.fsync(fd)
                    except BaseException:
                        os.ftruncate(fd, start)  # never leave half a page (or half a line) behind
                        raise
                finally:
                    os.close(fd)
        except OSError as exc:
            raise SinkError(self.name, f"cannot write {self.path.name} ({exc.strerror})") from exc


def trim_partial_line(path: Path) -> int:
    """Cut a trailing incomplete line (a process killed mid-write) off `path`; return the bytes removed."""
    with path.open("r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            step = min(65536, end)
            handle.seek(end - step)
            chunk = handle.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = end - step + newline + 1
                break
            end -= step
        if end < size:
            handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
        return size - end


class WebhookSink:
    """HTTPS POST of the page as one JSON event through the shared signed sender (shared/outbound/sender.py):
    Standard Webhooks signed, retried on 408/429/5xx/network within the run's deadline, the secret re-read
    after a 401, the connection pinned to the address the receiver's name resolved to.

    `webhook-id` is `msg_<page key>`: the same page always carries the same id, whichever run delivers it.
    """

    name = "webhook"
    order = 30

    def __init__(
        self,
        url: str,
        key: Callable[[bool], bytes],
        *,
        allow_loopback: bool = False,
        poster: Poster | None = None,
        resolve: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        now: Callable[[], float] = time.time,
    ) -> None:
        from shared.outbound.sender import ALERT_WEBHOOK, SignedSender

        self.url = url
        # key(refresh) -> secret bytes; refresh=True re-reads after a 401 (rotation)
        self._sender = SignedSender.build(
            ALERT_WEBHOOK,
            lambda refresh: [key(refresh)],
            allow_loopback=allow_loopback,
            poster=poster,
            resolve=resolve,
            rng=rng,
            clock=clock,
            sleep=sleep,
            now=now,
        )
        self.deliveries = 0

    @staticmethod
    def body(batch: AlertBatch, *, timestamp: str) -> bytes:
        head = json.dumps({"type": WEBHOOK_EVENT_TYPE, "timestamp": timestamp}, separators=(",", ":"))[
            :-1
        ]  # drop the closing brace and append data by hand: the alerts are already encoded
        data_head = json.dumps(
            {"tenant": batch.tenant, "stream": batch.stream, "page": batch.key, "count": len(batch.alerts)},
            separators=(",", ":"),
        )[:-1]
        return f'{head},"data":{data_head},"alerts":[{",".join(batch.lines)}]}}}}'.encode()

    def deliver(self, batch: AlertBatch, *, deadline: float | None) -> None:
        from shared.timeparse import iso_from_ms

        payload = self.body(batch, timestamp=iso_from_ms(batch.last_ms))
        outcome = self._sender.send(self.url, payload, msg_id=f"msg_{batch.key}", deadline=deadline)
        if outcome.delivered:
            self.deliveries += 1
            return
        problem = outcome.detail or "not delivered"
        if outcome.stopped == "attempts":
            problem = f"{problem} after {outcome.attempts} attempts"
        elif outcome.stopped == "deadline":
            problem = f"{problem}; no time left in this run's budget to retry"
        else:
            problem = f"{problem}; the page stays uncommitted"
        log.warning("webhook delivery of page %s failed: %s", batch.key, problem)
        raise SinkError(self.name, problem)


def _content_settings(content_type: str) -> Any:
    from azure.storage.blob import ContentSettings

    return ContentSettings(content_type=content_type)


def webhook_key_reader(secret_name: str) -> Callable[[bool], bytes]:
    """Reads the `whsec_...` secret through the auth helper's Key Vault store (cached, rotation-aware)."""

    def read(refresh: bool) -> bytes:
        from shared.auth.keyvault import secret_store
        from shared.settings import get_settings
        from shared.standard_webhooks import secret_key

        value = secret_store(get_settings()).get(secret_name, bypass_cache=refresh).value
        return secret_key(value)

    return read


def build_sinks(
    names: Sequence[str],
    *,
    webhook_url: str | None,
    webhook_secret_name: str,
    allow_loopback: bool | None = None,
) -> list[Sink]:
    """The configured sinks; the webhook sink reaches loopback receivers only with MCAS_ALLOW_LOOPBACK."""
    sinks: list[Sink] = []
    for name in names:
        if name == "queue":
            sinks.append(QueueSink())
        elif name == "blob":
            sinks.append(BlobSink())
        elif name == "webhook":
            if not webhook_url:
                raise ValueError("the webhook sink needs a URL")
            if allow_loopback is None:
                from shared.settings import get_settings

                allow_loopback = get_settings().allow_loopback
            sinks.append(
                WebhookSink(
                    webhook_url, webhook_key_reader(webhook_secret_name), allow_loopback=allow_loopback
                )
            )
        elif name == "logs":
            from shared.alerts.logs_sink import logs_sink

            sinks.append(logs_sink())
    return sinks
