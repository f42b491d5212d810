"""Typed alert operations over `MdaClient` (https://learn.microsoft.com/defender-cloud-apps/api-alerts):
list, get, close, mark read/unread.

Closing is the one non-idempotent operation here and is NEVER retried blindly (clients that re-POST close
calls through urllib3 retries close alerts twice). After an ambiguous failure (5xx, timeout, dropped
connection) the alerts' state is read back and only those still open are sent again; a 429 or 4xx is a
clear refusal and follows the client's normal rules.

"Already done" means in the state the close asks for (`resolutionStatusValue` 4 benign, 3 false positive,
5 true positive), not merely "not open": an alert closed earlier with another classification is closed again
as asked, exactly as it would have been had the first call not failed, so the outcome never depends on
whether a call happened to fail.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.alerts.model import CLOSE_KINDS, CLOSE_REASONS, CloseKind
from shared.errors import ValidationError
from shared.mda.client import MdaClient, RequestStats
from shared.mda.errors import ApiError, MalformedResponseError, is_ambiguous
from shared.mda.filters import Filter

log = logging.getLogger(__name__)

ALERTS_PATH = "/api/v1/alerts/"
PAGE_LIMIT = 100  # the API's maximum page size
MAX_SKIP = 5000  # beyond this, the API does not page reliably by `skip`: page by time instead
CLOSE_CHUNK = 100  # bulk endpoints take at most 100 ids per call

OPEN = 0
# resolutionStatusValue an alert has after each close call: 3 false positive, 4 benign, 5 true positive.
RESOLUTION_AFTER_CLOSE: dict[CloseKind, int] = {"benign": 4, "false_positive": 3, "true_positive": 5}
_ALERT_ID = re.compile(r"^[0-9a-fA-F]{24}$")


@dataclass(frozen=True)
class AlertPage:
    alerts: list[dict[str, Any]]
    has_next: bool
    total: int | None


@dataclass
class CloseResult:
    kind: CloseKind
    requested: int
    closed: int = 0  # as reported by the API
    confirmed_by_recheck: list[str] = field(default_factory=list)  # found as asked after an ambiguous failure
    not_found: list[str] = field(default_factory=list)
    rechecks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "requested": self.requested,
            "closed": self.closed,
            "confirmed_by_recheck": self.confirmed_by_recheck,
            "not_found": self.not_found,
            "rechecks": self.rechecks,
        }


def _malformed(message: str, method: str) -> MalformedResponseError:
    return MalformedResponseError(message, status=200, method=method, path=ALERTS_PATH)


def validate_alert_id(value: str) -> str:
    if not isinstance(value, str) or not _ALERT_ID.match(value):
        raise ValidationError(f"alert id must be 24 hex characters, got {value!r}")
    return value


class AlertsApi:
    """Alert operations for one tenant. Every method takes keyword-only `deadline` and `stats`."""

    def __init__(self, client: MdaClient) -> None:
        self.client = client

    def query(
        self,
        filters: Filter | Mapping[str, Any] | None = None,
        *,
        sort_field: str = "date",
        sort_direction: Literal["asc", "desc"] = "asc",
        skip: int = 0,
        limit: int = PAGE_LIMIT,
        deadline: float | None = None,
        stats: RequestStats | None = None,
    ) -> AlertPage:
        """One page of `POST /api/v1/alerts/`. Requires Investigation.read."""
        if not 0 < limit <= PAGE_LIMIT:
            raise ValueError(f"limit must be 1..{PAGE_LIMIT}")
        if skip < 0 or skip > MAX_SKIP:
            raise ValueError(f"skip must be 0..{MAX_SKIP}; page by date beyond it")
        body: dict[str, Any] = {
            "filters": filters.to_json() if isinstance(filters, Filter) else dict(filters or {}),
            "sortField": sort_field,
            "sortDirection": sort_direction,
            "skip": skip,
            "limit": limit,
        }
        answer = self.client.request(
            "POST", ALERTS_PATH, json=body, idempotent=True, deadline=deadline, stats=stats
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise _malformed("the alerts list answer has no data list", "POST")
        data: list[Any] = answer["data"]
        if not all(isinstance(a, dict) for a in data):
            # Dropping the odd item would lose an alert silently; the page is refused and fetched again.
            raise _malformed("the alerts list answer holds an item that is not an object", "POST")
        has_next = answer.get("hasNext", False)
        if not isinstance(has_next, bool):
            # bool("false") is True: guessing could page forever (or stop early); refuse instead.
            raise _malformed(f"the alerts list answer's hasNext is not a boolean ({has_next!r:.40})", "POST")
        total = answer.get("total")
        return AlertPage(
            alerts=data,
            has_next=has_next,
            total=total if isinstance(total, int) and not isinstance(total, bool) else None,
        )

    def list_alert_pages(
        self,
        filters: Filter | Mapping[str, Any] | None = None,
        *,
        sort_field: str = "date",
        sort_direction: Literal["asc", "desc"] = "desc",
        deadline: float | None = None,
        stats: RequestStats | None = None,
    ) -> Iterator[AlertPage]:
        """Lazily page with `skip` up to the safe ceiling (5000 records); beyond, page by time."""
        skip = 0
        while True:
            page = self.query(
                filters,
                sort_field=sort_field,
                sort_direction=sort_direction,
                skip=skip,
                deadline=deadline,
                stats=stats,
            )
            yield page
            skip += len(page.alerts)
            if not page.has_next or not page.alerts:
                return
            if skip + PAGE_LIMIT > MAX_SKIP:
                log.warning(
                    "alert listing stopped at the %d-record skip ceiling; narrow the date range", MAX_SKIP
                )
                return

    def list_alerts(
        self,
        filters: Filter | Mapping[str, Any] | None = None,
        *,
        sort_direction: Literal["asc", "desc"] = "desc",
        deadline: float | None = None,
        stats: RequestStats | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Lazily yield alert objects across pages (same ceiling as `list_alert_pages`)."""
        for page in self.list_alert_pages(
            filters, sort_direction=sort_direction, deadline=deadline, stats=stats
        ):
            yield from page.alerts

    def get_alert(
        self, alert_id: str, *, deadline: float | None = None, stats: RequestStats | None = None
    ) -> dict[str, Any]:
        """`GET /api/v1/alerts/<pk>/`; raises NotFoundError for an unknown id. Requires Investigation.read."""
        validate_alert_id(alert_id)
        answer = self.client.request(
            "GET", f"{ALERTS_PATH}{alert_id}/", idempotent=True, deadline=deadline, stats=stats
        )
        if not isinstance(answer, dict):
            raise _malformed("the alert answer is not an object", "GET")
        return answer

    def mark_read(
        self, alert_id: str, *, deadline: float | None = None, stats: RequestStats | None = None
    ) -> Any:
        """Setting a flag twice is harmless, so this is idempotent. Requires Investigation.manage."""
        validate_alert_id(alert_id)
        return self.client.request(
            "POST", f"{ALERTS_PATH}{alert_id}/read/", idempotent=True, deadline=deadline, stats=stats
        )

    def mark_unread(
        self, alert_id: str, *, deadline: float | None = None, stats: RequestStats | None = None
    ) -> Any:
        validate_alert_id(alert_id)
        return self.client.request(
            "POST", f"{ALERTS_PATH}{alert_id}/unread/", idempotent=True, deadline=deadline, stats=stats
        )

    def close(
        self,
        kind: CloseKind,
        alert_ids: Iterable[str],
        *,
        reason_id: int | None = None,
        comment: str | None = None,
        send_feedback: bool = False,
        feedback_text: str | None = None,
        allow_contact: bool = False,
        contact_email: str | None = None,
        max_rechecks: int = 2,
        deadline: float | None = None,
        stats: RequestStats | None = None,
    ) -> CloseResult:
        """Close alerts as benign, false positive or true positive, 100 ids a call. Investigation.manage.

        Never re-sent blindly: after an ambiguous failure the chunk's alerts are re-read and only those not
        yet in the wanted state are closed again (at most `max_rechecks` times); then the error is raised.
        """
        if kind not in CLOSE_KINDS:
            raise ValidationError(f"close kind must be one of {', '.join(CLOSE_KINDS)}, got {kind!r}")
        allowed = CLOSE_REASONS[kind]  # empty: the endpoint takes no reason (true positive)
        if not allowed and reason_id is not None:
            raise ValidationError("a true-positive close takes no reason id")
        if allowed and reason_id is not None and reason_id not in allowed:
            raise ValidationError(f"reason id for {kind} must be one of {sorted(allowed)}, got {reason_id}")
        if allow_contact and not contact_email:
            raise ValidationError("allow_contact needs a contact_email")
        ids = list(dict.fromkeys(validate_alert_id(i) for i in alert_ids))
        if not ids:
            raise ValidationError("no alert ids to close")
        options: dict[str, Any] = {"sendFeedback": send_feedback, "allowContact": allow_contact}
        if comment is not None:
            options["comment"] = comment
        if reason_id is not None:
            options["reasonId"] = reason_id
        if feedback_text is not None:
            options["feedbackText"] = feedback_text
        if contact_email is not None:
            options["contactEmail"] = contact_email
        result = CloseResult(kind=kind, requested=len(ids))
        for start in range(0, len(ids), CLOSE_CHUNK):
            self._close_chunk(
                kind,
                chunk=ids[start : start + CLOSE_CHUNK],
                options=options,
                result=result,
                max_rechecks=max_rechecks,
                deadline=deadline,
                stats=stats,
            )
        return result

    def _close_chunk(
        self,
        kind: CloseKind,
        *,
        chunk: list[str],
        options: dict[str, Any],
        result: CloseResult,
        max_rechecks: int,
        deadline: float | None,
        stats: RequestStats | None,
    ) -> None:
        path = f"{ALERTS_PATH}close_{kind}/"
        pending = chunk
        while True:
            body = {"filters": Filter().ids(pending).to_json(), **options}
            try:
                answer = self.client.request(
                    "POST", path, json=body, idempotent=False, deadline=deadline, stats=stats
                )
            except ApiError as exc:
                if not is_ambiguous(exc) or result.rechecks >= max_rechecks:
                    raise
                result.rechecks += 1
                log.warning(
                    "close_%s of %d alerts is ambiguous (%s); re-reading their state", kind, len(pending), exc
                )
                needed, done, missing = self._state_of(kind, pending, deadline=deadline, stats=stats)
                result.confirmed_by_recheck.extend(done)
                result.not_found.extend(missing)
                if not needed:
                    return
                pending = needed
                continue
            if isinstance(answer, dict):
                count = answer.get(f"closed_{kind}")
                result.closed += count if isinstance(count, int) else 0
                not_found = answer.get("alertsNotFound")
                if isinstance(not_found, list):
                    result.not_found.extend(str(m) for m in not_found)
            return

    def _state_of(
        self, kind: CloseKind, ids: list[str], *, deadline: float | None, stats: RequestStats | None
    ) -> tuple[list[str], list[str], list[str]]:
        """(still to close, already as wanted, not found) for up to 100 ids, via one idempotent list call."""
        page = self.query(Filter().ids(ids), limit=PAGE_LIMIT, deadline=deadline, stats=stats)
        status = {a.get("_id"): a.get("resolutionStatusValue") for a in page.alerts}
        wanted = RESOLUTION_AFTER_CLOSE[kind]
        needed = [i for i in ids if i in status and status[i] != wanted]
        done = [i for i in ids if i in status and status[i] == wanted]
        missing = [i for i in ids if i not in status]
        return needed, done, missing
