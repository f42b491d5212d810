"""Per-tenant alert checkpoints in Azure Table storage, with ETag concurrency and a delivery lease.

A checkpoint says "every alert created before `watermark_ms`, and the ones listed in `ids_at_watermark`
(created exactly at `watermark_ms`), have been delivered". Many alerts can share a millisecond, so a timestamp
alone would either skip or repeat some (`last + 1 ms` loses alerts, `gte last` repeats them).

Two runs of the same tenant (an overlapping timer, a manual `mcasctl alerts pull`) must never deliver the
same page twice nor move the watermark backwards. Every write is conditional on the ETag read, and a run
holds a lease (owner + expiry) in the same entity, renewed with every page commit: a run that finds another
live lease stops (or waits), and before delivering a page with less than half its lease left a run renews
it conditionally, so a run whose lease expired and was taken over finds out before it delivers anything.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import TerminalError, TransientError
from shared.timeparse import iso_from_ms

if TYPE_CHECKING:
    from azure.data.tables import TableClient

STREAM_SCHEDULED = "alerts"
STREAM_ADHOC = "alerts-adhoc"
STREAM_CHANGES = "alerts-changes"  # MDA closures and status changes, by resolution date
STREAM_GRAPH = "alerts-graph"  # Microsoft Graph alerts_v2, by lastUpdateDateTime
_IDS_CHUNK_CHARS = 30_000  # Table string properties hold 32K UTF-16 characters


class CheckpointConflict(TransientError):
    """Another run wrote the checkpoint since we read it (412/409); this run must stop without delivering."""


class CheckpointRegression(RuntimeError):
    """A programming error: an attempt to move a watermark backwards."""


# How far ahead of this machine's clock a watermark may be (server and worker clocks differ a little).
CLOCK_SKEW_S = 300.0


class FutureCheckpointError(TerminalError):
    """A watermark beyond now: every later pull would ask for alerts created in the future and deliver
    nothing, silently. Refused on write; a stored one makes every run fail loudly until it is repaired."""


def future_problem(watermark_ms: int, *, now_s: float) -> str | None:
    """Why `watermark_ms` is unacceptable as a checkpoint, or None when it is not beyond now (+ skew)."""
    if watermark_ms <= (now_s + CLOCK_SKEW_S) * 1000:
        return None
    return (
        f"its watermark {iso_from_ms(watermark_ms)} is in the future (now {iso_from_ms(int(now_s * 1000))}): "
        "no alert would ever be delivered"
    )


def refuse_future(stream: str, key: str, checkpoint: Checkpoint, *, now_s: float) -> None:
    problem = future_problem(checkpoint.watermark_ms, now_s=now_s)
    if problem is not None:
        raise FutureCheckpointError(
            f"checkpoint {stream}/{key}: {problem}; repair it with `mcasctl alerts checkpoint set --since "
            f"TIME --tenant {key}` or `mcasctl alerts checkpoint reset --tenant {key}`"
        )


@dataclass(frozen=True)
class Checkpoint:
    watermark_ms: int
    ids_at_watermark: frozenset[str] = frozenset()
    lease_owner: str | None = None
    lease_until: float = 0.0  # epoch seconds
    delivered_total: int = 0
    pages_total: int = 0
    complete: bool = False  # ad-hoc jobs: the window is fully delivered
    etag: str | None = field(default=None, compare=False)

    def advanced(self, delivered: Iterable[tuple[str, int]]) -> Checkpoint:
        """The checkpoint after (id, timestamp_ms) pairs were delivered. Never earlier than self."""
        items = list(delivered)
        if not items:
            return self
        # Alerts older than the watermark (a server returning more than asked) never move it back.
        newest = max(self.watermark_ms, *(ts for _, ts in items))
        at_newest = {i for i, ts in items if ts == newest}
        ids = (self.ids_at_watermark | at_newest) if newest == self.watermark_ms else frozenset(at_newest)
        return replace(
            self,
            watermark_ms=newest,
            ids_at_watermark=frozenset(ids),
            delivered_total=self.delivered_total + len(items),
            pages_total=self.pages_total + 1,
        )

    def leased(self, owner: str, until: float) -> Checkpoint:
        return replace(self, lease_owner=owner, lease_until=until)

    def released(self) -> Checkpoint:
        return replace(self, lease_owner=None, lease_until=0.0)

    def lease_held_by_other(self, owner: str, now: float) -> bool:
        return self.lease_owner not in (None, owner) and self.lease_until > now

    def covers(self, alert_id: str, timestamp_ms: int) -> bool:
        """True when this alert was already delivered."""
        return timestamp_ms < self.watermark_ms or (
            timestamp_ms == self.watermark_ms and alert_id in self.ids_at_watermark
        )


def check_monotonic(old: Checkpoint, new: Checkpoint) -> None:
    if new.watermark_ms < old.watermark_ms:
        raise CheckpointRegression(f"watermark would move back from {old.watermark_ms} to {new.watermark_ms}")


class CheckpointStore(Protocol):
    def load(self, stream: str, key: str) -> Checkpoint | None: ...

    def save(self, stream: str, key: str, checkpoint: Checkpoint) -> Checkpoint:
        """Write conditionally on `checkpoint.etag` (None: only if absent); return it with the new ETag.

        Raises CheckpointConflict when another writer got there first, FutureCheckpointError (nothing
        written) when the watermark lies beyond now.
        """
        ...


def _to_entity(stream: str, key: str, cp: Checkpoint) -> dict[str, Any]:
    ids = ",".join(sorted(cp.ids_at_watermark))
    chunks = [ids[i : i + _IDS_CHUNK_CHARS] for i in range(0, len(ids), _IDS_CHUNK_CHARS)] or [""]
    entity: dict[str, Any] = {
        "PartitionKey": stream,
        "RowKey": key,
        "watermark_ms": str(cp.watermark_ms),
        "watermark_iso": dt.datetime.fromtimestamp(cp.watermark_ms / 1000, tz=dt.UTC).isoformat(),
        "ids_chunks": len(chunks),
        "ids_count": len(cp.ids_at_watermark),
        "lease_owner": cp.lease_owner or "",
        "lease_until": float(cp.lease_until),
        "delivered_total": str(cp.delivered_total),
        "pages_total": str(cp.pages_total),
        "complete": cp.complete,
    }
    for index, chunk in enumerate(chunks):
        entity[f"ids_{index}"] = chunk
    return entity


def _from_entity(entity: Any, etag: str | None) -> Checkpoint:
    chunks = int(entity.get("ids_chunks") or 0)
    ids = "".join(str(entity.get(f"ids_{i}") or "") for i in range(chunks))
    return Checkpoint(
        watermark_ms=int(entity["watermark_ms"]),
        ids_at_watermark=frozenset(i for i in ids.split(",") if i),
        lease_owner=str(entity.get("lease_owner") or "") or None,
        lease_until=float(entity.get("lease_until") or 0.0),
        delivered_total=int(entity.get("delivered_total") or 0),
        pages_total=int(entity.get("pages_total") or 0),
        complete=bool(entity.get("complete", False)),
        etag=etag,
    )


class TableCheckpointStore:
    """Checkpoints as Table entities (PartitionKey = stream, RowKey = tenant or job key)."""

    def __init__(self, table: TableClient, *, now: Callable[[], float] = time.time) -> None:
        self._table = table
        self._now = now

    def load(self, stream: str, key: str) -> Checkpoint | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self._table.get_entity(stream, key)
        except ResourceNotFoundError:
            return None
        return _from_entity(entity, entity.metadata.get("etag"))

    def save(self, stream: str, key: str, checkpoint: Checkpoint) -> Checkpoint:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        refuse_future(stream, key, checkpoint, now_s=self._now())
        entity = _to_entity(stream, key, checkpoint)
        try:
            if checkpoint.etag is None:
                meta = self._table.create_entity(entity)
            else:
                meta = self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=checkpoint.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
            raise CheckpointConflict(f"checkpoint {stream}/{key} was changed by another run") from exc
        return replace(checkpoint, etag=str(meta.get("etag")))

    def delete(self, stream: str, key: str, *, etag: str | None) -> bool:
        """Remove the checkpoint (only if unchanged since read with `etag`); False when there was none."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        try:
            if etag is None:
                self._table.delete_entity(stream, key)
            else:
                self._table.delete_entity(
                    stream, key, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except ResourceNotFoundError:
            return False
        except ResourceModifiedError as exc:
            raise CheckpointConflict(f"checkpoint {stream}/{key} was changed by another run") from exc
        return True


class MemoryCheckpointStore:
    """Same semantics in memory (unit tests, `mcasctl` dry runs)."""

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        self._rows: dict[tuple[str, str], tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._version = 0
        self._now = now
        self.writes = 0

    def load(self, stream: str, key: str) -> Checkpoint | None:
        with self._lock:
            row = self._rows.get((stream, key))
        if row is None:
            return None
        return _from_entity(json.loads(row[0]), f"v{row[1]}")

    def save(self, stream: str, key: str, checkpoint: Checkpoint) -> Checkpoint:
        refuse_future(stream, key, checkpoint, now_s=self._now())
        with self._lock:
            current = self._rows.get((stream, key))
            current_etag = f"v{current[1]}" if current else None
            if current_etag != checkpoint.etag:
                raise CheckpointConflict(f"checkpoint {stream}/{key} was changed by another run")
            self._version += 1
            self._rows[(stream, key)] = (json.dumps(_to_entity(stream, key, checkpoint)), self._version)
            self.writes += 1
            return replace(checkpoint, etag=f"v{self._version}")

    def delete(self, stream: str, key: str, *, etag: str | None) -> bool:
        with self._lock:
            current = self._rows.get((stream, key))
            if current is None:
                return False
            if etag is not None and f"v{current[1]}" != etag:
                raise CheckpointConflict(f"checkpoint {stream}/{key} was changed by another run")
            del self._rows[(stream, key)]
            return True


def checkpoint_store() -> CheckpointStore:
    """The worker's store over `TABLE_CHECKPOINTS` (storage SDKs imported on first use)."""
    from shared.storage import TABLE_CHECKPOINTS, table_client

    return TableCheckpointStore(table_client(TABLE_CHECKPOINTS))
