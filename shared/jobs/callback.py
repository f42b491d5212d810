"""Signed result callbacks: POST the finished job to the caller's https URL through the shared signed sender.

- Signed like the alert webhook (shared/outbound/sender.py): `webhook-id` is stable per job (`job_<id>`), so
  a receiver drops a redelivery; every retry is re-signed with a fresh timestamp; during a secret rotation
  the header carries one signature per configured secret, and a 401 re-reads the secret once.
- SSRF guard: https only; the host is resolved once, every address must be public (loopback only with
  MCAS_ALLOW_LOOPBACK) and the connection goes to a checked address; redirects are not followed.
- Retried on 408/425/429/5xx and network errors within `CALLBACK_BUDGET_S`, honouring `Retry-After`; a
  callback that still fails is recorded on the job (without connection-level detail) and never changes the
  job's own status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.outbound.addresses import Resolver
from shared.outbound.pinned import Poster
from shared.outbound.sender import CALLBACK, Delivery, KeyReader, SignedSender

EVENT_TYPE = "job.finished"
CALLBACK_BUDGET_S = 60.0


@dataclass(frozen=True)
class CallbackOutcome:
    status: str  # "delivered" | "failed" | "refused"
    attempts: int
    last_status: int | None = None
    detail: str | None = None

    @classmethod
    def of(cls, delivery: Delivery) -> CallbackOutcome:
        if delivery.delivered:
            return cls("delivered", delivery.attempts, delivery.last_status)
        status = "refused" if delivery.stopped == "destination" else "failed"
        return cls(status, delivery.attempts, delivery.last_status, delivery.detail)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "attempts": self.attempts}
        if self.last_status is not None:
            data["lastStatus"] = self.last_status
        if self.detail:
            data["detail"] = self.detail
        return data


def deliver(
    url: str,
    payload: dict[str, Any],
    *,
    msg_id: str,
    keys: KeyReader,
    allow_loopback: bool,
    poster: Poster | None = None,
    resolve: Resolver | None = None,
    budget_s: float = CALLBACK_BUDGET_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], float] = time.time,
) -> CallbackOutcome:
    """POST `payload` to `url`, signed; never raises for the receiver's failures."""
    body = json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")
    sender = SignedSender.build(
        CALLBACK,
        keys,
        allow_loopback=allow_loopback,
        poster=poster,
        resolve=resolve,
        clock=clock,
        sleep=sleep,
        now=now,
    )
    return CallbackOutcome.of(sender.send(url, body, msg_id=msg_id, deadline=clock() + budget_s))


def fixed_keys(keys: Sequence[bytes]) -> KeyReader:
    """A key reader over keys already in hand (tests, tools)."""
    return lambda refresh: list(keys)
