"""Job records in Table storage (`TABLE_JOBS`): status, result, attribution, timestamps.

One entity per job (PartitionKey = job id, RowKey = "job"), so every read and write is a point operation and
jobs never contend for a partition. Every change goes through `update()`, an ETag-checked read-modify-write
loop, so two deliveries of one message (or a worker and the poison handler) cannot overwrite each other, and a
finished job never moves back to `running`.

Status flow: queued -> running -> succeeded | failed; queued/running -> queued (a transient failure, retried
by the queue); any unfinished state -> dead_lettered (the poison handler). An operator's replay of a dead
letter may run a `dead_lettered` job again.

Results above `INLINE_RESULT_CHARS` go to a blob (`CONTAINER_JOB_RESULTS/<job id>.json`) because a Table
property holds at most 64 KiB. A user's sealed assertion is stored only until the job finishes (see
shared/jobs/sealing.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from shared.errors import TransientError

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed", "dead_lettered"]
STATUSES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed", "dead_lettered")
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "dead_lettered"})
ROW_KEY = "job"
INLINE_RESULT_CHARS = 30_000
CONTAINER_JOB_RESULTS = "mcas-job-results"
_UPDATE_ATTEMPTS = 8


class TableLike(Protocol):
    """The slice of `azure.data.tables.TableClient` the stores use (tests substitute an in-memory table)."""

    def create_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any: ...
    def get_entity(self, partition_key: str, row_key: str, **kwargs: Any) -> Any: ...
    def update_entity(self, entity: dict[str, Any], mode: Any = ..., **kwargs: Any) -> Any: ...
    def delete_entity(self, *args: Any, **kwargs: Any) -> None: ...


class BlobStore(Protocol):
    def put(self, name: str, data: bytes) -> None: ...
    def get(self, name: str) -> bytes | None: ...


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    action: str
    spec: dict[str, Any]
    status: JobStatus
    correlation_id: str
    context: str  # "application" | "user"
    requested_by: dict[str, Any]
    created_at: str
    updated_at: str
    tenant: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    callback: dict[str, Any] | None = None
    sealed_assertion: str | None = field(default=None, repr=False)
    assertion_expires_at: int | None = None
    owner: str | None = None  # Principal.scope_key of the submitter (job visibility)
    etag: str | None = field(default=None, compare=False, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_entity(self, *, result_ref: str | None = None, result_json: str | None = None) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.job_id,
            "RowKey": ROW_KEY,
            "action": self.action,
            "specJson": json.dumps(self.spec, separators=(",", ":")),
            "status": self.status,
            "correlationId": self.correlation_id,
            "context": self.context,
            "requestedByJson": json.dumps(self.requested_by, separators=(",", ":")),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "attempts": self.attempts,
        }
        optional: dict[str, Any] = {
            "tenant": self.tenant,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "errorJson": _dump(self.error),
            "callbackJson": _dump(self.callback),
            "sealedAssertion": self.sealed_assertion,
            "assertionExpiresAt": self.assertion_expires_at,
            "owner": self.owner,
            "resultJson": result_json,
            "resultBlob": result_ref,
        }
        entity.update({k: v for k, v in optional.items() if v is not None})
        return entity

    @classmethod
    def from_entity(cls, entity: Any, *, result: dict[str, Any] | None) -> JobRecord:
        metadata = getattr(entity, "metadata", None) or {}
        return cls(
            job_id=str(entity["PartitionKey"]),
            action=str(entity.get("action", "")),
            spec=json.loads(entity.get("specJson") or "{}"),
            status=entity.get("status", "queued"),
            correlation_id=str(entity.get("correlationId", "")),
            context=str(entity.get("context", "application")),
            requested_by=json.loads(entity.get("requestedByJson") or "{}"),
            created_at=str(entity.get("createdAt", "")),
            updated_at=str(entity.get("updatedAt", "")),
            tenant=entity.get("tenant") or None,
            started_at=entity.get("startedAt") or None,
            finished_at=entity.get("finishedAt") or None,
            attempts=int(entity.get("attempts") or 0),
            result=result,
            error=_load(entity.get("errorJson")),
            callback=_load(entity.get("callbackJson")),
            sealed_assertion=entity.get("sealedAssertion") or None,
            assertion_expires_at=_int_or_none(entity.get("assertionExpiresAt")),
            owner=entity.get("owner") or None,
            etag=metadata.get("etag"),
        )


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _load(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    loaded = json.loads(value)
    return loaded if isinstance(loaded, dict) else None


def _int_or_none(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


class JobConflict(Exception):
    """`create` found a job with this id already (ids are random UUIDs: effectively never)."""


class JobStore:
    """CRUD for job records over a Table (plus a blob store for large results)."""

    def __init__(self, table: TableLike, blobs: BlobStore | None = None) -> None:
        self._table = table
        self._blobs = blobs

    def create(self, record: JobRecord) -> JobRecord:
        from azure.core.exceptions import ResourceExistsError

        entity = self._entity(record)
        try:
            meta = self._table.create_entity(entity)
        except ResourceExistsError:
            raise JobConflict(record.job_id) from None
        return replace(record, etag=_etag(meta))

    def get(self, job_id: str) -> JobRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self._table.get_entity(job_id, ROW_KEY)
        except ResourceNotFoundError:
            return None
        return JobRecord.from_entity(entity, result=self._result_of(entity))

    def update(self, job_id: str, change: Callable[[JobRecord], JobRecord | None]) -> JobRecord | None:
        """Apply `change` under optimistic concurrency; it returns the new record, or None to leave it as is.

        Returns the stored record (new or unchanged), or None when the job does not exist.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError
        from azure.data.tables import UpdateMode

        for _ in range(_UPDATE_ATTEMPTS):
            current = self.get(job_id)
            if current is None:
                return None
            updated = change(current)
            if updated is None:
                return current
            try:
                meta = self._table.update_entity(
                    self._entity(updated),
                    mode=UpdateMode.REPLACE,
                    etag=current.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:
                continue  # someone else changed it first: re-read and re-decide
            return replace(updated, etag=_etag(meta))
        raise TransientError(f"job {job_id} kept changing under concurrent updates")

    # -- results --------------------------------------------------------------------------------------------

    def _entity(self, record: JobRecord) -> dict[str, Any]:
        if record.result is None:
            return record.to_entity()
        text = json.dumps(record.result, separators=(",", ":"), default=str)
        if len(text) <= INLINE_RESULT_CHARS or self._blobs is None:
            return record.to_entity(result_json=text)
        name = f"{record.job_id}.json"
        self._blobs.put(name, text.encode("utf-8"))
        return record.to_entity(result_ref=name)

    def _result_of(self, entity: Any) -> dict[str, Any] | None:
        inline = entity.get("resultJson")
        if inline:
            return _load(inline)
        ref = entity.get("resultBlob")
        if ref and self._blobs is not None:
            data = self._blobs.get(str(ref))
            return _load(data.decode("utf-8")) if data else None
        return None


def _etag(meta: Any) -> str | None:
    if isinstance(meta, dict):
        value = meta.get("etag")
        return str(value) if value else None
    return None


class ContainerBlobs:
    """`BlobStore` over a blob container (results too large for a Table property)."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def put(self, name: str, data: bytes) -> None:
        self._container.upload_blob(name, data, overwrite=True)

    def get(self, name: str) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            data: bytes = self._container.download_blob(name).readall()
        except ResourceNotFoundError:
            return None
        return data


def default_job_store() -> JobStore:
    """The worker's store over Azure Storage (`TABLE_JOBS`, `CONTAINER_JOB_RESULTS`)."""
    from shared.storage import TABLE_JOBS, container_client, table_client

    return JobStore(table_client(TABLE_JOBS), ContainerBlobs(container_client(CONTAINER_JOB_RESULTS)))
