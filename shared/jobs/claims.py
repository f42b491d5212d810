"""Insert-if-not-exists claims in Table storage: `Idempotency-Key`s and seen `webhook-id`s.

Both are races by nature (two identical requests arrive at two instances at once), so both use the Table
service's atomic insert: the first `create_entity` wins, the loser gets 409 and reads the winner's claim. An
expired claim is taken over with an ETag-checked replace, so two late-comers cannot both take it over.

Keys are hashed (SHA-256) into the PartitionKey: caller-chosen strings never become Table keys (forbidden
characters, length limits), and one claim per partition keeps every operation a point operation. Both live in
`TABLE_JOBS` beside the job records, under their own RowKeys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from shared.errors import TransientError
from shared.jobs.store import TableLike

IDEMPOTENCY_ROW = "idempotency"
WEBHOOK_ID_ROW = "webhook-id"
_ATTEMPTS = 5


def _partition(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:48]}"


def _claim_row(
    table: TableLike,
    entity: dict[str, Any],
    *,
    stamp_field: str,
    lifetime_s: float,
    now: float,
    retry_lost_takeover: bool,
    busy_message: str,
) -> tuple[bool, Any]:
    """Insert `entity`, or take over its row when the claim there is older than `lifetime_s`.

    Returns `(True, None)` when this call holds the row now, `(False, holder)` when a live claim holds it
    (`holder` is None when another caller took over the expired row first and `retry_lost_takeover` is off:
    the caller only needs to know it lost). With `retry_lost_takeover` the row is read again instead, so the
    caller learns what the winner wrote. Raises `TransientError(busy_message)` if the row keeps changing.
    """
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    partition, row = entity["PartitionKey"], entity["RowKey"]
    for _ in range(_ATTEMPTS):
        try:
            table.create_entity(entity)
            return True, None
        except ResourceExistsError:
            pass
        try:
            existing = table.get_entity(partition, row)
        except ResourceNotFoundError:
            continue  # released in between: try the insert again
        if float(existing.get(stamp_field) or 0) + lifetime_s > now:
            return False, existing
        try:
            table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=existing.metadata.get("etag"),
                match_condition=MatchConditions.IfNotModified,
            )
            return True, None
        except (ResourceModifiedError, ResourceNotFoundError):
            if retry_lost_takeover:
                continue  # another request took over the expired row first: read what it wrote
            return False, None
    raise TransientError(busy_message)


@dataclass(frozen=True)
class IdempotencyClaim:
    job_id: str  # the job this key stands for (ours if `new`)
    new: bool  # True: this request won the key and must create and enqueue the job
    same_request: bool  # False: the key was used before with a different body (answer 422)


class IdempotencyStore:
    """`Idempotency-Key` -> job id, per caller, for `ttl_s` seconds."""

    def __init__(self, table: TableLike, *, ttl_s: float) -> None:
        self._table = table
        self._ttl_s = ttl_s

    def claim(self, *, scope: str, key: str, fingerprint: str, job_id: str, now: float) -> IdempotencyClaim:
        entity: dict[str, Any] = {
            "PartitionKey": _partition("idem", scope, key),
            "RowKey": IDEMPOTENCY_ROW,
            "jobId": job_id,
            "fingerprint": fingerprint,
            "claimedAt": float(now),
        }
        won, holder = _claim_row(
            self._table,
            entity,
            stamp_field="claimedAt",
            lifetime_s=self._ttl_s,
            now=now,
            retry_lost_takeover=True,  # the loser must answer with the winner's job id
            busy_message="the Idempotency-Key is being claimed concurrently; retry",
        )
        if won:
            return IdempotencyClaim(job_id=job_id, new=True, same_request=True)
        return IdempotencyClaim(
            job_id=str(holder["jobId"]),
            new=False,
            same_request=holder.get("fingerprint") == fingerprint,
        )

    def release(self, *, scope: str, key: str, job_id: str) -> None:
        """Give a key back after the job could not be enqueued, so the caller's retry creates it afresh."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        partition = _partition("idem", scope, key)
        try:
            existing = self._table.get_entity(partition, IDEMPOTENCY_ROW)
            if existing.get("jobId") != job_id:
                return
            self._table.delete_entity(
                partition,
                IDEMPOTENCY_ROW,
                etag=existing.metadata.get("etag"),
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceNotFoundError, ResourceModifiedError):
            return


class SeenWebhookIds:
    """Remembers `webhook-id`s for `retention_s`; a second use inside that time is a replay.

    Retention only needs to cover the signature's timestamp tolerance (both directions): after that a replayed
    message fails the signed-timestamp check anyway.
    """

    def __init__(self, table: TableLike, *, retention_s: float) -> None:
        self._table = table
        self._retention_s = retention_s

    def first_use(self, msg_id: str, *, now: float) -> bool:
        """True if `msg_id` was not seen within the retention window (and records it); False for a replay."""
        entity: dict[str, Any] = {
            "PartitionKey": _partition("whid", msg_id),
            "RowKey": WEBHOOK_ID_ROW,
            "seenAt": float(now),
        }
        won, _ = _claim_row(
            self._table,
            entity,
            stamp_field="seenAt",
            lifetime_s=self._retention_s,
            now=now,
            retry_lost_takeover=False,  # a concurrent request with the same id won: this one is the replay
            busy_message="the webhook-id store kept changing; retry",
        )
        return won
