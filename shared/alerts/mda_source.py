"""Defender for Cloud Apps alerts API as an alert source: new alerts by creation time.

The cursor is the checkpoint's watermark (creation ms) plus the ids already delivered at that millisecond.
Each page asks for `date >= watermark` minus those ids (`id.neq`), sorted ascending, 100 at a time - never
deep `skip` - and drops anything the checkpoint already covers, by id. If the service ignored `id.neq` and a
page is all repeats, the source pages through that millisecond with `skip` and then moves past it.
While the engine delivers a page, the next one is already being fetched (its query depends only on the
checkpoint the current page leads to).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Generator, Sequence
from typing import Any

from shared.alerts.checkpoints import Checkpoint, check_monotonic
from shared.alerts.model import NormalizedAlert, normalize
from shared.alerts.record_v2 import mda_v2
from shared.alerts.source import PageWindow, SourcePage
from shared.errors import McasError, ValidationError
from shared.log_context import propagate
from shared.mda.alerts import MAX_SKIP, PAGE_LIMIT, AlertPage, AlertsApi
from shared.mda.client import RequestStats
from shared.mda.filters import Filter

log = logging.getLogger(__name__)

NEQ_ID_LIMIT = 2000  # ids at the watermark sent as `id.neq`; beyond, dedupe by id only

Query = tuple[Filter, int]


def page_query(filters: Filter, end_ms: int | None, cp: Checkpoint, *, skip_at_watermark: bool) -> Query:
    """Filters and skip for the page after `cp`: date >= watermark, minus the ids already delivered there."""
    query = filters.gte("date", cp.watermark_ms)
    if end_ms is not None:
        query = query.lte("date", end_ms)
    skip = 0
    if skip_at_watermark:
        query = query.lte("date", cp.watermark_ms)
        skip = len(cp.ids_at_watermark)
    elif cp.ids_at_watermark and len(cp.ids_at_watermark) <= NEQ_ID_LIMIT:
        query = query.neq("id", *sorted(cp.ids_at_watermark))
    if skip > MAX_SKIP:
        raise McasError(f"more than {MAX_SKIP} alerts share the millisecond {cp.watermark_ms}")
    return query, skip


class _Prefetcher:
    """Fetches the next page while the current one is delivered and committed. Halves the time per page."""

    def __init__(self, api: AlertsApi, stats: RequestStats, deadline: float) -> None:
        self._api, self._stats, self._deadline = api, stats, deadline
        self._pool: Any = None
        self._pending: tuple[Query, Any] | None = None

    def start(self, query: Query) -> None:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-prefetch")
        future = self._pool.submit(propagate(self._fetch), query)  # its log lines keep the run's context
        self._pending = (query, future)

    def _fetch(self, query: Query) -> AlertPage:
        filters, skip = query
        return self._api.query(
            filters,
            sort_direction="asc",
            skip=skip,
            limit=PAGE_LIMIT,
            deadline=self._deadline,
            stats=self._stats,
        )

    def get(self, query: Query) -> AlertPage:
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == query:
            page: AlertPage = pending[1].result()
            return page
        return self._fetch(query)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class MdaAlertSource:
    """New alerts of one tenant from `POST /api/v1/alerts/`, by creation time."""

    name = "mda"

    def __init__(
        self, api: AlertsApi, *, tenant: str, schema_version: int = 1, prefetch: bool = True
    ) -> None:
        self.api = api
        self.tenant = tenant
        self.schema_version = schema_version
        self.prefetch = prefetch

    def pages(
        self, cp: Checkpoint, window: PageWindow, stats: RequestStats
    ) -> Generator[SourcePage, None, None]:
        fetcher = _Prefetcher(self.api, stats, window.deadline)
        skip_at_watermark = False  # fallback when the server ignores id.neq and a page is all repeats
        malformed = 0
        yielded = 0
        try:
            while True:
                if window.end_ms is not None and cp.watermark_ms > window.end_ms:
                    yield SourcePage((), cp, more=False, malformed=malformed)
                    return
                page = fetcher.get(
                    page_query(window.filters, window.end_ms, cp, skip_at_watermark=skip_at_watermark)
                )
                fresh, bad = self._new_alerts(page.alerts, cp)
                malformed += bad
                if not fresh:
                    if skip_at_watermark:
                        # Every alert at the watermark is delivered: go on after it (committed with the next).
                        skip_at_watermark = False
                        cp = dataclasses.replace(
                            cp, watermark_ms=cp.watermark_ms + 1, ids_at_watermark=frozenset()
                        )
                        continue
                    if page.has_next and page.alerts:
                        skip_at_watermark = True
                        continue
                    yield SourcePage((), cp, more=False, malformed=malformed)
                    return
                advanced = cp.advanced((a["id"], a["timestamp_ms"]) for a in fresh)
                check_monotonic(cp, advanced)
                yielded += 1
                ahead = (
                    self.prefetch and page.has_next and not skip_at_watermark and yielded < window.max_pages
                )
                if ahead and window.clock() < window.deadline - 1.0:
                    fetcher.start(
                        page_query(window.filters, window.end_ms, advanced, skip_at_watermark=False)
                    )
                yield SourcePage(
                    fresh, advanced, more=page.has_next or skip_at_watermark, malformed=malformed
                )
                malformed = 0
                cp = advanced
        finally:
            fetcher.close()

    def probe(
        self, cp: Checkpoint, *, deadline: float | None = None, stats: RequestStats | None = None
    ) -> bool:
        query, _ = page_query(Filter(), None, cp, skip_at_watermark=False)
        page = self.api.query(query, sort_direction="asc", limit=1, deadline=deadline, stats=stats)
        return any(not cp.covers(str(a.get("_id")), _ms(a.get("timestamp"))) for a in page.alerts)

    def _new_alerts(self, raw: Sequence[dict[str, Any]], cp: Checkpoint) -> tuple[list[NormalizedAlert], int]:
        """Normalised alerts of a page that the checkpoint does not cover, each id once, in page order."""
        fresh: list[NormalizedAlert] = []
        seen: set[str] = set()
        malformed = 0
        for item in raw:
            try:
                alert: NormalizedAlert = (
                    mda_v2(item, tenant=self.tenant)
                    if self.schema_version == 2
                    else normalize(item, tenant=self.tenant)
                )
            except ValidationError as exc:
                malformed += 1
                log.warning("skipping a malformed alert from %s: %s", self.tenant, exc)
                continue
            if alert["id"] in seen or cp.covers(alert["id"], alert["timestamp_ms"]):
                continue
            seen.add(alert["id"])
            fresh.append(alert)
        return fresh, malformed


def _ms(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


class MdaChangesSource:
    """Closures and status changes of one tenant's MDA alerts, as new versions (schema 2 records).

    The alerts API filters on `resolutionDate` but sorts only by creation date, so a run reads one fixed
    window of resolution dates, `[cursor, end]`, completely (skip paging, 100 at a time, at most 5,000
    closures per window) and only then moves the cursor past `end`. While a window is read, the checkpoint
    keeps the (id, version) of what was delivered in it, so a run that stops midway resumes without
    duplicates. Alerts created after the creation feed's cursor (as it stood before this run) are left out:
    the creation feed reads them with their current state anyway. On a tenant's first run the cursor starts
    at the window end: closures before it are part of the state the creation feed delivers.
    """

    name = "mda"

    def __init__(
        self,
        api: AlertsApi,
        *,
        tenant: str,
        creation_watermark_ms: int | None,
        wall: Any = None,
    ) -> None:
        import time

        self.api = api
        self.tenant = tenant
        self.creation_watermark_ms = creation_watermark_ms
        self._wall = wall or time.time

    def _window_end(self, window: PageWindow) -> int:
        return window.end_ms if window.end_ms is not None else int(self._wall() * 1000)

    def _filters(self, cp: Checkpoint, end_ms: int) -> Filter:
        assert self.creation_watermark_ms is not None
        return (
            Filter()
            .gte("resolutionDate", cp.watermark_ms)
            .lte("resolutionDate", end_ms)
            .lte("date", self.creation_watermark_ms)
        )

    def pages(
        self, cp: Checkpoint, window: PageWindow, stats: RequestStats
    ) -> Generator[SourcePage, None, None]:
        end_ms = self._window_end(window)
        if self.creation_watermark_ms is None or end_ms < cp.watermark_ms:
            start = cp if self.creation_watermark_ms is not None else _moved_past(cp, end_ms)
            yield SourcePage((), start, more=False)
            return
        filters = self._filters(cp, end_ms)
        skip = 0
        while True:
            if skip > MAX_SKIP:
                raise McasError(
                    f"more than {MAX_SKIP} alerts closed between {cp.watermark_ms} and {end_ms}; "
                    "run pulls more often"
                )
            page = self.api.query(
                filters,
                sort_direction="asc",
                skip=skip,
                limit=PAGE_LIMIT,
                deadline=window.deadline,
                stats=stats,
            )
            skip += len(page.alerts)
            fresh: list[NormalizedAlert] = []
            malformed = 0
            keys: set[str] = set()
            for item in page.alerts:
                try:
                    record = mda_v2(item, tenant=self.tenant)
                except ValidationError as exc:
                    malformed += 1
                    log.warning("skipping a malformed alert from %s: %s", self.tenant, exc)
                    continue
                key = f"{record['id']}:{record['version']}"
                if record["status"] != "resolved" or key in cp.ids_at_watermark or key in keys:
                    continue  # reopened since (not a closure any more), or delivered before
                keys.add(key)
                fresh.append(record)
            done = not page.has_next or not page.alerts
            if done:
                after = _moved_past(cp, end_ms)
                after = dataclasses.replace(
                    after,
                    delivered_total=cp.delivered_total + len(fresh),
                    pages_total=cp.pages_total + (1 if fresh else 0),
                )
            else:
                after = dataclasses.replace(
                    cp,
                    ids_at_watermark=cp.ids_at_watermark | keys,
                    delivered_total=cp.delivered_total + len(fresh),
                    pages_total=cp.pages_total + 1,
                )
            if fresh or done:
                yield SourcePage(fresh, after, more=not done, malformed=malformed)
            if done:
                return
            cp = after

    def probe(
        self, cp: Checkpoint, *, deadline: float | None = None, stats: RequestStats | None = None
    ) -> bool:
        if self.creation_watermark_ms is None:
            return False
        now_ms = int(self._wall() * 1000)
        query = (
            Filter()
            .gte("resolutionDate", cp.watermark_ms)
            .lte("resolutionDate", now_ms)
            .lte("date", self.creation_watermark_ms)
        )
        page = self.api.query(query, sort_direction="asc", limit=1, deadline=deadline, stats=stats)
        return bool(page.alerts)


def _moved_past(cp: Checkpoint, end_ms: int) -> Checkpoint:
    """The cursor after a complete window: everything resolved up to `end_ms` is handled."""
    return dataclasses.replace(
        cp, watermark_ms=max(cp.watermark_ms, end_ms + 1), ids_at_watermark=frozenset()
    )
