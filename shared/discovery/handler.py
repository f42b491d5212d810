"""Queue entry points for discovery uploads (called by functions/discovery.py, one call per message).

Outcomes per message:
- uploaded / already uploaded / skipped -> return normally (the host deletes the message);
- bad message, unknown data source, invalid source, refused upload host, too-large archive -> the job goes to
  the dead-letter store with the reason, and the message is acknowledged (retrying cannot help);
- transient failure that outlasted the time budget -> raise, so the host redelivers the message (after
  `maxDequeueCount` attempts it lands in `<queue>-poison`, which `handle_poison_message` dead-letters).
An array of events is processed item by item under one time budget; a redelivery skips what was done.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.deadletters import dead_letter
from shared.discovery.config import DiscoveryConfig, discovery_config
from shared.discovery.jobs import StorageAccount, UploadJob, parse_message, resolve
from shared.errors import ConfigurationError, TerminalError, ValidationError
from shared.log_context import bind, log_context
from shared.storage import QUEUE_DISCOVERY_JOBS

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

    from shared.discovery.content import BlobSource
    from shared.discovery.uploader import UploadResult
    from shared.settings import Settings

log = logging.getLogger(__name__)

POISON_QUEUE = f"{QUEUE_DISCOVERY_JOBS}-poison"


@dataclass
class MessageOutcome:
    uploaded: list[UploadResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)  # reasons


def handle_discovery_message(
    body: str | bytes, *, message_id: str | None = None, dequeue_count: int | None = None
) -> MessageOutcome:
    """Process one message from the discovery queue (see the module docstring)."""
    from shared.settings import get_settings

    settings = get_settings()
    config = discovery_config()
    deadline = time.monotonic() + config.time_budget_s
    outcome = MessageOutcome()
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        items = parse_message(
            text,
            container=config.container,
            account=storage_account(),
            extra_sources=config.extra_sources,
            extra_containers=config.extra_containers,
        )
    except ValidationError as exc:
        _dead_letter(outcome, text, exc, message_id, dequeue_count)
        return outcome
    raw_items = _raw_items(text, len(items))
    for index, item in enumerate(items):
        item_id = message_id if len(items) == 1 or message_id is None else f"{message_id}#{index}"
        if not isinstance(item, UploadJob):
            log.info("discovery message %s: skipped (%s)", item_id, item.reason)
            outcome.skipped.append(item.reason)
            continue
        # Log lines of this item carry its correlation id (a job's correlationId, an event's id) and,
        # once resolved, its tenant (bound by upload_blob_job); the next item starts afresh.
        with log_context(correlation_id=item.correlation_id or item.event_id):
            try:
                outcome.uploaded.append(
                    upload_blob_job(item, settings=settings, config=config, deadline=deadline)
                )
            except (ValidationError, TerminalError) as exc:
                _dead_letter(outcome, raw_items[index], exc, item_id, dequeue_count)
    return outcome


def handle_poison_message(
    body: str | bytes, *, message_id: str | None = None, dequeue_count: int | None = None
) -> None:
    """A job that failed `maxDequeueCount` times: keep it, with the reason, instead of retrying forever."""
    dead_letter(
        source=POISON_QUEUE,
        reason="exhausted retries",
        body=body,
        message_id=message_id,
        dequeue_count=dequeue_count,
    )


def upload_blob_job(
    job: UploadJob, *, settings: Settings, config: DiscoveryConfig, deadline: float
) -> UploadResult:
    """Upload the blob a job names: read its properties and metadata, resolve the target, stream it."""
    from shared.discovery.api import MdaDiscoveryApi
    from shared.discovery.ledger import TableLedger
    from shared.discovery.uploader import Uploader, UploadRequest
    from shared.storage import blob_service

    source = open_blob_source(blob_service().get_blob_client(job.blob.container, job.blob.name), config)
    source_type, stream, snapshot, tenant = resolve(job, source.metadata, extra_sources=config.extra_sources)
    try:
        profile = settings.tenant(tenant) if tenant else settings.default_tenant
    except ConfigurationError:
        raise ValidationError(
            f"job names tenant {tenant!r}, which has no profile in MCAS_TENANT_PROFILES"
        ) from None
    bind(tenant=profile.name)
    uploader = Uploader(
        MdaDiscoveryApi.for_profile(profile),
        config,
        TableLedger.default(),
        allow_loopback=settings.allow_loopback,
    )
    result = uploader.upload(
        UploadRequest(source, source_type, stream, snapshot, profile.name), deadline=deadline
    )
    log.info(
        "discovery %s %s: %s (%d bytes, %d part(s), sha256 %s) to %s/%s%s",
        job.origin,
        job.blob,
        result.outcome,
        result.size,
        max(1, len(result.parts)),
        result.sha256[:12],
        source_type,
        stream,
        " as snapshot" if snapshot else "",
    )
    return result


def open_blob_source(blob: BlobClient, config: DiscoveryConfig) -> BlobSource:
    from azure.core.exceptions import ResourceNotFoundError

    from shared.discovery.content import BlobSource

    try:
        return BlobSource(blob, chunk_bytes=config.block_bytes)
    except ResourceNotFoundError:
        raise TerminalError(
            f"blob {blob.container_name}/{blob.blob_name} does not exist (deleted?)"
        ) from None


def storage_account() -> StorageAccount:
    from shared.storage import blob_service

    service = blob_service()
    return StorageAccount(name=str(service.account_name), url=str(service.url))


def _raw_items(text: str, count: int) -> list[str]:
    """The original JSON of each item, so a dead-lettered item replays on its own."""
    if count == 1:
        return [text]
    payload = json.loads(text)
    return [json.dumps(item) for item in payload]


def _dead_letter(
    outcome: MessageOutcome, body: str, exc: Exception, message_id: str | None, dequeue_count: int | None
) -> None:
    reason = str(exc) or type(exc).__name__
    dead_letter(
        source=QUEUE_DISCOVERY_JOBS,
        reason=reason,
        body=body,
        message_id=message_id,
        dequeue_count=dequeue_count,
    )
    outcome.dead_lettered.append(reason)
