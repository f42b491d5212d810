"""SOAR alert jobs on a tenant whose alerts live in Microsoft Graph (`alert_source = graph`).

- alerts.close -> `PATCH /security/alerts_v2/{id}` with status `resolved` and the close kind's
  classification and determination (`CLOSE_AS_GRAPH`), and the comment through the comments call;
- alerts.mark_read / mark_unread -> Graph has no read flag: `read` moves a `new` alert to `inProgress`,
  `unread` moves an `inProgress` alert back to `new`;
- alerts.update -> PATCH with the given status, classification, determination and assignedTo (+ comment).
Every alert is read first and only what differs from the wanted state is sent, so a redelivered job (or a
retried PATCH) does not bump `lastUpdateDateTime` again; a comment already on the alert (an earlier attempt
got through) is not posted twice, and `GraphAlertsApi.add_comment` re-reads after an ambiguous failure
instead of re-sending blindly.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shared.errors import ValidationError
from shared.jobs.schema import ACTION_CLOSE, ACTION_MARK_READ, ACTION_MARK_UNREAD, ACTION_UPDATE, JobSpec

if TYPE_CHECKING:
    from shared.graph.alerts import GraphAlertsApi
    from shared.jobs.actions import ActionContext
    from shared.mda.client import RequestStats

log = logging.getLogger(__name__)

# MDA close kind -> Graph (classification, determination by reasonId; None: keep the alert's determination).
# Microsoft publishes no table; this follows the labels ("benign true positive" is Graph's
# informationalExpectedActivity) and the reasons documented for each close endpoint.
CLOSE_AS_GRAPH: dict[str, tuple[str, dict[int | None, str | None]]] = {
    "true_positive": ("truePositive", {None: None}),
    "benign": (
        "informationalExpectedActivity",
        {6: "securityTesting", 5: "confirmedActivity", None: "other"},
    ),
    "false_positive": ("falsePositive", {3: "notMalicious", None: "other"}),
}


def graph_close_changes(kind: str, reason_id: int | None) -> dict[str, Any]:
    classification, determinations = CLOSE_AS_GRAPH[kind]
    determination = determinations.get(reason_id, determinations.get(None))
    changes: dict[str, Any] = {"status": "resolved", "classification": classification}
    if determination is not None:
        changes["determination"] = determination
    return changes


def run_graph_action(spec: JobSpec, context: ActionContext) -> dict[str, Any]:
    from shared.graph.alerts import GraphAlertsApi
    from shared.graph.client import graph_client_for
    from shared.mda.client import RequestStats

    if context.user_assertion is not None:
        raise ValidationError(
            "jobs on behalf of a user are not supported on Graph tenants; submit them in application context"
        )
    client = graph_client_for(context.profile)
    api = GraphAlertsApi(client)
    deadline = client.deadline_in(context.budget_s)
    stats = RequestStats()
    params = spec.params
    comment: str | None = params.get("comment")
    if spec.action == ACTION_CLOSE:
        wanted = graph_close_changes(params["kind"], params.get("reasonId"))
    elif spec.action == ACTION_UPDATE:
        wanted = {
            k: params[k] for k in ("status", "classification", "determination", "assignedTo") if k in params
        }
    elif spec.action in (ACTION_MARK_READ, ACTION_MARK_UNREAD):
        wanted = {}
        comment = None
    else:  # pragma: no cover - the worker routes only these actions here
        raise ValueError(f"unknown action {spec.action}")
    changed: list[str] = []
    unchanged: list[str] = []
    not_found: list[str] = []
    commented: list[str] = []
    for alert_id in params["ids"]:
        outcome = _one(
            api, spec.action, alert_id, wanted=wanted, comment=comment, deadline=deadline, stats=stats
        )
        {"changed": changed, "unchanged": unchanged, "not_found": not_found}[outcome[0]].append(alert_id)
        if outcome[1]:
            commented.append(alert_id)
    result: dict[str, Any] = {
        "source": "graph",
        "requested": len(params["ids"]),
        "alertsNotFound": not_found,
        "unchanged": len(unchanged),
        "commented": len(commented),
    }
    if spec.action == ACTION_CLOSE:
        result[f"closed_{params['kind']}"] = len(changed)
        result["alreadyClosed"] = unchanged
        result["changes"] = wanted
    elif spec.action == ACTION_UPDATE:
        result["updated"] = len(changed)
        result["changes"] = wanted
    else:
        result["marked_read" if spec.action == ACTION_MARK_READ else "marked_unread"] = len(changed)
    result["apiRequests"] = stats.requests
    result["throttled"] = stats.throttled
    return result


def _one(
    api: GraphAlertsApi,
    action: str,
    alert_id: str,
    *,
    wanted: dict[str, Any],
    comment: str | None,
    deadline: float,
    stats: RequestStats,
) -> tuple[str, bool]:
    """("changed" | "unchanged" | "not_found", commented) for one alert."""
    from shared.graph.alerts import has_comment
    from shared.mda.errors import NotFoundError

    try:
        current = api.get_alert(alert_id, deadline=deadline, stats=stats)
    except NotFoundError:
        return "not_found", False
    if action == ACTION_MARK_READ:
        wanted = {"status": "inProgress"} if current.get("status") == "new" else {}
    elif action == ACTION_MARK_UNREAD:
        wanted = {"status": "new"} if current.get("status") == "inProgress" else {}
    differs = {k: v for k, v in wanted.items() if current.get(k) != v}
    outcome = "unchanged"
    if differs:
        api.update_alert(alert_id, differs, deadline=deadline, stats=stats)
        outcome = "changed"
    commented = False
    if comment and not has_comment(current.get("comments"), comment):
        api.add_comment(alert_id, comment, deadline=deadline, stats=stats)
        commented = True
    return outcome, commented
