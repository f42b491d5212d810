"""Queue messages -> upload jobs. Pure parsing and validation: no storage access here.

Two shapes arrive on the discovery queue:
- an explicit job: {"action": "discovery.upload", "blob": "<container>/<blob>" or a blob URL in the app's
  own storage account, "source": "<SOURCE>", "stream": "<data source>", "snapshot": false,
  "tenant"?: "<profile>"};
- Event Grid `Microsoft.Storage.BlobCreated` events delivered to a storage queue (Event Grid or CloudEvents
  schema, one event or an array) for blobs in the configured container, named `<SOURCE>/<stream>/<file>`;
  blob metadata `mcas_source` / `mcas_stream` / `mcas_snapshot` / `mcas_tenant` fill in or override the path.
Anything malformed is a `ValidationError` whose reason says what is wrong (it goes to the dead-letter store).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from shared.discovery.sources import validate_source
from shared.errors import ValidationError
from shared.settings import is_loopback_host

ACTION = "discovery.upload"
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
# BlobCreated also fires for an ADLS Gen2 CreateFile (an empty file that is written and flushed later).
_INCOMPLETE_APIS = frozenset({"CreateFile"})
MAX_STREAM_NAME = 256
META_SOURCE, META_STREAM, META_SNAPSHOT, META_TENANT = (
    "mcas_source",
    "mcas_stream",
    "mcas_snapshot",
    "mcas_tenant",
)


@dataclass(frozen=True)
class BlobRef:
    container: str
    name: str

    def __str__(self) -> str:
        return f"{self.container}/{self.name}"


@dataclass(frozen=True)
class UploadJob:
    """A blob to upload. source/stream may still be None for events (then blob metadata must supply them)."""

    blob: BlobRef
    source: str | None
    stream: str | None
    snapshot: bool | None
    tenant: str | None
    origin: str  # "job" | "event"
    event_id: str | None = None
    correlation_id: str | None = None  # an explicit job's correlationId (log context only)


@dataclass(frozen=True)
class Skip:
    """A message that needs no upload (and no dead letter): e.g. a BlobDeleted event, an ADLS CreateFile."""

    reason: str


@dataclass(frozen=True)
class StorageAccount:
    """The app's own blob endpoint; jobs may only name blobs there (the reader never fetches foreign URLs)."""

    name: str
    url: str  # e.g. https://acct.blob.core.windows.net/ or http://127.0.0.1:10000/devstoreaccount1/


def parse_message(
    body: str | bytes,
    *,
    container: str,
    account: StorageAccount,
    extra_sources: frozenset[str] = frozenset(),
    extra_containers: frozenset[str] = frozenset(),
) -> list[UploadJob | Skip]:
    """Decode one queue message into upload jobs (or skips). Explicit jobs may name blobs in `container` and
    `extra_containers` only; events only in `container`."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise ValidationError("discovery message is not JSON") from None
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise ValidationError("discovery message is an empty list")
    allowed = frozenset({container}) | extra_containers
    return [
        _parse_item(item, container=container, account=account, extra=extra_sources, allowed=allowed)
        for item in items
    ]


def _parse_item(
    item: Any, *, container: str, account: StorageAccount, extra: frozenset[str], allowed: frozenset[str]
) -> UploadJob | Skip:
    if not isinstance(item, dict):
        raise ValidationError("discovery message must be a JSON object (a job or an Event Grid event)")
    if "action" in item:
        return _explicit_job(item, account, extra, allowed)
    event_type = item.get("eventType") or item.get("type")
    if isinstance(event_type, str) and event_type.startswith("Microsoft."):
        if event_type != BLOB_CREATED:
            return Skip(f"event type {event_type} needs no upload")
        return _blob_created(item, container=container, account=account)
    raise ValidationError(
        f'unrecognised discovery message: expected {{"action": "{ACTION}", ...}} or a {BLOB_CREATED} event'
    )


def _explicit_job(
    item: Mapping[str, Any], account: StorageAccount, extra: frozenset[str], allowed: frozenset[str]
) -> UploadJob:
    errors: dict[str, str] = {}
    if item.get("action") != ACTION:
        raise ValidationError(f"unknown action {item.get('action')!r}; this queue takes {ACTION!r}")
    unknown = set(item) - {"action", "blob", "source", "stream", "snapshot", "tenant", "correlationId"}
    if unknown:
        errors["job"] = f"unknown fields {sorted(unknown)}"
    blob: BlobRef | None = None
    try:
        blob = parse_blob_ref(item.get("blob"), account, containers=allowed)
    except ValidationError as exc:
        errors["blob"] = exc.reason
    source: str | None = None
    try:
        source = validate_source(item.get("source"), extra=extra)
    except ValidationError as exc:
        errors["source"] = exc.reason
    stream: str | None = None
    try:
        stream = validate_stream(item.get("stream"))
    except ValidationError as exc:
        errors["stream"] = exc.reason
    snapshot = item.get("snapshot", False)
    if not isinstance(snapshot, bool):
        errors["snapshot"] = f"must be true or false, got {snapshot!r}"
    tenant = item.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not tenant.strip()):
        errors["tenant"] = "must be a tenant profile name"
    if errors:
        detail = "; ".join(f"{k}: {v}" for k, v in errors.items())
        raise ValidationError(f"invalid discovery job - {detail}", field_errors=errors)
    assert blob is not None
    correlation = item.get("correlationId")
    return UploadJob(
        blob,
        source,
        stream,
        snapshot,
        tenant.strip() if tenant else None,
        "job",
        correlation_id=correlation if isinstance(correlation, str) else None,
    )


def _blob_created(event: Mapping[str, Any], *, container: str, account: StorageAccount) -> UploadJob | Skip:
    data = event.get("data")
    if not isinstance(data, dict):
        raise ValidationError(f"{BLOB_CREATED} event without a data object")
    api = data.get("api")
    if isinstance(api, str) and api in _INCOMPLETE_APIS:  # (a list or object is not hashable)
        return Skip(f"{api} event: the file is not complete yet (a later FlushWithClose event follows)")
    url = data.get("url") or data.get("blobUrl")
    if not isinstance(url, str) or not url:
        raise ValidationError(f"{BLOB_CREATED} event without data.url")
    blob = parse_blob_ref(url, account)
    if blob.container != container:
        raise ValidationError(
            f"event for container {blob.container!r}, but discovery uploads watch {container!r} "
            "(MCAS_DISCOVERY_CONTAINER); check the Event Grid subscription's subject filter"
        )
    segments = blob.name.split("/")
    source = segments[0] if len(segments) >= 3 else None
    stream = unquote(segments[1]) if len(segments) >= 3 else None
    event_id = event.get("id")
    return UploadJob(blob, source, stream, None, None, "event", str(event_id) if event_id else None)


def parse_blob_ref(
    value: Any, account: StorageAccount, *, containers: frozenset[str] | None = None
) -> BlobRef:
    """`container/blob/name` or a URL of a blob in the app's own account (no query: no SAS in messages).

    The path is taken literally: a leading `/`, empty, `.` or `..` segments (also percent-encoded) are
    refused, since storage URLs resolve them and would reach another container. With `containers`, the
    blob must be in one of them.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError('blob is required: "<container>/<blob name>" or the blob URL')
    value = value.strip()
    if "://" not in value:
        _check_segments(value)
        container, _, name = value.partition("/")
        return _allowed(_blob_ref(container, name), containers)
    try:
        parts = urlsplit(value)
        port = parts.port  # raises for a port out of range, like urlsplit for a broken IPv6 host
    except ValueError:
        raise ValidationError("blob URL is malformed") from None
    if parts.query or parts.fragment:
        raise ValidationError(
            "blob URL must not carry a query or fragment (no SAS: the app reads with its identity)"
        )
    ours = urlsplit(account.url)
    # ADLS Gen2 events (FlushWithClose) name the dfs endpoint of the same account.
    host = (parts.hostname or "").lower().replace(".dfs.core.", ".blob.core.")
    if host != (ours.hostname or "").lower() or port != ours.port:
        raise ValidationError(
            f"blob URL host {parts.hostname} is not the app's storage account ({ours.hostname}); "
            "only blobs in the app's own account are uploaded"
        )
    path = parts.path
    prefix = ours.path.rstrip("/")
    if (
        is_loopback_host(ours.hostname or "") and prefix
    ):  # path-style emulator URL: /<account>/<container>/...
        if not path.startswith(prefix + "/"):
            raise ValidationError(f"blob URL is not in storage account {account.name}")
        path = path[len(prefix) :]
    if not path.startswith("/"):
        raise ValidationError("blob URL is malformed")
    _check_segments(path[1:])
    container, _, name = unquote(path[1:]).partition("/")
    return _allowed(_blob_ref(container, name), containers)


def _check_segments(path: str) -> None:
    """Refuse paths a storage URL would resolve differently from how they read."""
    for form in (path, unquote(path)):
        if form.startswith("/"):
            raise ValidationError('blob must be "<container>/<blob name>" without a leading /')
        if any(segment in ("", ".", "..") for segment in form.split("/")):
            raise ValidationError("blob path must not contain empty, '.' or '..' segments")
        if "\\" in form:
            raise ValidationError("blob path must not contain backslashes")


def _allowed(blob: BlobRef, containers: frozenset[str] | None) -> BlobRef:
    if containers is not None and blob.container not in containers:
        listed = ", ".join(sorted(containers))
        raise ValidationError(
            f"blob container {blob.container!r} is not open to discovery jobs (allowed: {listed}; "
            "MCAS_DISCOVERY_EXTRA_CONTAINERS adds more)"
        )
    return blob


def _blob_ref(container: str, name: str) -> BlobRef:
    if not container or not name:
        raise ValidationError('blob must name a container and a blob: "<container>/<blob name>"')
    if (
        not (3 <= len(container) <= 63)
        or not container.isascii()
        or not container.replace("-", "").isalnum()
        or container != container.lower()
    ):
        raise ValidationError(f"{container!r} is not a valid container name")
    if len(name) > 1024:
        raise ValidationError("blob name is longer than 1024 characters")
    return BlobRef(container, name)


def validate_stream(value: Any) -> str:
    """The data source name (`inputStreamName`) as shown in the portal."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("stream is required: the name of the Cloud Discovery data source")
    stream = value.strip()
    if len(stream) > MAX_STREAM_NAME or any(ord(c) < 32 or ord(c) == 127 for c in stream):
        raise ValidationError(f"stream name is not a valid data source name: {stream[:64]!r}")
    return stream


def resolve(
    job: UploadJob, metadata: Mapping[str, str], *, extra_sources: frozenset[str] = frozenset()
) -> tuple[str, str, bool, str | None]:
    """(source, stream, snapshot, tenant) once the blob metadata is known; metadata wins for events."""
    meta = {k.lower(): v for k, v in metadata.items()}
    source, stream = job.source, job.stream
    if job.origin == "event":
        source = meta.get(META_SOURCE) or source
        stream = unquote(meta[META_STREAM]) if meta.get(META_STREAM) else stream
    if source is None or stream is None:
        raise ValidationError(
            f"blob {job.blob} names no source and data source: put it under <SOURCE>/<stream>/<file> or "
            f"set blob metadata {META_SOURCE} and {META_STREAM}"
        )
    snapshot = job.snapshot
    if snapshot is None:
        raw = meta.get(META_SNAPSHOT, "false").strip().lower()
        if raw not in ("true", "false", "1", "0", "yes", "no"):
            raise ValidationError(f"blob metadata {META_SNAPSHOT} must be true or false, got {raw!r}")
        snapshot = raw in ("true", "1", "yes")
    tenant = job.tenant or meta.get(META_TENANT) or None
    return validate_source(source, extra=extra_sources), validate_stream(stream), snapshot, tenant
