"""Fan-out: the timer picks the due tenants and queues one message each; a queue function pulls each one.

Why: one invocation pulling every tenant lets a slow or failing tenant delay the others and cannot scale
past one instance. With one message per tenant on `mcas-alert-tenant-pulls`, the platform spreads the pulls
over instances, and a tenant's outage stays in its own health rows and dead letters.

Timer (`schedule_due`), every slot (one minute by default):
- a tenant is due unless a message for it is still outstanding (`pending_until`, in `mcasFanout`) or it is
  backing off after failures;
- claiming a tenant's slot is an ETag-conditional write (an insert-if-absent for a new tenant) of
  `slot` on its `mcasFanout` row, so two timers firing in the same slot never queue a tenant twice; only the
  writer that won queues the message (a crash between the two loses one slot's probe, nothing else: the
  checkpoint decides what is delivered, and the pending mark expires after `PENDING_TIMEOUT_S`).

Queue function (`handle_tenant_message`), per message:
1. probe (one request of one item, shared/alerts/probe.py): the oldest alert the checkpoint does not cover.
   Nothing: write an `idle` health row and stop - an idle tenant costs one request a minute.
2. that alert is still inside the settle window: nothing to pull yet; queue a follow-up message that becomes
   visible the moment it settles (a queue message's initial visibility delay) instead of waiting for the
   next slot. Alert-to-sink latency is then the settle window plus seconds, not settle plus the schedule.
3. otherwise the normal pull (shared/alerts/pull.py `pull_tenant`: lease, checkpoint, budget, sinks) up to
   now minus the settle window, then one more probe for the oldest alert left and its follow-up.
Errors: a terminal one (bad credential, 403, unknown data) dead-letters the message at once with the reason
and backs the tenant off; a transient one raises so the host retries the message and finally moves it to
`mcas-alert-tenant-pulls-poison`, whose handler dead-letters it and backs the tenant off. Either way only
that tenant is affected.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.alerts.checkpoints import STREAM_SCHEDULED, CheckpointStore
from shared.alerts.config import AlertConfig
from shared.alerts.probe import ProbeResult, probe_mda
from shared.alerts.pull import (
    PullEnvironment,
    PullOptions,
    PullResult,
    plan_sources,
    record_health,
    record_metrics,
)
from shared.alerts.sinks import Sink, build_sinks
from shared.errors import ConfigurationError, McasError, TerminalError, ValidationError
from shared.log_context import log_context
from shared.mda.alerts import AlertsApi
from shared.mda.client import RequestStats
from shared.mda.errors import BudgetExhaustedError
from shared.settings import Settings, get_settings
from shared.tenants.registry import TenantTarget
from shared.timeparse import iso_from_ms

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)

SLOT_S = 60.0  # slot length: two timer firings within one slot are the same firing
PENDING_TIMEOUT_S = 900.0  # an outstanding message not finished by then is presumed lost
FOLLOWUP_MARGIN_S = 2.0  # a follow-up becomes visible this long after the newest alert settles
BACKOFF_BASE_S = 120.0  # a failing tenant is retried after 2, 4, 8 ... minutes
BACKOFF_CAP_S = 3600.0
MESSAGE_VERSION = 1
_PARTITION = "tenant"


# -- settings -----------------------------------------------------------------------------------------------


def fanout_enabled(settings: Settings | None = None) -> bool:
    """`MCAS_ALERTS_FANOUT` (default true): the timer queues one message per tenant instead of pulling."""
    settings = settings or get_settings()
    raw = (settings.get("MCAS_ALERTS_FANOUT", "true") or "true").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError("MCAS_ALERTS_FANOUT", f"must be true or false, got {raw!r}")


# -- messages -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantMessage:
    tenant: str
    slot: int  # epoch seconds of the slot start
    kind: str = "probe"  # "probe" (from the timer) | "followup" (an alert settles)
    dedupe: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": MESSAGE_VERSION,
                "tenant": self.tenant,
                "slot": iso_from_ms(self.slot * 1000),
                "slot_s": self.slot,
                "kind": self.kind,
                "dedupe": self.dedupe or dedupe_key(self.tenant, self.slot, self.kind),
            },
            sort_keys=True,
        )

    @classmethod
    def parse(cls, body: str) -> TenantMessage:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise ValidationError("tenant pull message is not JSON") from None
        if not isinstance(data, dict):
            raise ValidationError("tenant pull message must be a JSON object")
        if data.get("v") != MESSAGE_VERSION:
            raise ValidationError(
                f"tenant pull message version must be {MESSAGE_VERSION}, got {data.get('v')!r}"
            )
        tenant, slot, kind = data.get("tenant"), data.get("slot_s"), data.get("kind", "probe")
        if (
            not isinstance(tenant, str)
            or not tenant
            or not tenant.replace("-", "").replace("_", "").isalnum()
        ):
            raise ValidationError(f"tenant pull message names no valid tenant ({tenant!r:.60})")
        if not isinstance(slot, int) or isinstance(slot, bool) or slot < 0:
            raise ValidationError(f"tenant pull message has no valid slot_s ({slot!r:.40})")
        if kind not in ("probe", "followup"):
            raise ValidationError(f"tenant pull message kind must be probe or followup, got {kind!r:.40}")
        return cls(tenant, slot, kind, str(data.get("dedupe") or ""))


def dedupe_key(tenant: str, slot: int, kind: str = "probe") -> str:
    return f"{tenant}@{slot}" + ("" if kind == "probe" else f"/{kind}")


def slot_of(now: float, slot_s: float = SLOT_S) -> int:
    return int(now // slot_s * slot_s)


# -- per-tenant fan-out state (mcasFanout) ------------------------------------------------------------------


@dataclass
class FanoutRow:
    tenant: str
    slot: int = -1
    pending_until: float = 0.0
    failures: int = 0
    etag: str | None = None


class FanoutState:
    """One row per tenant: the last slot queued, until when a message is outstanding, failures in a row."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def load_all(self) -> dict[str, FanoutRow]:
        rows: dict[str, FanoutRow] = {}
        for entity in self._table.query_entities(f"PartitionKey eq '{_PARTITION}'"):
            row = _row_from_entity(entity)
            rows[row.tenant] = row
        return rows

    def load(self, tenant: str) -> FanoutRow | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return _row_from_entity(self._table.get_entity(_PARTITION, tenant))
        except ResourceNotFoundError:
            return None

    def claim(self, row: FanoutRow | None, tenant: str, slot: int, pending_until: float) -> bool:
        """Take `slot` for `tenant`: conditional on the row as read (insert-if-absent for a new row)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        entity = {
            "PartitionKey": _PARTITION,
            "RowKey": tenant,
            "slot": slot,
            "pending_until": float(pending_until),
            "failures": row.failures if row is not None else 0,
        }
        try:
            if row is None or row.etag is None:
                self._table.create_entity(entity)
            else:
                self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=row.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError):
            return False
        return True

    def finish(self, tenant: str, *, pending_until: float = 0.0, failed: bool = False, now: float) -> float:
        """The message is done: clear (or extend, for a follow-up) the pending mark; back off after a failure.

        Returns the time until which the tenant is not due.
        """
        from azure.data.tables import UpdateMode

        current = self.load(tenant)
        failures = (current.failures + 1 if current else 1) if failed else 0
        until = pending_until
        if failed:
            until = max(until, now + min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (failures - 1)))
        self._table.upsert_entity(
            {
                "PartitionKey": _PARTITION,
                "RowKey": tenant,
                "pending_until": float(until),
                "failures": failures,
            },
            mode=UpdateMode.MERGE,
        )
        return until


def _row_from_entity(entity: Any) -> FanoutRow:
    metadata = getattr(entity, "metadata", {}) or {}
    return FanoutRow(
        tenant=str(entity["RowKey"]),
        slot=int(entity.get("slot", -1) if entity.get("slot") is not None else -1),
        pending_until=float(entity.get("pending_until") or 0.0),
        failures=int(entity.get("failures") or 0),
        etag=metadata.get("etag"),
    )


def fanout_state() -> FanoutState:
    from shared.storage import TABLE_FANOUT, table_client

    return FanoutState(table_client(TABLE_FANOUT))


# -- the timer ----------------------------------------------------------------------------------------------


@dataclass
class ScheduleResult:
    slot: int
    tenants: int = 0
    enqueued: list[str] = field(default_factory=list)
    already_queued: int = 0  # another timer took this slot for the tenant
    not_due: int = 0  # a message is outstanding, or the tenant backs off after failures


def schedule_due(
    targets: Sequence[TenantTarget],
    *,
    state: FanoutState,
    send: Callable[[str, float], None],
    now: float,
    slot_s: float = SLOT_S,
    workers: int = 8,
) -> ScheduleResult:
    """Queue one message per due tenant for the slot containing `now`. Safe to run twice per slot."""
    slot = slot_of(now, slot_s)
    result = ScheduleResult(slot=slot, tenants=len(targets))
    rows = state.load_all()

    def one(target: TenantTarget) -> str:
        row = rows.get(target.name)
        if row is not None and row.slot >= slot:
            return "already"
        if row is not None and row.pending_until > now:
            return "not_due"
        if not state.claim(row, target.name, slot, now + PENDING_TIMEOUT_S):
            return "already"
        send(TenantMessage(target.name, slot).to_json(), 0.0)
        return "enqueued"

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="alert-fanout") as pool:
        outcomes = list(pool.map(one, targets))
    for target, outcome in zip(targets, outcomes, strict=True):
        if outcome == "enqueued":
            result.enqueued.append(target.name)
        elif outcome == "already":
            result.already_queued += 1
        else:
            result.not_due += 1
    return result


def queue_sender(queue_name: str | None = None) -> Callable[[str, float], None]:
    from shared.storage import QUEUE_ALERT_TENANT_PULLS, queue_client

    client = queue_client(queue_name or QUEUE_ALERT_TENANT_PULLS)

    def send(body: str, delay_s: float) -> None:
        client.send_message(body, visibility_timeout=int(delay_s) if delay_s > 0 else None)

    return send


def run_timer_entry(*, past_due: bool = False) -> ScheduleResult:
    """Timer entry (fan-out mode): queue the due tenants of this slot."""
    from shared.tenants.registry import all_targets

    if past_due:
        log.info("alert fan-out timer is past due; running now")
    targets = all_targets()
    if not AlertConfig.from_settings().sinks and all(t.sinks is None for t in targets):
        raise ConfigurationError("MCAS_ALERT_SINKS", "names no sink: set any of queue, blob, webhook")
    result = schedule_due(targets, state=fanout_state(), send=queue_sender(), now=time.time())
    log.info(
        "alert fan-out slot %s: %d tenants, %d queued, %d already queued, %d not due",
        iso_from_ms(result.slot * 1000),
        result.tenants,
        len(result.enqueued),
        result.already_queued,
        result.not_due,
    )
    return result


# -- the queue function -------------------------------------------------------------------------------------


@dataclass
class TenantEnvironment:
    """The seams of one tenant's run; `default_tenant_environment()` wires the real ones."""

    config: AlertConfig
    find: Callable[[str], tuple[TenantTarget | None, str]]
    api_for: Callable[[TenantTarget], AlertsApi]
    store: CheckpointStore
    sinks_for: Callable[[TenantTarget], Sequence[Sink]]
    state: FanoutState
    send: Callable[[str, float], None]
    dead_letter: Callable[..., Any]
    recorder: Callable[[PullResult], None] = record_health
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    queue_name: str = "mcas-alert-tenant-pulls"


@dataclass
class TenantOutcome:
    tenant: str
    action: str  # idle | pulled | deferred | busy | dead_lettered | skipped
    result: PullResult | None = None
    probe: ProbeResult | None = None
    followup_at: float | None = None
    requests: int = 0


def default_tenant_environment(settings: Settings | None = None) -> TenantEnvironment:
    from shared.alerts.checkpoints import checkpoint_store
    from shared.deadletters import dead_letter
    from shared.mda.client import client_for
    from shared.storage import QUEUE_ALERT_TENANT_PULLS
    from shared.tenants.registry import find_target

    settings = settings or get_settings()
    config = AlertConfig.from_settings(settings)
    cache: dict[tuple[str, ...] | None, list[Sink]] = {}

    def sinks_for(target: TenantTarget) -> Sequence[Sink]:
        names = target.sinks if target.sinks is not None else config.sinks
        key = tuple(names)
        if key not in cache:
            cache[key] = build_sinks(
                names, webhook_url=config.webhook_url, webhook_secret_name=config.webhook_secret_name
            )
        return cache[key]

    return TenantEnvironment(
        config=config,
        find=lambda name: find_target(name, settings),
        api_for=lambda t: AlertsApi(client_for(t.profile)),
        store=checkpoint_store(),
        sinks_for=sinks_for,
        state=fanout_state(),
        send=queue_sender(QUEUE_ALERT_TENANT_PULLS),
        dead_letter=dead_letter,
        queue_name=QUEUE_ALERT_TENANT_PULLS,
    )


def handle_tenant_message(
    body: str,
    *,
    message_id: str | None = None,
    dequeue_count: int | None = None,
    env: TenantEnvironment | None = None,
) -> TenantOutcome:
    """Queue entry: probe one tenant and pull it when there is something. Raises only to be retried."""
    env = env or default_tenant_environment()

    def reject(reason: str) -> None:
        env.dead_letter(
            source=env.queue_name,
            reason=reason,
            body=body,
            message_id=message_id,
            dequeue_count=dequeue_count,
        )

    try:
        message = TenantMessage.parse(body)
    except ValidationError as exc:
        reject(exc.reason)
        return TenantOutcome("", "dead_lettered")
    with log_context(tenant=message.tenant):
        target, why_not = env.find(message.tenant)
        if target is None:
            reject(f"tenant {message.tenant!r} {why_not}: nothing to pull")
            return TenantOutcome(message.tenant, "dead_lettered")
        outcome = run_tenant(target, env)
        result = outcome.result
        if result is not None and result.error:
            if result.terminal:
                reject(f"tenant {target.name}: {result.error}")
                env.state.finish(target.name, failed=True, now=env.wall())
                outcome.action = "dead_lettered"
                return outcome
            # Transient: the host retries this message (then poison -> dead letter); the pending mark stays.
            raise McasError(f"alert pull of tenant {target.name} failed: {result.error}")
        pending_until = 0.0
        if outcome.followup_at is not None:
            followup = TenantMessage(target.name, message.slot, "followup")
            env.send(followup.to_json(), max(0.0, math.ceil(outcome.followup_at - env.wall())))
            pending_until = outcome.followup_at + PENDING_TIMEOUT_S
        env.state.finish(target.name, pending_until=pending_until, now=env.wall())
        return outcome


def handle_poison_message(
    body: str,
    *,
    message_id: str | None = None,
    dequeue_count: int | None = None,
    env: TenantEnvironment | None = None,
) -> None:
    """A tenant message that exhausted its retries: dead-letter it and back the tenant off."""
    from shared.deadletters import dead_letter
    from shared.storage import QUEUE_ALERT_TENANT_PULLS

    sink = env.dead_letter if env is not None else dead_letter
    queue = env.queue_name if env is not None else QUEUE_ALERT_TENANT_PULLS
    sink(
        source=f"{queue}-poison",
        reason="tenant alert pull exhausted its retries",
        body=body,
        message_id=message_id,
        dequeue_count=dequeue_count,
    )
    try:
        tenant = TenantMessage.parse(body).tenant
    except ValidationError:
        return
    state = env.state if env is not None else fanout_state()
    state.finish(tenant, failed=True, now=time.time() if env is None else env.wall())


def run_tenant(target: TenantTarget, env: TenantEnvironment) -> TenantOutcome:
    """Probe, then pull what has settled; say when a follow-up is due for what has not settled yet."""
    profile, config = target.profile, env.config
    outcome = TenantOutcome(target.name, "pulled")
    deadline = env.clock() + config.time_budget_s
    api = env.api_for(target)
    now = env.wall()
    settle_ms = int(config.settle_s * 1000)
    end_ms = int(now * 1000) - settle_ms if settle_ms > 0 else None
    cp = env.store.load(STREAM_SCHEDULED, profile.name)
    probing = profile.alert_source == "mda"
    if cp is not None and probing:
        if cp.lease_held_by_other("", now):
            outcome.action = "busy"  # another run is pulling this tenant right now
            return outcome
        stats = RequestStats()
        started_wall = env.wall()
        try:
            probe = probe_mda(api, cp, deadline=deadline, stats=stats)
        except McasError as exc:
            outcome.result = _probe_failure(target, cp, exc, stats, started_wall=started_wall, env=env)
            outcome.requests = stats.requests
            return outcome
        outcome.probe, outcome.requests = probe, stats.requests
        if not probe.has_new and not _changes_pending(target, env, api=api, deadline=deadline):
            outcome.action = "idle"
            outcome.result = _idle_result(target, cp.watermark_ms, stats, started_wall, env)
            return outcome
        if probe.has_new and end_ms is not None and probe.oldest_ms is not None and probe.oldest_ms > end_ms:
            # Even the oldest new alert is still settling: nothing to pull yet; come back when it settles.
            outcome.action = "deferred"
            outcome.followup_at = _settled_at(probe.oldest_ms, config.settle_s)
            outcome.result = _idle_result(
                target, cp.watermark_ms, stats, started_wall, env, stopped="deferred"
            )
            return outcome
    options = PullOptions(
        stream=STREAM_SCHEDULED,
        start_ms=int(now * 1000) - int(config.first_fetch_lookback_s * 1000),
        end_ms=end_ms,
        max_pages=config.max_pages_per_run,
        lease_s=config.lease_s,
    )
    sinks = env.sinks_for(target)
    if not sinks:
        raise ConfigurationError("MCAS_ALERT_SINKS", f"names no sink for tenant {target.name}")
    result = _pull_feeds(target, options, env, api=api, sinks=sinks, deadline=deadline)
    if result.stopped in ("page_cap", "budget") and result.ok:
        outcome.followup_at = env.wall()  # more to catch up: continue at once, not next slot
    elif result.ok and probing and end_ms is not None:
        # What is left is still settling: one more probe finds the oldest, and a follow-up delivers it as
        # soon as it settles (instead of one slot later, which would add up to a minute).
        outcome.followup_at = _next_followup(
            api, env, key=profile.name, deadline=deadline, settle_s=config.settle_s, result=result
        )
    result.requests += outcome.requests  # the first probe counts against the same budget
    outcome.requests = result.requests
    outcome.result = result
    _report(result, env)
    return outcome


def _changes_pending(
    target: TenantTarget, env: TenantEnvironment, *, api: AlertsApi, deadline: float
) -> bool:
    """Whether a feed other than new alerts (MDA closures and status changes) has something after its
    checkpoint: one one-item request per such feed, so a closure on an otherwise idle tenant still arrives."""
    options = PullOptions(stream=STREAM_SCHEDULED, start_ms=int(env.wall() * 1000))
    feeds = plan_sources(target.profile, options, _pull_environment(env, api=api, sinks=()))
    for run_options, feed in feeds[:-1]:
        cp = env.store.load(run_options.stream, run_options.key or target.profile.name)
        if cp is not None and feed.probe(cp, deadline=deadline):
            return True
    return False


def _pull_environment(env: TenantEnvironment, *, api: AlertsApi, sinks: Sequence[Sink]) -> PullEnvironment:
    return PullEnvironment(
        api_for=lambda _profile: api,
        store=env.store,
        sinks=sinks,
        recorder=env.recorder,
        clock=env.clock,
        wall=env.wall,
        sleep=env.sleep,
        schema_version=env.config.schema_version,
        graph_overlap_s=env.config.graph_overlap_s,
    )


def _pull_feeds(
    target: TenantTarget,
    options: PullOptions,
    env: TenantEnvironment,
    *,
    api: AlertsApi,
    sinks: Sequence[Sink],
    deadline: float,
) -> PullResult:
    """Every change feed of the tenant's alert source (MDA: closures, then new alerts; Graph: its change
    feed), as the inline timer runs them; the last feed's result (new alerts, or Graph) is the tenant's."""
    pull_env = _pull_environment(env, api=api, sinks=sinks)
    results: list[PullResult] = []
    for run_options, source in plan_sources(target.profile, options, pull_env):
        results.append(pull_env.pull(target.profile, run_options, source, deadline))
    for earlier in results[:-1]:
        _report(earlier, env)
    return results[-1]


def _settled_at(alert_ms: int, settle_s: float) -> float:
    return alert_ms / 1000 + settle_s + FOLLOWUP_MARGIN_S


def _next_followup(
    api: AlertsApi, env: TenantEnvironment, *, key: str, deadline: float, settle_s: float, result: PullResult
) -> float | None:
    stats = RequestStats()
    try:
        cp = env.store.load(STREAM_SCHEDULED, key)
        probe = probe_mda(api, cp, deadline=deadline, stats=stats) if cp is not None else None
    except McasError as exc:  # the pull itself succeeded; the next slot's probe covers this
        log.warning("alert follow-up probe of %s failed: %s", key, exc)
        return None
    finally:
        result.requests += stats.requests
        result.throttled += stats.throttled
    if probe is None or not probe.has_new:
        return None
    return _settled_at(probe.oldest_ms, settle_s) if probe.oldest_ms is not None else env.wall()


def _run_result(target: TenantTarget, started_wall: float) -> PullResult:
    started = iso_from_ms(int(started_wall * 1000))
    return PullResult(target.name, STREAM_SCHEDULED, target.name, uuid.uuid4().hex[:12], started)


def _idle_result(
    target: TenantTarget,
    watermark_ms: int,
    stats: RequestStats,
    started_wall: float,
    env: TenantEnvironment,
    *,
    stopped: str = "idle",
) -> PullResult:
    result = _run_result(target, started_wall)
    ended = env.wall()
    result.ended_at = iso_from_ms(int(ended * 1000))
    result.duration_s = round(ended - started_wall, 3)
    result.requests, result.throttled = stats.requests, stats.throttled
    result.watermark_ms = watermark_ms
    result.lag_s = round(max(0.0, ended - watermark_ms / 1000), 3)
    result.stopped = stopped
    _report(result, env)
    return result


def _probe_failure(
    target: TenantTarget,
    cp: Any,
    exc: Exception,
    stats: RequestStats,
    *,
    started_wall: float,
    env: TenantEnvironment,
) -> PullResult:
    result = _run_result(target, started_wall)
    result.ended_at = iso_from_ms(int(env.wall() * 1000))
    result.requests, result.throttled = stats.requests, stats.throttled
    result.watermark_ms = cp.watermark_ms
    if isinstance(exc, BudgetExhaustedError):
        result.stopped = "budget"
    else:
        result.stopped, result.error = "error", f"{type(exc).__name__}: {exc}"
        result.terminal = isinstance(exc, TerminalError)
        log.error("alert probe of %s failed: %s", target.name, result.error)
    _report(result, env)
    return result


def _report(result: PullResult, env: TenantEnvironment) -> None:
    try:
        env.recorder(result)
    except Exception as exc:  # losing a health row must not fail a run
        log.warning("could not write the health record for %s: %s", result.tenant, exc)
    record_metrics(result)
    log.info(
        "alert %s %s: %d alerts in %d pages, %d requests, %d x 429%s",
        "probe" if result.stopped in ("idle", "deferred") else "pull",
        result.tenant,
        result.alerts,
        result.pages,
        result.requests,
        result.throttled,
        f" ({result.error})" if result.error else f", {result.stopped}",
    )
