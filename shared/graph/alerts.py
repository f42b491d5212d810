"""Typed `alerts_v2` operations over `GraphClient`: list (filtered, paged), get, update, comment.

https://learn.microsoft.com/graph/api/security-list-alerts_v2 (and -alert-get, -alert-update,
-alert-post-comments). Listing filters on `serviceSource` and `lastUpdateDateTime` only (both documented
filter properties), asks for ascending `lastUpdateDateTime` and at most 1,000 alerts a page; the caller pages
by time and uses `@odata.nextLink` only within a tie. Adding a comment is not idempotent (a repeated POST adds
a duplicate): it is never retried blindly - after an ambiguous failure the alert's comments are re-read and
the comment is sent again only when it is not there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shared.errors import ValidationError
from shared.graph.client import GraphClient
from shared.mda.client import RequestStats
from shared.mda.errors import ApiError, MalformedResponseError, is_ambiguous

log = logging.getLogger(__name__)

ALERTS_PATH = "/security/alerts_v2"
MAX_TOP = 1000  # larger values are clamped by the service (sources disagree on 1000 vs 2000)
UPDATABLE = ("status", "classification", "determination", "assignedTo")
_ENUM_VALUE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_ID_FORBIDDEN = re.compile(r"[/?#\\\s]")


@dataclass(frozen=True)
class GraphPage:
    alerts: list[dict[str, Any]]
    next_link: str | None


def validate_graph_id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 256 or _ID_FORBIDDEN.search(value):
        raise ValidationError(f"a Graph alert id is 1-256 characters without / ? # or spaces: {value!r:.60}")
    return value


def _enum_literal(value: str) -> str:
    if not _ENUM_VALUE.match(value):
        raise ValidationError(f"not a Graph enum value: {value!r:.40}")
    return value


def alerts_filter(service_sources: Sequence[str], *, since_iso: str | None, until_iso: str | None) -> str:
    """`(serviceSource eq 'a' or ...) and lastUpdateDateTime ge <since> [and ... le <until>]`."""
    parts: list[str] = []
    if service_sources:
        sources = " or ".join(f"serviceSource eq '{_enum_literal(s)}'" for s in service_sources)
        parts.append(f"({sources})" if len(service_sources) > 1 else sources)
    if since_iso is not None:
        parts.append(f"lastUpdateDateTime ge {since_iso}")
    if until_iso is not None:
        parts.append(f"lastUpdateDateTime le {until_iso}")
    return " and ".join(parts)


class GraphAlertsApi:
    """Alert operations for one tenant. Every method takes keyword-only `deadline` and `stats`."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    def list_page(
        self,
        filter_text: str,
        *,
        top: int = MAX_TOP,
        deadline: float | None = None,
        stats: RequestStats | None = None,
    ) -> GraphPage:
        """One page of `GET /security/alerts_v2`, oldest change first. Requires SecurityAlert.Read.All."""
        if not 0 < top <= MAX_TOP:
            raise ValueError(f"top must be 1..{MAX_TOP}")
        params = {"$top": str(top), "$orderby": "lastUpdateDateTime asc"}
        if filter_text:
            params["$filter"] = filter_text
        answer = self.client.request(
            "GET", ALERTS_PATH, params=params, idempotent=True, deadline=deadline, stats=stats
        )
        return _page(answer)

    def next_page(
        self, next_link: str, *, deadline: float | None = None, stats: RequestStats | None = None
    ) -> GraphPage:
        answer = self.client.request("GET", next_link, idempotent=True, deadline=deadline, stats=stats)
        return _page(answer)

    def get_alert(
        self, alert_id: str, *, deadline: float | None = None, stats: RequestStats | None = None
    ) -> dict[str, Any]:
        """`GET /security/alerts_v2/{id}`; NotFoundError for an unknown id."""
        path = _alert_path(alert_id)
        answer = self.client.request("GET", path, idempotent=True, deadline=deadline, stats=stats)
        return _object(answer, "the alert answer", "GET", path)

    def update_alert(
        self,
        alert_id: str,
        changes: Mapping[str, Any],
        *,
        deadline: float | None = None,
        stats: RequestStats | None = None,
    ) -> dict[str, Any]:
        """`PATCH /security/alerts_v2/{id}` with only the changed properties; the full alert comes back.

        The same body gives the same state, so the call is retried like a read. SecurityAlert.ReadWrite.All.
        """
        unknown = set(changes) - set(UPDATABLE)
        if unknown or not changes:
            raise ValidationError(f"an update sets some of {', '.join(UPDATABLE)}; got {sorted(changes)}")
        path = _alert_path(alert_id)
        answer = self.client.request(
            "PATCH", path, json=dict(changes), idempotent=True, deadline=deadline, stats=stats
        )
        return _object(answer, "the update answer", "PATCH", path)

    def add_comment(
        self,
        alert_id: str,
        comment: str,
        *,
        max_rechecks: int = 2,
        deadline: float | None = None,
        stats: RequestStats | None = None,
    ) -> list[dict[str, Any]]:
        """`POST /security/alerts_v2/{id}/comments`; the alert's whole comment list comes back.

        Never re-sent blindly: after an ambiguous failure the alert is re-read and the comment is sent again
        only if it is not among the alert's comments (at most `max_rechecks` times).
        """
        if not comment.strip():
            raise ValidationError("an empty comment")
        path = f"{_alert_path(alert_id)}/comments"
        body = {"@odata.type": "microsoft.graph.security.alertComment", "comment": comment}
        rechecks = 0
        while True:
            try:
                answer = self.client.request(
                    "POST", path, json=body, idempotent=False, deadline=deadline, stats=stats
                )
            except ApiError as exc:
                if not is_ambiguous(exc) or rechecks >= max_rechecks:
                    raise
                rechecks += 1
                log.warning("adding a comment to alert %s is ambiguous (%s); re-reading it", alert_id, exc)
                current = self.get_alert(alert_id, deadline=deadline, stats=stats).get("comments")
                if has_comment(current, comment):
                    return list(current) if isinstance(current, list) else []
                continue
            value = answer.get("value") if isinstance(answer, dict) else answer
            return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []


def _alert_path(alert_id: str) -> str:
    return f"{ALERTS_PATH}/{quote(validate_graph_id(alert_id), safe='')}"


def _object(answer: Any, what: str, method: str, path: str) -> dict[str, Any]:
    """The answer when it is a JSON object; anything else is malformed."""
    if not isinstance(answer, dict):
        raise MalformedResponseError(f"{what} is not an object", status=200, method=method, path=path)
    return answer


def has_comment(comments: Any, text: str) -> bool:
    return isinstance(comments, list) and any(
        isinstance(c, Mapping) and c.get("comment") == text for c in comments
    )


def _page(answer: Any) -> GraphPage:
    if not isinstance(answer, dict) or not isinstance(answer.get("value"), list):
        raise MalformedResponseError(
            "the alerts list answer has no value list", status=200, method="GET", path=ALERTS_PATH
        )
    value: list[Any] = answer["value"]
    if not all(isinstance(a, dict) for a in value):
        raise MalformedResponseError(
            "the alerts list answer holds an item that is not an object",
            status=200,
            method="GET",
            path=ALERTS_PATH,
        )
    link = answer.get("@odata.nextLink")
    if link is not None and not isinstance(link, str):
        raise MalformedResponseError(
            "@odata.nextLink is not a string", status=200, method="GET", path=ALERTS_PATH
        )
    return GraphPage(alerts=value, next_link=link or None)
