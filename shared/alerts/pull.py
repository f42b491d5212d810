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
import datetime as dt
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
from shared.alerts.model import iso_utc_ms
from shared.alerts.sinks import AlertBatch, Sink, build_sinks, deliver_all
from shared.alerts.source import AlertSource, PageWindow, version_key
from shared.errors import ConfigurationError, McasError, TerminalError
from shared.log_context import log_context, propagate
from shared.mda.alerts import AlertsApi
from shared.mda.client import RequestStats

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


@dataclass
class _RunState:
    """The run's latest checkpoint (with its ETag), kept outside the page loop so cleanup sees it."""

    cp: Checkpoint | None = None


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
    run_id = run_id or uuid.uuid4().hex[:12]
    key = options.key or profile.name
    started_wall, started = wall(), clock()
    result = PullResult(profile.name, options.stream, key, run_id, _iso(started_wall))
    stats = RequestStats()
    state = _RunState()
    try:
        state.cp = _take_lease(
            store,
            options=options,
            key=key,
            owner=run_id,
            deadline=deadline,
            clock=clock,
            wall=wall,
            sleep=sleep,
        )
        if state.cp is None:
            result.stopped = "busy"
        elif state.cp.complete:
            result.stopped = "complete"
        else:
            _run_pages(
                profile,
                options=options,
                key=key,
                state=state,
                source=source,
                store=store,
                sinks=sinks,
                deadline=deadline,
                clock=clock,
                wall=wall,
                stats=stats,
                result=result,
                on_page=on_page,
            )
    except CheckpointConflict:
        result.stopped = "lease_lost"
        log.warning("alert pull %s/%s: another run took the checkpoint; stopping", options.stream, key)
        state.cp = None
    except BudgetExhaustedError:
        result.stopped = "budget"
    except McasError as exc:
        result.stopped, result.error = "error", f"{type(exc).__name__}: {exc}"
        result.terminal = isinstance(exc, TerminalError)
        log.error("alert pull %s/%s failed: %s", options.stream, key, result.error)
    except Exception as exc:  # a bug must not stop the other tenants; it is recorded and logged in full
        result.stopped, result.error = "error", f"{type(exc).__name__}: {exc}"
        log.exception("alert pull %s/%s crashed", options.stream, key)
    finally:
        cp = state.cp
        if cp is not None and cp.lease_owner == run_id:
            try:
                state.cp = store.save(options.stream, key, cp.released())
            except Exception as exc:  # the lease expires by itself; never mask the run's own outcome
                log.warning("could not release the checkpoint lease %s/%s (%s)", options.stream, key, exc)
    ended_wall = wall()
    result.ended_at = _iso(ended_wall)
    result.duration_s = round(clock() - started, 3)
    result.requests, result.throttled = stats.requests, stats.throttled
    final = state.cp
    if final is None:
        try:
            final = store.load(options.stream, key)
        except Exception:  # reporting only
            final = None
    if final is not None:
        result.watermark_ms = final.watermark_ms
        result.lag_s = round(max(0.0, ended_wall - final.watermark_ms / 1000), 3)
    return result


def _take_lease(
    store: CheckpointStore,
    *,
    options: PullOptions,
    key: str,
    owner: str,
    deadline: float,
    clock: Callable[[], float],
    wall: Callable[[], float],
    sleep: Callable[[float], None],
) -> Checkpoint | None:
    """The checkpoint with our lease on it, or None when another live run holds it."""
    while True:
        cp = store.load(options.stream, key)
        if cp is None:
            if options.start_ms is None:
                raise ConfigurationError("window start", "is needed for a first run (no checkpoint yet)")
            cp = Checkpoint(watermark_ms=options.start_ms)
        if cp.complete:
            return cp
        now = wall()
        if cp.lease_held_by_other(owner, now):
            wait = cp.lease_until - now + 0.05
            if not options.wait_for_lease or clock() + wait > deadline:
                log.info("alert pull %s/%s: another run holds the lease; skipping", options.stream, key)
                return None
            sleep(min(wait, 0.5))  # poll: the holder usually releases well before its lease expires
            continue
        try:
            return store.save(options.stream, key, cp.leased(owner, now + options.lease_s))
        except CheckpointConflict:
            continue  # someone wrote in between: look again


def _run_pages(
    profile: TenantProfile,
    *,
    options: PullOptions,
    key: str,
    state: _RunState,
    source: AlertSource,
    store: CheckpointStore,
    sinks: Sequence[Sink],
    deadline: float,
    clock: Callable[[], float],
    wall: Callable[[], float],
    stats: RequestStats,
    result: PullResult,
    on_page: Callable[[AlertBatch, Checkpoint], None] | None,
) -> None:
    """The page loop. `state.cp` always holds the latest written checkpoint (and ETag)."""
    owner = result.run_id
    # Leave time to deliver and commit the last page: queries must finish well before the run's deadline.
    budget = max(0.0, deadline - clock())
    query_deadline = deadline - min(30.0, 0.25 * budget)
    assert state.cp is not None
    window = PageWindow(
        end_ms=options.end_ms,
        deadline=query_deadline,
        max_pages=options.max_pages,
        clock=clock,
        filters=options.filters,
    )
    pages = source.pages(state.cp, window, stats)
    try:
        while True:
            cp = state.cp
            assert cp is not None
            if result.pages >= options.max_pages:
                result.stopped = "page_cap"
                return
            page = next(pages, None)
            if page is None:
                _finish(store, options, key, state, result)
                return
            result.skipped_malformed += page.malformed
            if not page.alerts:
                # Nothing new; the cursor may still have moved past delivered records (kept with the lease).
                state.cp = dataclasses.replace(
                    page.checkpoint, etag=cp.etag, lease_owner=cp.lease_owner, lease_until=cp.lease_until
                )
                _finish(store, options, key, state, result)
                return
            check_monotonic(cp, page.checkpoint)
            fresh = page.alerts
            batch = AlertBatch.build(
                profile.name,
                options.stream,
                page_key(profile.name, options.stream, key, [version_key(a) for a in fresh]),
                fresh,
            )
            # Claim the page. Unless our lease was renewed moments ago (90% of it left: the usual case, one
            # commit per page), renew it conditionally first - if another run took the checkpoint, this raises
            # CheckpointConflict before anything is delivered. Delivery must then end well before the lease
            # does, so no other run can start on this page while we deliver it.
            if cp.lease_until - wall() < 0.9 * options.lease_s:
                state.cp = store.save(options.stream, key, cp.leased(owner, wall() + options.lease_s))
            lease_left = (state.cp.lease_until if state.cp is not None else cp.lease_until) - wall()
            deliver_all(sinks, batch, deadline=min(deadline, clock() + lease_left - 0.1 * options.lease_s))
            etag = state.cp.etag if state.cp is not None else None
            committed = dataclasses.replace(page.checkpoint, etag=etag).leased(
                owner, wall() + options.lease_s
            )
            state.cp = store.save(options.stream, key, committed)
            result.pages += 1
            result.alerts += len(fresh)
            result.newest_ms = max(result.newest_ms or 0, batch.last_ms)
            if on_page is not None:
                on_page(batch, state.cp)
            if not page.more:
                _finish(store, options, key, state, result)
                return
            if clock() >= query_deadline - 1.0:
                result.stopped = "budget"
                return
    finally:
        pages.close()


def _finish(
    store: CheckpointStore, options: PullOptions, key: str, state: _RunState, result: PullResult
) -> None:
    result.stopped = "caught_up"
    cp = state.cp
    if options.mark_complete and cp is not None and not cp.complete:
        state.cp = store.save(options.stream, key, dataclasses.replace(cp, complete=True))
        result.stopped = "complete"


def _iso(epoch_s: float) -> str:
    return iso_utc_ms(int(epoch_s * 1000))


# -- health records ---------------------------------------------------------------------------------


def record_health(result: PullResult) -> None:
    """One row per run per tenant in `mcasHealth` (newest first within the tenant's partition)."""
    from shared.storage import TABLE_HEALTH, table_client

    started_ms = int(dt.datetime.fromisoformat(result.started_at.replace("Z", "+00:00")).timestamp() * 1000)
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
            result = pull_tenant(
                profile,
                run_options,
                source=source,
                store=env.store,
                sinks=env.sinks,
                deadline=deadline,
                clock=env.clock,
                wall=env.wall,
                sleep=env.sleep,
            )
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
