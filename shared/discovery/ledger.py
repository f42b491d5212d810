"""The upload ledger (table `mcasUploads`): idempotency and a record of every upload.

Two kinds of rows:
- content rows, keyed by what was uploaded - PartitionKey = SHA-256 of the bytes sent, RowKey = tenant, source
  and data source - one per uploaded file (or part), with file, size, sha256, source, stream, snapshot, start,
  end and outcome. A part whose bytes were already finalized for the same source and data source is not
  finalized again (`done_upload` would feed the same events twice).
- origin rows, keyed by where the bytes came from (blob URL + ETag, or local path + size + mtime) and the
  same target: a redelivered job finds its origin row "uploaded" and is acknowledged without reading the blob
  again.
  An origin row "in_progress" with a fresh lease means another worker is uploading it right now.
The SHA-256 is only known after the bytes were streamed, hence the origin rows for the cheap early check.
Upload URLs are stored without their query string (the SAS is a credential).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from shared.errors import TransientError

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)

UPLOADED = "uploaded"
IN_PROGRESS = "in_progress"
FAILED = "failed"
ORIGIN_PARTITION = "origin"


class UploadInProgress(TransientError):
    """Another worker holds a fresh claim on this file; retry later (by then it is usually done)."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Target:
    """Where content goes: the idempotency key besides the bytes themselves."""

    tenant: str
    source: str
    stream: str

    @property
    def row_key(self) -> str:
        # RowKey may not contain / \ # ? or control characters: percent-encode the free-text stream name.
        return f"{self.tenant}|{self.source}|{quote(self.stream, safe='')}"


@dataclass
class UploadRecord:
    """One finalized (or failed) upload of one file or part."""

    file: str
    size: int
    sha256: str
    source: str
    stream: str
    snapshot: bool
    tenant: str
    start: str
    end: str
    outcome: str
    part: int = 1
    parts: int = 1
    origin: str = ""
    upload_host: str = ""
    attempts: int = 1
    error: str = ""


@dataclass
class OriginRecord:
    identity: str
    file: str
    source: str
    stream: str
    tenant: str
    snapshot: bool
    outcome: str
    claim: str = ""
    claimed_at: float = 0.0
    size: int = 0
    sha256: str = ""
    parts: int = 0
    start: str = ""
    end: str = ""
    error: str = ""
    plan_bytes: int = 0  # the per-file limit the parts were planned with (a resume needs the same plan)
    part_hashes: list[str] = field(default_factory=list)  # by part; "" = not finalized yet


def origin_key(identity: str, target: Target) -> str:
    return hashlib.sha256(f"{target.row_key}\n{identity}".encode()).hexdigest()


class Ledger(Protocol):
    def get_origin(self, key: str) -> OriginRecord | None: ...

    def claim_origin(self, key: str, record: OriginRecord, *, lease_s: float) -> None:
        """Mark the origin in progress (raise `UploadInProgress` if another fresh claim holds it)."""
        ...

    def finish_origin(self, key: str, record: OriginRecord) -> None: ...

    def get_content(self, sha256: str, target: Target) -> UploadRecord | None: ...

    def put_content(self, record: UploadRecord) -> None: ...


class MemoryLedger:
    """In-process ledger: unit tests, and `mcasctl` runs without a storage account."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.origins: dict[str, OriginRecord] = {}
        self.contents: dict[tuple[str, str], UploadRecord] = {}

    def get_origin(self, key: str) -> OriginRecord | None:
        with self._lock:
            return self.origins.get(key)

    def claim_origin(self, key: str, record: OriginRecord, *, lease_s: float) -> None:
        with self._lock:
            current = self.origins.get(key)
            if current is not None and _claim_is_live(current, record, lease_s):
                raise UploadInProgress(f"{record.file} is being uploaded by another worker")
            self.origins[key] = record

    def finish_origin(self, key: str, record: OriginRecord) -> None:
        with self._lock:
            self.origins[key] = record

    def get_content(self, sha256: str, target: Target) -> UploadRecord | None:
        with self._lock:
            return self.contents.get((sha256, target.row_key))

    def put_content(self, record: UploadRecord) -> None:
        with self._lock:
            target = Target(record.tenant, record.source, record.stream)
            self.contents[(record.sha256, target.row_key)] = record


def _claim_is_live(current: OriginRecord, mine: OriginRecord, lease_s: float) -> bool:
    return (
        current.outcome == IN_PROGRESS
        and current.claim != mine.claim
        and time.time() - current.claimed_at < lease_s
    )


def new_claim() -> str:
    return uuid.uuid4().hex


class TableLedger:
    """The ledger in Azure Table storage; claims are ETag-conditional, so two workers never both upload."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    @classmethod
    def default(cls) -> TableLedger:
        from shared.storage import TABLE_UPLOADS, table_client

        return cls(table_client(TABLE_UPLOADS))

    def get_origin(self, key: str) -> OriginRecord | None:
        entity = self._get(ORIGIN_PARTITION, key)
        return None if entity is None else _origin_from(entity)

    def claim_origin(self, key: str, record: OriginRecord, *, lease_s: float) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        entity = _origin_entity(key, record)
        try:
            self._table.create_entity(entity)
            return
        except ResourceExistsError:
            pass
        current = self._table.get_entity(ORIGIN_PARTITION, key)
        if _claim_is_live(_origin_from(current), record, lease_s):
            raise UploadInProgress(f"{record.file} is being uploaded by another worker")
        try:
            self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            raise UploadInProgress(f"{record.file} was claimed by another worker just now") from None

    def finish_origin(self, key: str, record: OriginRecord) -> None:
        from azure.data.tables import UpdateMode

        self._table.upsert_entity(_origin_entity(key, record), mode=UpdateMode.REPLACE)

    def get_content(self, sha256: str, target: Target) -> UploadRecord | None:
        entity = self._get(sha256, target.row_key)
        if entity is None:
            return None
        known = UploadRecord.__dataclass_fields__
        return UploadRecord(**{k: _plain(v) for k, v in entity.items() if k in known})

    def put_content(self, record: UploadRecord) -> None:
        from azure.data.tables import UpdateMode

        target = Target(record.tenant, record.source, record.stream)
        entity = {"PartitionKey": record.sha256, "RowKey": target.row_key, **asdict(record)}
        entity["size"] = _int64(record.size)
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def _get(self, partition: str, row: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None


def _int64(value: int) -> Any:
    from azure.data.tables import EdmType, EntityProperty

    return EntityProperty(value, EdmType.INT64)


def _plain(value: Any) -> Any:
    """Int64 columns come back wrapped; unwrap to the Python value."""
    return getattr(value, "value", value)


def _origin_entity(key: str, record: OriginRecord) -> dict[str, Any]:
    data = asdict(record)
    data["part_hashes"] = json.dumps(record.part_hashes)
    data["size"] = _int64(record.size)
    data["plan_bytes"] = _int64(record.plan_bytes)
    return {"PartitionKey": ORIGIN_PARTITION, "RowKey": key, **data}


def _origin_from(entity: Any) -> OriginRecord:
    known = OriginRecord.__dataclass_fields__
    data = {k: _plain(v) for k, v in entity.items() if k in known}
    raw_hashes = data.get("part_hashes") or "[]"
    data["part_hashes"] = json.loads(raw_hashes) if isinstance(raw_hashes, str) else list(raw_hashes)
    return OriginRecord(**data)
