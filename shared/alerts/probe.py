"""The cheap per-minute question "is there anything newer than the checkpoint?" for the MDA alerts API.

One request of one item: `date >= watermark`, minus the ids already delivered at the watermark, oldest first,
`limit` 1. The answer's single alert is the oldest undelivered one, so the caller learns both whether to pull
and when that alert leaves the settle window (the moment a follow-up pull can deliver it). Costs one request
of the tenant's budget (30 per minute).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.alerts.checkpoints import Checkpoint
from shared.mda.alerts import AlertsApi
from shared.mda.client import RequestStats
from shared.mda.filters import Filter

NEQ_ID_LIMIT = 2000  # the pull engine sends at most this many ids as `id.neq` too


@dataclass(frozen=True)
class ProbeResult:
    has_new: bool
    oldest_ms: int | None = None  # creation time of the oldest undelivered alert (None: unknown)


def probe_mda(
    api: AlertsApi, cp: Checkpoint, *, deadline: float | None = None, stats: RequestStats | None = None
) -> ProbeResult:
    """One request: the oldest alert the checkpoint does not cover, if any."""
    filters = Filter().gte("date", cp.watermark_ms)
    if cp.ids_at_watermark and len(cp.ids_at_watermark) <= NEQ_ID_LIMIT:
        filters = filters.neq("id", *sorted(cp.ids_at_watermark))
    page = api.query(filters, sort_direction="asc", limit=1, deadline=deadline, stats=stats)
    if not page.alerts:
        return ProbeResult(False)
    oldest = page.alerts[0]
    stamp = oldest.get("timestamp")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        return ProbeResult(True)  # malformed: let the pull (which skips malformed alerts) look
    if cp.covers(str(oldest.get("_id") or ""), int(stamp)):
        # The server ignored `id.neq` (or there are too many ids to send): the answer is an alert already
        # delivered at the watermark, which says nothing about the others there. Pull to find out.
        return ProbeResult(True, oldest_ms=cp.watermark_ms)
    return ProbeResult(True, oldest_ms=int(stamp))
