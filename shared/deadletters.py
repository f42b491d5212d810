"""The one dead-letter store: messages that can never succeed, kept with their reason for inspection
and replay.

Invalid messages, terminal API errors and messages that exhausted the host's retries (`<queue>-poison`)
all land here, as one JSON blob each in the `mcas-deadletters` container, so nothing is lost and nothing
is retried forever.
The letter id is derived from the source queue and the message id, so dead-lettering the same delivery twice
(e.g. a redelivered poison message) overwrites instead of duplicating.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from shared.errors import ValidationError
from shared.storage import CONTAINER_DEAD_LETTERS, container_client, queue_client
from shared.telemetry import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    id: str
    source: str  # queue (or endpoint) the message came from
    reason: str
    body: str  # the original message body, unchanged
    correlation_id: str | None
    received_at: str  # ISO-8601 UTC
    message_id: str | None = None
    dequeue_count: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def letter_id(source: str, message_id: str | None, body: str) -> str:
    key = f"{source}\n{message_id}" if message_id else f"{source}\n{body}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _correlation_id_of(body: str) -> str | None:
    try:
        parsed = json.loads(body)
    except (ValueError, TypeError, RecursionError):  # any body is kept; a correlation id is a bonus
        return None
    value = parsed.get("correlationId") or parsed.get("correlation_id") if isinstance(parsed, dict) else None
    return str(value) if value else None


def dead_letter(
    *,
    source: str,
    reason: str,
    body: str | bytes,
    message_id: str | None = None,
    correlation_id: str | None = None,
    dequeue_count: int | None = None,
) -> DeadLetter:
    """Store a message that must not be retried. Returns the stored letter."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    letter = DeadLetter(
        id=letter_id(source, message_id, text),
        source=source,
        reason=reason[:2000],
        body=text,
        correlation_id=correlation_id or _correlation_id_of(text),
        received_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        message_id=message_id,
        dequeue_count=dequeue_count,
    )
    container_client(CONTAINER_DEAD_LETTERS).upload_blob(
        f"{letter.id}.json",
        letter.to_json().encode("utf-8"),
        overwrite=True,
        metadata={"source": source, "reason": _metadata_safe(reason)},
    )
    metrics.add("dead_letters", source=source)
    log.warning(
        "dead-lettered message from %s: %s",
        source,
        reason,
        extra={"dead_letter_id": letter.id, "correlation_id": letter.correlation_id},
    )
    return letter


def _metadata_safe(text: str) -> str:
    """Blob metadata travels as an HTTP header: printable ASCII only (a control character, e.g. from a
    message's own text quoted in the reason, makes storage refuse the whole letter). Short: the full reason
    is in the blob."""
    return "".join(c if " " <= c <= "~" else "?" for c in text[:256]).strip()


def list_letters() -> Iterator[DeadLetter]:
    container = container_client(CONTAINER_DEAD_LETTERS)
    for blob in container.list_blobs():
        yield get_letter(blob.name.removesuffix(".json"))


def get_letter(letter: str) -> DeadLetter:
    from azure.core.exceptions import ResourceNotFoundError

    from shared.errors import ValidationError

    if not letter.isalnum():
        raise ValidationError(f"dead letter id must be alphanumeric, got {letter!r}")
    try:
        raw = container_client(CONTAINER_DEAD_LETTERS).download_blob(f"{letter}.json").readall()
    except ResourceNotFoundError:
        raise ValidationError(f"no dead letter with id {letter}") from None
    data: dict[str, Any] = json.loads(raw)
    return DeadLetter(**data)


def replay(letter: str, *, queue: str | None = None, create_queue: bool = False) -> DeadLetter:
    """Put the original body back on its queue (or another) and then remove the letter.

    The queue must exist unless `create_queue`: a mistyped name fails (the letter stays) instead of
    creating a queue nothing reads. The letter is deleted only once the message is on the queue.
    """
    from azure.core.exceptions import ResourceNotFoundError

    found = get_letter(letter)
    target = queue or found.source.removesuffix("-poison")
    try:
        queue_client(target, create=create_queue).send_message(found.body)
    except ResourceNotFoundError:
        raise ValidationError(f"queue {target!r} does not exist; the dead letter was kept") from None
    container_client(CONTAINER_DEAD_LETTERS).delete_blob(f"{found.id}.json")
    log.info("replayed dead letter %s to %s", found.id, target)
    return found
