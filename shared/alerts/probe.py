"""The cheap per-minute question "is there anything newer than the checkpoint?" for the MDA alerts API.

One request of one item: `date >= watermark`, minus the ids already delivered at the watermark, sorted
newest first, `limit` 1. The answer's single alert is the newest undelivered one, so the caller learns
both whether to pull and when the newest alert leaves the settle window; `total` (an estimate, per the
API's own documentation) is used only to skip a pull that could find nothing settled, never to decide that
an alert does not exist. Costs one request of the tenant's budget (30 per minute).
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
    newest_ms: int | None = None  # creation time of the newest undelivered alert
    total: int | None = None  # the API's (approximate) count of undelivered alerts


def probe_mda(
    api: AlertsApi, cp: Checkpoint, *, deadline: float | None = None, stats: RequestStats | None = None
) -> ProbeResult:
    """One request: the newest alert the checkpoint does not cover, if any."""
    filters = Filter().gte("date", cp.watermark_ms)
    exact = len(cp.ids_at_watermark) <= NEQ_ID_LIMIT
    if cp.ids_at_watermark and exact:
        filters = filters.neq("id", *sorted(cp.ids_at_watermark))
    page = api.query(filters, sort_direction="desc", limit=1, deadline=deadline, stats=stats)
    if not page.alerts:
        return ProbeResult(False, total=page.total)
    newest = page.alerts[0]
    stamp = newest.get("timestamp")
    newest_ms = int(stamp) if isinstance(stamp, int | float) and not isinstance(stamp, bool) else None
    alert_id = str(newest.get("_id") or "")
    if exact and newest_ms is not None and cp.covers(alert_id, newest_ms):
        # The server ignored `id.neq`: every match shares the watermark millisecond; there is something new
        # only if it counts more matches than the ids already delivered there.
        more = page.total is None or page.total > len(cp.ids_at_watermark)
        return ProbeResult(more, newest_ms=newest_ms if more else None, total=page.total)
    return ProbeResult(True, newest_ms=newest_ms, total=page.total)
