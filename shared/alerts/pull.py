"""The alert pull: ask the tenant's source for what follows the checkpoint, deliver each page, then commit it.

One code path for the timer, the ad-hoc queue job and `mcasctl alerts pull`, whatever the source (the
Defender for Cloud Apps API or Microsoft Graph, see shared/alerts/source.py):
1. load the tenant's checkpoint (the source's cursor) and take its lease;
2. take the source's next page of records the checkpoint does not cover;
3. make sure the lease covers the delivery (renewing it with a conditional write unless it was just renewed:
   a run that lost the checkpoint to another stops here, before it delivers anything), deliver the page to
   every sink within the lease, and only then commit the advanced checkpoint (which renews the lease);
4. stop cleanly when caught up, at the per-run page cap, or before the time budget runs out; the next run
   continues from the last committed page. A crash redelivers at most the one uncommitted page.
Tenants run concurrently (each has its own checkpoint, token and request budget); each run leaves a health
record (start, end, alerts, pages, 429s, lag, error).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.alerts.checkpoints import (
    STREAM_CHANGES,
    STREAM_SCHEDULED,
    Checkpoint,
    CheckpointConflict,
    CheckpointStore,
    check_monotonic,
)
from shared.alerts.config import AlertConfig
from shared.alerts.sinks import AlertBatch, Sink, build_sinks, deliver_all
from shared.alerts.source import AlertSource, PageWindow, SourcePage, version_key
from shared.errors import ConfigurationError, McasError, TerminalError
from shared.log_context import log_context, propagate
from shared.mda.alerts import AlertsApi
from shared.mda.client import RequestStats
from shared.timeparse import epoch_ms, iso_from_ms, parse_instant

if TYPE_CHECKING:
    from shared.graph.alerts import GraphAlertsApi
from shared.mda.errors import BudgetExhaustedError
from shared.mda.filters import Filter
from shared.settings import Settings, TenantProfile, get_settings
from shared.telemetry import metrics

log = logging.getLogger(__name__)

MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant a datetime can hold


@dataclass(frozen=True)
class PullOptions:
    stream: str = STREAM_SCHEDULED
    key: str | None = None  # checkpoint row; default: the tenant name
    start_ms: int | None = None  # window start when no checkpoint exists
    end_ms: int | None = None  # inclusive window end (settle delay or the job's `until`)
    filters: Filter = field(default_factory=Filter)
    max_pages: int = 100
    lease_s: float = 120.0
    wait_for_lease: bool = False
    mark_complete: bool = False  # ad-hoc jobs: flag the checkpoint complete once the window is done
    source: str | None = None  # "mda" | "graph": overrides the profile's alert source (mcasctl --source)


@dataclass
class PullResult:
    tenant: str
    stream: str
    key: str
    run_id: str
    started_at: str
    ended_at: str = ""
    duration_s: float = 0.0
    alerts: int = 0
    pages: int = 0
    requests: int = 0
    throttled: int = 0
    skipped_malformed: int = 0
    watermark_ms: int | None = None
    newest_ms: int | None = None
    lag_s: float | None = None
    stopped: str = "caught_up"  # caught_up | budget | page_cap | busy | lease_lost | complete | error
    error: str | None = None
    terminal: bool = False  # the error cannot go away by retrying (TerminalError: 4xx, permission, ...)

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def page_key(tenant: str, stream: str, key: str, alert_ids: Sequence[str]) -> str:
    """Deterministic per page content - the (id, version) of its records: a redelivered page gets the same
    blob name and webhook-id, and a new version of an alert never shares them with an older one."""
    digest = hashlib.sha256(f"{tenant}|{stream}|{key}|{','.join(alert_ids)}".encode())
    return digest.hexdigest()[:32]


def pull_tenant(
    profile: TenantProfile,
    options: PullOptions,
    *,
    api: AlertsApi | None = None,
    source: AlertSource | None = None,
    store: CheckpointStore,
    sinks: Sequence[Sink],
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    run_id: str | None = None,
    on_page: Callable[[AlertBatch, Checkpoint], None] | None = None,
) -> PullResult:
    """One run for one tenant from `source` (or the MDA alerts API `api`). Never raises for API, sink or
    storage trouble: the result carries the error."""
    if source is None:
        if api is None:
            raise ValueError("pull_tenant needs a source or an MDA api")
        from shared.alerts.mda_source import MdaAlertSource

        source = MdaAlertSource(api, tenant=profile.name)
    run = TenantRun(
        profile=profile,
        options=options,
        source=source,
        store=store,
        sinks=sinks,
        deadline=deadline,
        clock=clock,
        wall=wall,
        sleep=sleep,
        owner=run_id or uuid.uuid4().hex[:12],
        on_page=on_page,
    )
    return run.run()


@dataclass(kw_only=True)
class TenantRun:
    """One run of one feed of one tenant: the run's environment, its latest checkpoint and its result, with
    one short method per step (lease, read pages, claim, deliver, commit, finish, release, report)."""

    profile: TenantProfile
    options: PullOptions
    source: AlertSource
    store: CheckpointStore
    sinks: Sequence[Sink]
    deadline: float  # on `clock`
    clock: Callable[[], float]
    wall: Callable[[], float]
    sleep: Callable[[float], None]
    owner: str  # the run id: the lease's owner
    on_page: Callable[[AlertBatch, Checkpoint], None] | None = None
    # The latest checkpoint this run read or wrote (with its ETag): the one the next write must match.
    cp: Checkpoint | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.key = self.options.key or self.profile.name
        self.started_wall, self.started = self.wall(), self.clock()
        self.result = PullResult(
            self.profile.name, self.options.stream, self.key, self.owner, _iso(self.started_wall)
        )
        self.stats = RequestStats()

    def run(self) -> PullResult:
        result, stream, key = self.result, self.options.stream, self.key
        try:
            self.cp = self._take_lease()
            if self.cp is None:
                result.stopped = "busy"
            elif self.cp.complete:
                result.stopped = "complete"
            else:
                self._read_pages()
        except CheckpointConflict:
            result.stopped = "lease_lost"
            log.warning("alert pull %s/%s: another run took the checkpoint; stopping", stream, key)
            self.cp = None
        except BudgetExhaustedError:
            result.stopped = "budget"
        except McasError as exc:
            result.stopped, result.error = "error", f"{type(exc).__name__}: {exc}"
            result.terminal = isinstance(exc, TerminalError)
            log.error("alert pull %s/%s failed: %s", stream, key, result.error)
        except Exception as exc:  # a bug must not stop the other tenants; it is recorded and logged in full
            result.stopped, result.error = "error", f"{type(exc).__name__}: {exc}"
            log.exception("alert pull %s/%s crashed", stream, key)
        finally:
            self._release()
        self._report()
        return result

    def _take_lease(self) -> Checkpoint | None:
        """The checkpoint with our lease on it, or None when another live run holds it."""
        options, stream, key = self.options, self.options.stream, self.key
        while True:
            cp = self.store.load(stream, key)
            if cp is None:
                if options.start_ms is None:
                    raise ConfigurationError("window start", "is needed for a first run (no checkpoint yet)")
                cp = Checkpoint(watermark_ms=options.start_ms)
            if cp.complete:
                return cp
            now = self.wall()
            if cp.lease_held_by_other(self.owner, now):
                wait = cp.lease_until - now + 0.05
                if not options.wait_for_lease or self.clock() + wait > self.deadline:
                    log.info("alert pull %s/%s: another run holds the lease; skipping", stream, key)
                    return None
                self.sleep(min(wait, 0.5))  # poll: the holder usually releases well before its lease expires
                continue
            try:
                return self.store.save(stream, key, cp.leased(self.owner, now + options.lease_s))
            except CheckpointConflict:
                continue  # someone wrote in between: look again

    def _read_pages(self) -> None:
        """The page loop: each page is claimed, delivered and committed before the next is read."""
        options, result = self.options, self.result
        # Leave time to deliver and commit the last page: queries must finish well before the run's deadline.
        budget = max(0.0, self.deadline - self.clock())
        query_deadline = self.deadline - min(30.0, 0.25 * budget)
        assert self.cp is not None
        window = PageWindow(
            end_ms=options.end_ms,
            deadline=query_deadline,
            max_pages=options.max_pages,
            clock=self.clock,
            filters=options.filters,
        )
        pages = self.source.pages(self.cp, window, self.stats)
        try:
            while True:
                if result.pages >= options.max_pages:
                    result.stopped = "page_cap"
                    return
                page = next(pages, None)
                if page is None:
                    self._finish()
                    return
                result.skipped_malformed += page.malformed
                if not page.alerts:
                    self._keep_cursor(page.checkpoint)
                    self._finish()
                    return
                self._deliver_and_commit(page)
                if not page.more:
                    self._finish()
                    return
                if self.clock() >= query_deadline - 1.0:
                    result.stopped = "budget"
                    return
        finally:
            pages.close()

    def _keep_cursor(self, moved: Checkpoint) -> None:
        """Nothing new; the cursor may still have moved past delivered records (kept with the lease)."""
        cp = self._current()
        self.cp = dataclasses.replace(
            moved, etag=cp.etag, lease_owner=cp.lease_owner, lease_until=cp.lease_until
        )

    def _deliver_and_commit(self, page: SourcePage) -> None:
        check_monotonic(self._current(), page.checkpoint)
        name, stream = self.profile.name, self.options.stream
        batch = AlertBatch.build(
            name, stream, page_key(name, stream, self.key, [version_key(a) for a in page.alerts]), page.alerts
        )
        self._claim()
        self._deliver(batch)
        self._commit(page.checkpoint, batch)

    def _claim(self) -> None:
        """Unless our lease was renewed moments ago (90% of it left: the usual case, one commit per page),
        renew it conditionally first - if another run took the checkpoint, this raises CheckpointConflict
        before anything is delivered."""
        cp, lease_s = self._current(), self.options.lease_s
        if cp.lease_until - self.wall() < 0.9 * lease_s:
            self.cp = self.store.save(
                self.options.stream, self.key, cp.leased(self.owner, self.wall() + lease_s)
            )

    def _deliver(self, batch: AlertBatch) -> None:
        """Every sink, ending well before the lease does, so no other run can start on this page meanwhile."""
        lease_left = self._current().lease_until - self.wall()
        cutoff = min(self.deadline, self.clock() + lease_left - 0.1 * self.options.lease_s)
        deliver_all(self.sinks, batch, deadline=cutoff)

    def _commit(self, advanced: Checkpoint, batch: AlertBatch) -> None:
        """Write the advanced checkpoint (which renews the lease); only then does the page count as done."""
        committed = dataclasses.replace(advanced, etag=self._current().etag).leased(
            self.owner, self.wall() + self.options.lease_s
        )
        self.cp = self.store.save(self.options.stream, self.key, committed)
        result = self.result
        result.pages += 1
        result.alerts += len(batch.alerts)
        result.newest_ms = max(result.newest_ms or 0, batch.last_ms)
        if self.on_page is not None:
            self.on_page(batch, self.cp)

    def _finish(self) -> None:
        """Caught up; ad-hoc jobs also flag the checkpoint complete."""
        self.result.stopped = "caught_up"
        cp = self.cp
        if self.options.mark_complete and cp is not None and not cp.complete:
            self.cp = self.store.save(self.options.stream, self.key, dataclasses.replace(cp, complete=True))
            self.result.stopped = "complete"

    def _release(self) -> None:
        cp = self.cp
        if cp is not None and cp.lease_owner == self.owner:
            try:
                self.cp = self.store.save(self.options.stream, self.key, cp.released())
            except Exception as exc:  # the lease expires by itself; never mask the run's own outcome
                log.warning(
                    "could not release the checkpoint lease %s/%s (%s)", self.options.stream, self.key, exc
                )

    def _report(self) -> None:
        """The run's end, request counts and lag behind the checkpoint it leaves."""
        result = self.result
        ended_wall = self.wall()
        result.ended_at = _iso(ended_wall)
        result.duration_s = round(self.clock() - self.started, 3)
        result.requests, result.throttled = self.stats.requests, self.stats.throttled
        final = self.cp
        if final is None:
            try:
                final = self.store.load(self.options.stream, self.key)
            except Exception:  # reporting only
                final = None
        if final is not None:
            result.watermark_ms = final.watermark_ms
            result.lag_s = round(max(0.0, ended_wall - final.watermark_ms / 1000), 3)

    def _current(self) -> Checkpoint:
        assert self.cp is not None  # set by the lease before any page is read
        return self.cp


def _iso(epoch_s: float) -> str:
    return iso_from_ms(int(epoch_s * 1000))


# -- health records ---------------------------------------------------------------------------------


def record_health(result: PullResult) -> None:
    """One row per run per tenant in `mcasHealth` (newest first within the tenant's partition)."""
    from shared.storage import TABLE_HEALTH, table_client

    started_ms = epoch_ms(parse_instant(result.started_at, "iso8601"))
    entity: dict[str, Any] = {
        "PartitionKey": f"alerts.{result.tenant}",
        "RowKey": f"{10**13 - started_ms:013d}-{result.run_id}",
        "kind": "alerts",
        "stream": result.stream,
        "checkpoint": result.key,
        "start": result.started_at,
        "end": result.ended_at,
        "duration_s": float(result.duration_s),
        "alerts_delivered": result.alerts,
        "pages": result.pages,
        "requests": result.requests,
        "throttled_429": result.throttled,
        "lag_s": float(result.lag_s) if result.lag_s is not None else -1.0,
        "watermark_ms": str(result.watermark_ms) if result.watermark_ms is not None else "",
        "stopped": result.stopped,
        "error": (result.error or "")[:1000],
    }
    table_client(TABLE_HEALTH).upsert_entity(entity)


def _safe_record(recorder: Callable[[PullResult], None], result: PullResult) -> None:
    try:
        recorder(result)
    except Exception as exc:  # losing a health row must not fail a run that delivered alerts
        log.warning("could not write the health record for %s: %s", result.tenant, exc)


# -- entry points -----------------------------------------------------------------------------------


@dataclass
class PullEnvironment:
    """The seams of a run; `default_environment()` wires the real ones."""

    api_for: Callable[[TenantProfile], AlertsApi]
    store: CheckpointStore
    sinks: Sequence[Sink]
    recorder: Callable[[PullResult], None] = record_health
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    schema_version: int = 1
    # The Graph security API client of a profile (`alert_source = graph`); built lazily by default.
    graph_for: Callable[[TenantProfile], GraphAlertsApi] | None = None
    graph_overlap_s: float = 300.0

    def pull(
        self, profile: TenantProfile, options: PullOptions, source: AlertSource, deadline: float
    ) -> PullResult:
        """One feed of one tenant (see `plan_sources`) through this environment's store, sinks and clocks."""
        return pull_tenant(
            profile,
            options,
            source=source,
            store=self.store,
            sinks=self.sinks,
            deadline=deadline,
            clock=self.clock,
            wall=self.wall,
            sleep=self.sleep,
        )


def plan_sources(
    profile: TenantProfile, options: PullOptions, env: PullEnvironment
) -> list[tuple[PullOptions, AlertSource]]:
    """The (stream, source) runs of one tenant, in order: one per change feed of its alert source.

    - `mda`: with schema 2 first closures and status changes by resolution date (stream `alerts-changes`),
      then new alerts by creation time (stream `alerts`) - last, so the tenant's newest health row is the
      new-alerts feed's, whose lag and errors the health check reports;
    - `graph`: every new `lastUpdateDateTime` of an alert (stream `alerts-graph`).
    Ad-hoc window jobs read the MDA alerts API whatever the profile says (their filters are its grammar).
    """
    from shared.alerts.checkpoints import STREAM_GRAPH
    from shared.alerts.mda_source import MdaAlertSource, MdaChangesSource

    if (options.source or profile.alert_source) == "graph" and options.stream == STREAM_SCHEDULED:
        from shared.alerts.graph_source import GraphAlertSource

        if env.schema_version < 2:
            raise ConfigurationError(
                "MCAS_ALERT_SCHEMA_VERSION", "must be 2 for the graph alert source (version 1 is MDA-only)"
            )
        graph = env.graph_for(profile) if env.graph_for is not None else _graph_api(profile)
        source = GraphAlertSource(
            graph,
            tenant=profile.name,
            service_sources=profile.graph_service_sources,
            overlap_s=env.graph_overlap_s,
        )
        # No settle delay: the overlap re-reads behind the cursor, so a late-visible update is not skipped.
        return [(dataclasses.replace(options, stream=STREAM_GRAPH, end_ms=None), source)]
    api = env.api_for(profile)
    runs: list[tuple[PullOptions, AlertSource]] = [
        (options, MdaAlertSource(api, tenant=profile.name, schema_version=env.schema_version))
    ]
    if env.schema_version >= 2 and options.stream == STREAM_SCHEDULED:
        # The creation feed's cursor as it stands before this run (see MdaChangesSource).
        before = env.store.load(options.stream, options.key or profile.name)
        changes = MdaChangesSource(
            api,
            tenant=profile.name,
            creation_watermark_ms=before.watermark_ms if before is not None else None,
            wall=env.wall,
        )
        # A tenant's first changes cursor starts now: earlier closures are in the state the creation feed
        # delivers (or delivered), so the lookback would only repeat them.
        first_start = int(env.wall() * 1000)
        runs.insert(0, (dataclasses.replace(options, stream=STREAM_CHANGES, start_ms=first_start), changes))
    return runs


def _graph_api(profile: TenantProfile) -> GraphAlertsApi:
    from shared.graph.alerts import GraphAlertsApi
    from shared.graph.client import graph_client_for

    return GraphAlertsApi(graph_client_for(profile))


def default_environment(
    config: AlertConfig, *, extra_sinks: Sequence[Sink] = (), require_sink: bool = True
) -> PullEnvironment:
    from shared.alerts.checkpoints import checkpoint_store
    from shared.mda.client import client_for

    sinks: list[Sink] = [
        *build_sinks(
            config.sinks, webhook_url=config.webhook_url, webhook_secret_name=config.webhook_secret_name
        ),
        *extra_sinks,
    ]
    if require_sink and not sinks:
        raise ConfigurationError("MCAS_ALERT_SINKS", "names no sink: set any of queue, blob, webhook, logs")
    return PullEnvironment(
        api_for=lambda p: AlertsApi(client_for(p)),
        store=checkpoint_store(),
        sinks=sinks,
        schema_version=config.schema_version,
        graph_overlap_s=config.graph_overlap_s,
    )


def run_scheduled(
    *,
    settings: Settings | None = None,
    env: PullEnvironment | None = None,
    start_ms: int | None = None,
    tenants: Sequence[str] | None = None,
    budget_s: float | None = None,
    wait_for_lease: bool = False,
    source: str | None = None,
) -> list[PullResult]:
    """The timer's run over every tenant profile (concurrently); `mcasctl alerts pull` runs the same
    (`source` overrides each profile's alert source)."""
    settings = settings or get_settings()
    config = AlertConfig.from_settings(settings)
    env = env or default_environment(config)
    profiles = [p for p in settings.tenants if tenants is None or p.name in tenants]
    if tenants is not None and len(profiles) != len(set(tenants)):
        known = ", ".join(p.name for p in settings.tenants)
        raise ConfigurationError("--tenant", f"names an unknown tenant profile (known: {known})")
    deadline = env.clock() + (budget_s if budget_s is not None else config.time_budget_s)
    now_ms = int(env.wall() * 1000)
    options = PullOptions(
        stream=STREAM_SCHEDULED,
        start_ms=start_ms if start_ms is not None else now_ms - int(config.first_fetch_lookback_s * 1000),
        end_ms=now_ms - int(config.settle_s * 1000) if config.settle_s > 0 else None,
        max_pages=config.max_pages_per_run,
        lease_s=config.lease_s,
        wait_for_lease=wait_for_lease,
        source=source,
    )
    return run_tenants(profiles, options, env, deadline)


def run_scheduled_entry(*, past_due: bool = False) -> list[PullResult]:
    """Timer entry: pull every tenant; fail the invocation (for monitoring) if any tenant's run failed."""
    if past_due:
        log.info("alert pull timer is past due; running now")
    results = run_scheduled()
    failed = [r for r in results if r.error]
    if failed:
        raise McasError("alert pull failed for " + "; ".join(f"{r.tenant}: {r.error}" for r in failed))
    return results


def run_tenants(
    profiles: Sequence[TenantProfile], options: PullOptions, env: PullEnvironment, deadline: float
) -> list[PullResult]:
    def one(profile: TenantProfile) -> list[PullResult]:
        return run_tenant(profile, options, env, deadline)

    if len(profiles) == 1:
        return one(profiles[0])
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(profiles)), thread_name_prefix="alert-pull") as pool:
        return [r for rs in pool.map(propagate(one), profiles) for r in rs]


def run_tenant(
    profile: TenantProfile, options: PullOptions, env: PullEnvironment, deadline: float
) -> list[PullResult]:
    """Every feed of one tenant's alert source (see `plan_sources`), each with its health row and metrics:
    the entry point for one tenant. Results: the new-alerts (or Graph) feed first. Never raises for API,
    sink or storage trouble."""
    with log_context(tenant=profile.name):
        results: list[PullResult] = []
        try:
            runs = plan_sources(profile, options, env)
        except Exception as exc:  # e.g. an unusable Graph setting: this tenant fails, the others run
            failed = PullResult(profile.name, options.stream, options.key or profile.name, "-", "")
            failed.stopped, failed.error = "error", f"{type(exc).__name__}: {exc}"
            failed.terminal = isinstance(exc, TerminalError)
            runs, results = [], [failed]
        for run_options, source in runs:
            result = env.pull(profile, run_options, source, deadline)
            _safe_record(env.recorder, result)
            record_metrics(result)
            _log_result(result)
            results.append(result)
    # The main feed's result first (callers read `[0]`), the closures feed after it.
    results.sort(key=lambda r: r.stream == STREAM_CHANGES)
    return results


def probe_tenant(
    profile: TenantProfile, env: PullEnvironment, *, deadline: float | None = None, source: str | None = None
) -> bool:
    """Whether a scheduled pull of this tenant would find anything: one one-item request per feed against
    its committed checkpoint (True without a checkpoint: the tenant was never pulled). Cheap enough to poll
    many tenants every minute and pull only where something changed."""
    options = PullOptions(stream=STREAM_SCHEDULED, start_ms=int(env.wall() * 1000), source=source)
    for run_options, feed in plan_sources(profile, options, env):
        cp = env.store.load(run_options.stream, run_options.key or profile.name)
        if cp is None or feed.probe(cp, deadline=deadline):
            return True
    return False


def record_metrics(result: PullResult) -> None:
    """The run's figures as metrics (no-ops unless telemetry is configured)."""
    metrics.add("alerts_pulled", result.alerts, tenant=result.tenant)
    metrics.add("alert_pages", result.pages, tenant=result.tenant)
    metrics.add("throttled_429", result.throttled, tenant=result.tenant)
    if result.lag_s is not None and result.stream != STREAM_CHANGES:  # closures: no "newest alert" age
        metrics.record("pull_lag", result.lag_s, tenant=result.tenant)


def _log_result(result: PullResult) -> None:
    log.info(
        "alert pull %s: %d alerts in %d pages, %d requests, %d x 429, stopped: %s%s",
        result.tenant,
        result.alerts,
        result.pages,
        result.requests,
        result.throttled,
        result.stopped,
        f" ({result.error})" if result.error else "",
    )


def summarize(results: Sequence[PullResult]) -> Mapping[str, Any]:
    return {
        "tenants": len(results),
        "alerts": sum(r.alerts for r in results),
        "pages": sum(r.pages for r in results),
        "requests": sum(r.requests for r in results),
        "throttled": sum(r.throttled for r in results),
        "errors": [f"{r.tenant}: {r.error}" for r in results if r.error],
    }
