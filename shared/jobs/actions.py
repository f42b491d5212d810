"""One function per job action, each delegating to the feature that owns the API calls.

- alerts.fetch / close / mark_*: `shared.mda.alerts.AlertsApi` over `client_for(profile, user_assertion=...)`,
  so the rate limiter, 429 handling and retries are the alert client's; close safety (no blind re-POST,
  re-check after an ambiguous failure) is `AlertsApi.close`'s.
- A redelivered close job (the queue retried it, or a worker died mid-way) first reads the alerts' state and
  only closes those not yet in the state the job asks for: the API may already have applied the first
  attempt, and an alert closed earlier with another classification is still closed as asked.
- mark_read / mark_unread read state first too (one list call per 100 ids) and only touch alerts not already
  in the wanted state - one API call per alert is the expensive part under 30 requests per minute.
- alerts.update on an MDA tenant: a close (status resolved + classification pick the endpoint, see
  `MDA_CLOSE_BY_CLASSIFICATION`), with the close's safety.
- close / mark_* / update on a tenant whose alert source is Microsoft Graph: shared/jobs/graph_actions.py.
- discovery.upload: the discovery feature's own job parser and `upload_blob_job` (streamed, idempotent by
  hash).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from shared.jobs.schema import (
    ACTION_CLOSE,
    ACTION_DISCOVERY_UPLOAD,
    ACTION_FETCH,
    ACTION_MARK_READ,
    ACTION_MARK_UNREAD,
    ACTION_UPDATE,
    MDA_CLOSE_BY_CLASSIFICATION,
    RESOLUTION_STATUSES,
    SEVERITIES,
    JobSpec,
)

if TYPE_CHECKING:
    from shared.mda.alerts import AlertsApi
    from shared.mda.client import RequestStats
    from shared.mda.filters import Filter
    from shared.settings import TenantProfile

log = logging.getLogger(__name__)

STATUS_UNREAD, STATUS_READ = 0, 1
STATE_CHUNK = 100


@dataclass(frozen=True)
class ActionContext:
    profile: TenantProfile
    user_assertion: str | None  # set: act on behalf of this user (never logged)
    budget_s: float  # seconds this run may spend (time-budgeted API client)
    redelivered: bool  # an earlier attempt may have (partly) happened
    correlation_id: str


def run_action(spec: JobSpec, context: ActionContext) -> dict[str, Any]:
    """Do the job; return its JSON result. Raises the features' typed errors (transient or terminal)."""
    if spec.action == ACTION_DISCOVERY_UPLOAD:
        return _discovery_upload(spec.params, context)
    graph_actions = (ACTION_CLOSE, ACTION_MARK_READ, ACTION_MARK_UNREAD, ACTION_UPDATE)
    if context.profile.alert_source == "graph" and spec.action in graph_actions:
        from shared.jobs.graph_actions import run_graph_action

        return run_graph_action(spec, context)
    from shared.mda.alerts import AlertsApi
    from shared.mda.client import RequestStats, client_for

    client = client_for(context.profile, user_assertion=context.user_assertion)
    api = AlertsApi(client)
    deadline = client.deadline_in(context.budget_s)
    stats = RequestStats()
    if spec.action == ACTION_FETCH:
        result = _fetch(api, spec.params, context, deadline, stats)
    elif spec.action == ACTION_CLOSE:
        result = _close(api, spec.params, context, deadline, stats)
    elif spec.action in (ACTION_MARK_READ, ACTION_MARK_UNREAD):
        result = _mark(api, spec.params, spec.action == ACTION_MARK_READ, deadline, stats)
    elif spec.action == ACTION_UPDATE:
        # Validated at intake: status resolved with a classification the MDA close endpoints express.
        kind = MDA_CLOSE_BY_CLASSIFICATION[spec.params["classification"]]
        close_params = {"kind": kind, "ids": spec.params["ids"]}
        if "comment" in spec.params:
            close_params["comment"] = spec.params["comment"]
        result = _close(api, close_params, context, deadline, stats)
    else:  # pragma: no cover - validate_job admits only known actions
        raise ValueError(f"unknown action {spec.action}")
    result["apiRequests"] = stats.requests
    result["throttled"] = stats.throttled
    return result


# -- alerts --------------------------------------------------------------------------------------------------


def fetch_filter(params: dict[str, Any]) -> Filter:
    """The job's window and friendly filters as the API's filter grammar (https://learn.microsoft.com/defender-cloud-apps/api-alerts)."""
    from shared.mda.filters import Filter

    flt = Filter().where("date", "gte", int(params["sinceMs"])).where("date", "lte", int(params["untilMs"]))
    filters: dict[str, Any] = params.get("filters") or {}
    if filters.get("severity"):
        flt = flt.eq("severity", *(SEVERITIES[name] for name in filters["severity"]))
    if filters.get("resolutionStatus"):
        flt = flt.eq("resolutionStatus", *(RESOLUTION_STATUSES[name] for name in filters["resolutionStatus"]))
    if "read" in filters:
        flt = flt.where("read", "eq", bool(filters["read"]))
    if "open" in filters:
        flt = flt.where("alertOpen", "eq", bool(filters["open"]))
    if filters.get("policyIds"):
        flt = flt.eq("entity.policy", *filters["policyIds"])
    if filters.get("serviceIds"):
        flt = flt.eq("entity.service", *filters["serviceIds"])
    return flt


def _fetch(
    api: AlertsApi, params: dict[str, Any], context: ActionContext, deadline: float, stats: RequestStats
) -> dict[str, Any]:
    from shared.alerts.model import alert_id, normalize
    from shared.errors import ValidationError
    from shared.mda.alerts import ALERTS_PATH
    from shared.mda.errors import MalformedResponseError

    limit = int(params.get("limit") or 100)
    seen: set[str] = set()
    alerts: list[dict[str, Any]] = []
    truncated = False
    for page in api.list_alert_pages(
        fetch_filter(params), sort_direction="desc", deadline=deadline, stats=stats
    ):
        for raw in page.alerts:
            try:
                identifier = alert_id(raw)
                normalized = normalize(raw, tenant=context.profile.name)
            except ValidationError as exc:
                # The API's answer, not the job, is at fault: transient, so the queue retries (bounded).
                raise MalformedResponseError(
                    f"the API returned an alert this app cannot read ({exc})",
                    status=200,
                    method="POST",
                    path=ALERTS_PATH,
                ) from None
            if identifier in seen:
                continue  # page boundaries can repeat an alert
            if len(alerts) >= limit:
                truncated = True
                break
            seen.add(identifier)
            alerts.append(dict(normalized))
        if truncated or len(alerts) >= limit:
            truncated = truncated or page.has_next
            break
    return {
        "window": {"since": params["since"], "until": params["until"]},
        "count": len(alerts),
        "truncated": truncated,
        "alerts": alerts,
    }


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), STATE_CHUNK):
        yield ids[start : start + STATE_CHUNK]


def _states(
    api: AlertsApi, ids: list[str], field: str, deadline: float, stats: RequestStats
) -> dict[str, int | None]:
    """`field` (resolutionStatusValue / statusValue) per id found; missing ids are absent."""
    from shared.mda.filters import Filter

    found: dict[str, int | None] = {}
    for chunk in _chunks(ids):
        page = api.query(Filter().ids(chunk), limit=STATE_CHUNK, deadline=deadline, stats=stats)
        for raw in page.alerts:
            value = raw.get(field)
            found[str(raw.get("_id", "")).lower()] = value if isinstance(value, int) else None
    return found


def _close(
    api: AlertsApi, params: dict[str, Any], context: ActionContext, deadline: float, stats: RequestStats
) -> dict[str, Any]:
    kind = params["kind"]
    ids: list[str] = list(params["ids"])
    not_found: list[str] = []
    already_closed: list[str] = []
    pending = ids
    if context.redelivered:
        from shared.mda.alerts import RESOLUTION_AFTER_CLOSE

        wanted = RESOLUTION_AFTER_CLOSE[kind]
        states = _states(api, ids, "resolutionStatusValue", deadline, stats)
        not_found = [i for i in ids if i not in states]
        already_closed = [i for i in ids if i in states and states[i] == wanted]
        pending = [i for i in ids if i in states and states[i] != wanted]
        log.info(
            "close_%s redelivered: %d still open, %d already closed, %d not found [%s]",
            kind,
            len(pending),
            len(already_closed),
            len(not_found),
            context.correlation_id,
        )
    closed = 0
    confirmed: list[str] = []
    rechecks = 0
    if pending:
        outcome = api.close(
            kind,
            pending,
            reason_id=params.get("reasonId"),
            comment=params.get("comment"),
            send_feedback=bool(params.get("sendFeedback")),
            feedback_text=params.get("feedbackText"),
            allow_contact=bool(params.get("allowContact")),
            contact_email=params.get("contactEmail"),
            deadline=deadline,
            stats=stats,
        )
        closed = outcome.closed + len(outcome.confirmed_by_recheck)
        confirmed = list(outcome.confirmed_by_recheck)
        not_found.extend(outcome.not_found)
        rechecks = outcome.rechecks
    return {
        f"closed_{kind}": closed,
        "alertsNotFound": sorted(set(not_found)),
        "alreadyClosed": already_closed,
        "confirmedByRecheck": confirmed,
        "requested": len(ids),
        "rechecks": rechecks,
    }


def _mark(
    api: AlertsApi, params: dict[str, Any], read: bool, deadline: float, stats: RequestStats
) -> dict[str, Any]:
    from shared.mda.errors import NotFoundError

    ids: list[str] = list(params["ids"])
    wanted = STATUS_READ if read else STATUS_UNREAD
    states = _states(api, ids, "statusValue", deadline, stats)
    not_found = [i for i in ids if i not in states]
    unchanged = [i for i in ids if i in states and states[i] == wanted]
    marked = 0
    for identifier in ids:
        if identifier not in states or states[identifier] == wanted:
            continue
        try:
            if read:
                api.mark_read(identifier, deadline=deadline, stats=stats)
            else:
                api.mark_unread(identifier, deadline=deadline, stats=stats)
        except NotFoundError:
            not_found.append(identifier)
            continue
        marked += 1
    key = "marked_read" if read else "marked_unread"
    return {key: marked, "unchanged": len(unchanged), "alertsNotFound": not_found, "requested": len(ids)}


# -- discovery -----------------------------------------------------------------------------------------------


def _discovery_upload(params: dict[str, Any], context: ActionContext) -> dict[str, Any]:
    import time

    from shared.discovery.config import discovery_config
    from shared.discovery.handler import storage_account, upload_blob_job
    from shared.discovery.jobs import UploadJob, parse_message
    from shared.errors import ValidationError
    from shared.settings import get_settings

    config = discovery_config()
    message = {
        "action": ACTION_DISCOVERY_UPLOAD,
        "blob": params["blob"],
        "source": params["source"],
        "stream": params["stream"],
        "snapshot": bool(params.get("snapshot")),
        "tenant": context.profile.name,
    }
    items = parse_message(
        json.dumps(message),
        container=config.container,
        account=storage_account(),
        extra_sources=config.extra_sources,
        extra_containers=config.extra_containers,
    )
    job = items[0] if items else None
    if not isinstance(job, UploadJob):
        raise ValidationError("the discovery job names nothing to upload")
    deadline = time.monotonic() + min(context.budget_s, config.time_budget_s)
    result = upload_blob_job(job, settings=get_settings(), config=config, deadline=deadline)
    data = asdict(result)
    data["parts"] = len(result.parts) or 1
    data.update(
        {"source": params["source"], "stream": params["stream"], "snapshot": bool(params.get("snapshot"))}
    )
    return data
