"""Microsoft Graph `alerts_v2` as an alert source: every new `lastUpdateDateTime` of an alert is a version.

`lastUpdateDateTime` is the only change cursor Graph documents, its ordering and page ceiling are not
guaranteed, ties are common and an update can become visible after newer ones
(https://learn.microsoft.com/graph/api/security-list-alerts_v2). So:
- each run first re-reads the `overlap` behind the cursor (inclusive bounds), to pick up late-visible
  updates, then goes on from the cursor exactly as the run that committed it would have (a page redelivered
  after a crash holds the same records, so it gets the same blob name and `webhook-id`);
- the checkpoint keeps the (id, version) of every version delivered within the overlap window behind the
  cursor (short digests), and records are deduplicated against it: a version is delivered once;
- pages go by time, never by deep `$skip`: the next query starts at the newest `lastUpdateDateTime` of the
  page (`ge`, ties deduplicated); `@odata.nextLink` is followed only when a full page did not move the time
  forward (a tie group larger than a page) or arrived out of order;
- the cursor is the newest `lastUpdateDateTime` delivered (milliseconds; the overlap and the dedupe set
  absorb the precision), committed by the engine only after the sinks acknowledged the page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
from collections.abc import Generator, Sequence
from typing import Any

from shared.alerts.checkpoints import Checkpoint
from shared.alerts.model import NormalizedAlert, NormalizedAlertV2
from shared.alerts.record_v2 import graph_v2
from shared.alerts.source import PageWindow, SourcePage
from shared.errors import ValidationError
from shared.graph.alerts import MAX_TOP, GraphAlertsApi, GraphPage, alerts_filter
from shared.log_context import propagate
from shared.mda.client import RequestStats
from shared.timeparse import iso_from_ms

log = logging.getLogger(__name__)

SEEN_DIGEST_CHARS = 12  # 48 bits: collisions stay below one in a million for 20,000 versions in the overlap


Query = tuple[str | None, int, int | None]  # (next link, `ge` start ms, `le` end ms)


class _Prefetch:
    """Fetches the next page in a thread while the engine delivers and commits the current one."""

    def __init__(self, source: GraphAlertSource, window: PageWindow, stats: RequestStats) -> None:
        self._source, self._window, self._stats = source, window, stats
        self._pool: Any = None
        self._pending: tuple[Query, Any] | None = None

    def _fetch(self, query: Query) -> GraphPage:
        api, window = self._source.api, self._window
        next_link, query_start, until = query
        if next_link is not None:
            return api.next_page(next_link, deadline=window.deadline, stats=self._stats)
        text = self._source.filter_text(query_start, until)
        return api.list_page(text, top=self._source.page_size, deadline=window.deadline, stats=self._stats)

    def start(self, query: Query) -> None:
        if self._window.clock() >= self._window.deadline - 1.0:
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graph-prefetch")
        future = self._pool.submit(propagate(self._fetch), query)
        self._pending = (query, future)

    def get(self, query: Query) -> GraphPage:
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == query:
            page: GraphPage = pending[1].result()
            return page
        return self._fetch(query)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def seen_entry(alert_id: str, version: int) -> str:
    digest = hashlib.sha256(f"{alert_id}|{version}".encode()).hexdigest()[:SEEN_DIGEST_CHARS]
    return f"{digest}.{version // 1000}"


def _entry_ms(entry: str) -> int:
    try:
        return int(entry.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return 0


class GraphAlertSource:
    """Changes of one tenant's alerts from `GET /security/alerts_v2`, filtered on the service sources."""

    name = "graph"

    def __init__(
        self,
        api: GraphAlertsApi,
        *,
        tenant: str,
        service_sources: Sequence[str],
        overlap_s: float = 300.0,
        page_size: int = MAX_TOP,
    ) -> None:
        self.api = api
        self.tenant = tenant
        self.service_sources = tuple(service_sources)
        self.overlap_ms = int(overlap_s * 1000)
        self.page_size = page_size

    def filter_text(self, since_ms: int, end_ms: int | None) -> str:
        """The list filter for `since_ms <= lastUpdateDateTime [<= end_ms]` on the service sources."""
        return alerts_filter(
            self.service_sources,
            since_iso=iso_from_ms(max(0, since_ms)),
            until_iso=iso_from_ms(end_ms) if end_ms is not None else None,
        )

    def pages(
        self, cp: Checkpoint, window: PageWindow, stats: RequestStats
    ) -> Generator[SourcePage, None, None]:
        if window.filters:
            raise ValidationError("MDA filters do not apply to the Graph source")
        seen = set(cp.ids_at_watermark)
        start_ms = cp.watermark_ms
        # Two passes: the overlap behind the cursor (`ge cursor - overlap and le cursor`: only late-visible
        # updates are new there), then from the cursor on (`ge cursor`), exactly as the run that committed
        # the cursor would have continued - so a page redelivered after a crash has the same records, the
        # same blob name and `webhook-id`.
        overlap_pass = self.overlap_ms > 0
        query: Query = (
            (None, start_ms - self.overlap_ms, start_ms) if overlap_pass else (None, start_ms, None)
        )
        prefetch = _Prefetch(self, window, stats)
        yielded = 0
        try:
            while True:
                page = prefetch.get(query)
                next_link, query_start, until = query
                records, malformed = self._records(page)
                stamps = [r["updated_ms"] for r in records]
                ordered = all(a <= b for a, b in itertools.pairwise(stamps))
                fresh: list[NormalizedAlert] = []
                for record in records:
                    entry = seen_entry(record["id"], record["version"])
                    if entry in seen:
                        continue
                    seen.add(entry)
                    fresh.append(record)
                newest = max(stamps, default=None)
                watermark = max(cp.watermark_ms, newest if newest is not None else cp.watermark_ms)
                full = page.next_link is not None or len(page.alerts) >= self.page_size
                done = not full
                next_link = None
                if done and overlap_pass:
                    overlap_pass, done = False, False  # the overlap is read: on from the cursor
                    query_start, until = start_ms, window.end_ms
                elif full:
                    if ordered and newest is not None and newest > query_start:
                        query_start = newest  # page by time: `ge` the newest change seen, ties deduplicated
                    elif page.next_link is not None:
                        next_link = page.next_link  # a tie group larger than a page, or out of order
                        if not ordered:
                            log.warning(
                                "Graph alerts came out of lastUpdateDateTime order; following nextLink"
                            )
                    else:
                        done = True  # no way forward from here: the next run starts again from the cursor
                horizon = watermark - self.overlap_ms
                kept = frozenset(e for e in seen if _entry_ms(e) >= horizon)
                after = dataclasses.replace(
                    cp,
                    watermark_ms=watermark,
                    ids_at_watermark=kept,
                    delivered_total=cp.delivered_total + len(fresh),
                    pages_total=cp.pages_total + (1 if fresh else 0),
                )
                query = (next_link, query_start, until)
                if not done and yielded + 1 < window.max_pages:
                    # The next query is known before this page is delivered: fetch it meanwhile.
                    prefetch.start(query)
                if fresh or done:
                    yielded += 1
                    yield SourcePage(fresh, after, more=not done, malformed=malformed)
                if done:
                    return
                cp = after
                seen = set(kept)
        finally:
            prefetch.close()

    def _records(self, page: GraphPage) -> tuple[list[NormalizedAlertV2], int]:
        records: list[NormalizedAlertV2] = []
        malformed = 0
        for item in page.alerts:
            try:
                records.append(graph_v2(item, tenant=self.tenant))
            except ValidationError as exc:
                malformed += 1
                log.warning("skipping a malformed Graph alert from %s: %s", self.tenant, exc)
        return records, malformed

    def probe(
        self, cp: Checkpoint, *, deadline: float | None = None, stats: RequestStats | None = None
    ) -> bool:
        """One request for a one-item page of changes after the cursor's millisecond. Late-visible updates
        behind the cursor are not probed for; the next pull's overlap picks them up."""
        text = self.filter_text(cp.watermark_ms + 1, None)
        page = self.api.list_page(text, top=1, deadline=deadline, stats=stats)
        return bool(page.alerts)
