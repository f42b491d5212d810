"""Alerts resource of the simulated Defender for Cloud Apps API (https://learn.microsoft.com/defender-cloud-apps/api-alerts).

Alerts are kept sorted by creation `timestamp` (ties in arrival order) with a parallel list of timestamps,
so `date` filters are two bisects and a page is a slice: a 20,000-alert pull in 200 pages stays cheap. Other
filters are compiled once per request into a predicate and applied only to the date-bounded slice.

Choices where the service is undocumented:
- `skip` above `max_skip` (default 5000) is refused with 400, so clients must page by time beyond it (§4.2);
  the documentation states no such limit (public clients avoid deep skips), so the app never relies on the
  refusal: it pages by time and stops before the ceiling itself.
- `risk` and `source` filters are documented without values or operators; both are accepted leniently.
- `total` is capped at `total_cap` (default None = exact); when capped, `moreThanTotal` is true.
- `max` is the effective page size. Close endpoints answer 200 even when some ids are unknown
  (`alertsNotFound`).
- Closing sets `statusValue` 2 (ARCHIVED); `read`/`unread` toggle `statusValue` 1/0 and answer `{"_id",
  "read"}`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from localdev.simulator.mda_common import ApiError, as_bool, as_int, bad_request, not_found
from localdev.simulator.seed import ALERT_TYPE_BY_TITLE, iso_ms

Alert = dict[str, Any]
Predicate = Callable[[Alert], bool]

DEFAULT_LIMIT = 100
MAX_LIMIT = 100
DAY_MS = 86_400_000

# reasonId values valid per close endpoint (https://learn.microsoft.com/defender-cloud-apps/api-alerts);
# None = the key must not be sent.
CLOSE_KINDS: dict[str, tuple[int, frozenset[int] | None]] = {
    "benign": (4, frozenset({2, 4, 5, 6})),
    "false_positive": (3, frozenset({0, 1, 3, 4})),
    "true_positive": (5, None),
}
SORT_FIELDS = {"date", "severity", "status", "resolutionStatus"}


@dataclass
class ListConfig:
    max_skip: int | None = 5000
    total_cap: int | None = None


@dataclass(frozen=True)
class CompiledFilter:
    lo: int | None  # inclusive timestamp bounds used for the bisect
    hi: int | None
    predicate: Predicate | None  # everything that is not a plain date bound


def _values(op: str, value: Any, field: str) -> list[Any]:
    """`eq`/`neq` take a list or (as real clients send) a scalar."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        raise bad_request(f"Invalid value for {field}.{op}")
    return [value]


def _ints(op: str, value: Any, field: str) -> set[int]:
    out: set[int] = set()
    for v in _values(op, value, field):
        parsed = as_int(v, f"{field}.{op}")
        if parsed is None:
            raise bad_request(f"Invalid value for {field}.{op}")
        out.add(parsed)
    return out


def _timestamp(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise bad_request(f"{name} must be a timestamp in epoch milliseconds")
    parsed = as_int(value if not isinstance(value, float) else int(value), name)
    assert parsed is not None
    return parsed


def _iso_to_ms(value: str) -> int:
    return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


class _FilterCompiler:
    """Turns the `filters` object into date bounds plus one predicate; unknown fields/operators are a 400."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.lo: int | None = None
        self.hi: int | None = None
        self.preds: list[Predicate] = []

    def _bound(self, lo: int | None = None, hi: int | None = None) -> None:
        if lo is not None:
            self.lo = lo if self.lo is None else max(self.lo, lo)
        if hi is not None:
            self.hi = hi if self.hi is None else min(self.hi, hi)

    def compile(self, filters: Any) -> CompiledFilter:
        if filters is None:
            filters = {}
        if not isinstance(filters, dict):
            raise bad_request("filters must be an object")
        for field, spec in filters.items():
            if not isinstance(spec, dict) or not spec:
                raise bad_request(f'Filter {field!r} must be an object of operators, e.g. {{"eq": [..]}}')
            handler = getattr(self, "_f_" + field.replace(".", "_"), None)
            if field == "ID":
                handler = self._f_id
            if handler is None:
                raise bad_request(f"Invalid filter field: {field}")
            for op, value in spec.items():
                handler(op, value)
        preds = self.preds
        predicate: Predicate | None
        if not preds:
            predicate = None
        elif len(preds) == 1:
            predicate = preds[0]
        else:
            predicate = lambda a: all(p(a) for p in preds)  # noqa: E731
        return CompiledFilter(self.lo, self.hi, predicate)

    @staticmethod
    def _bad_op(field: str, op: str) -> ApiError:
        return bad_request(f"Invalid operator {op!r} for filter {field}")

    # -- date-like -------------------------------------------------------------------------------------------

    def _time_ops(
        self, field: str, op: str, value: Any
    ) -> tuple[int | None, int | None, list[tuple[int, int]]]:
        if op == "gte":
            return _timestamp(value, f"{field}.gte"), None, []
        if op == "gt":
            return _timestamp(value, f"{field}.gt") + 1, None, []
        if op == "lte":
            return None, _timestamp(value, f"{field}.lte"), []
        if op == "lt":
            return None, _timestamp(value, f"{field}.lt") - 1, []
        if op == "gte_ndays":
            days = as_int(value, f"{field}.gte_ndays")
            assert days is not None
            return self.now_ms - days * DAY_MS, None, []
        if op == "lte_ndays":
            days = as_int(value, f"{field}.lte_ndays")
            assert days is not None
            return None, self.now_ms - days * DAY_MS, []
        if op == "range":
            items = value if isinstance(value, list) else [value]
            ranges: list[tuple[int, int]] = []
            for item in items:
                if not isinstance(item, dict) or "start" not in item or "end" not in item:
                    raise bad_request(f'{field}.range takes a list of {{"start": ms, "end": ms}}')
                ranges.append(
                    (
                        _timestamp(item["start"], f"{field}.range.start"),
                        _timestamp(item["end"], f"{field}.range.end"),
                    )
                )
            if not ranges:
                raise bad_request(f"{field}.range must not be empty")
            return None, None, ranges
        raise self._bad_op(field, op)

    def _f_date(self, op: str, value: Any) -> None:
        lo, hi, ranges = self._time_ops("date", op, value)
        self._bound(lo, hi)
        if len(ranges) == 1:
            self._bound(*ranges[0])
        elif ranges:
            self._bound(min(r[0] for r in ranges), max(r[1] for r in ranges))
            self.preds.append(lambda a: any(s <= a["timestamp"] <= e for s, e in ranges))

    def _f_resolutionDate(self, op: str, value: Any) -> None:
        lo, hi, ranges = self._time_ops("resolutionDate", op, value)

        def pred(a: Alert) -> bool:
            resolved = a.get("resolveTime")
            if not resolved:
                return False
            ms = _iso_to_ms(resolved)
            if ranges:
                return any(s <= ms <= e for s, e in ranges)
            return (lo is None or ms >= lo) and (hi is None or ms <= hi)

        self.preds.append(pred)

    # -- enums and flags -------------------------------------------------------------------------------------

    def _int_field(self, field: str, key: str | Callable[[Alert], Any], op: str, value: Any) -> None:
        if op not in ("eq", "neq"):
            raise self._bad_op(field, op)
        wanted = _ints(op, value, field)
        get = (lambda a: a[key]) if isinstance(key, str) else key
        if op == "eq":
            self.preds.append(lambda a: get(a) in wanted)
        else:
            self.preds.append(lambda a: get(a) not in wanted)

    def _f_severity(self, op: str, value: Any) -> None:
        self._int_field("severity", "severityValue", op, value)

    def _f_resolutionStatus(self, op: str, value: Any) -> None:
        self._int_field("resolutionStatus", "resolutionStatusValue", op, value)

    def _f_risk(self, op: str, value: Any) -> None:
        """Documented as an int filter without operators or meaning; read here as the alert's `risk` or,
        absent, its `threatScore`, with eq/neq and the comparison operators (lenient: UNCONFIRMED)."""

        def risk(a: Alert) -> int:
            value = a.get("risk", a.get("threatScore", 0))
            return value if isinstance(value, int) else 0

        if op in ("eq", "neq"):
            self._int_field("risk", risk, op, value)
            return
        bounds = {"gte": 0, "gt": 1, "lte": 0, "lt": -1}
        if op not in bounds:
            raise self._bad_op("risk", op)
        limit = as_int(value, f"risk.{op}")
        if limit is None:
            raise bad_request(f"Invalid value for risk.{op}")
        limit += bounds[op]
        if op in ("gte", "gt"):
            self.preds.append(lambda a: risk(a) >= limit)
        else:
            self.preds.append(lambda a: risk(a) <= limit)

    def _f_source(self, op: str, value: Any) -> None:
        """Documented as a string `eq` filter, "built-in or policy"; the values are not documented. An alert's
        source here is its `source` field or, absent, "built-in" for system alerts and "policy" otherwise;
        the comparison ignores case, separators and a trailing "_alert" (lenient: UNCONFIRMED)."""
        if op not in ("eq", "neq"):
            raise self._bad_op("source", op)

        def norm(text: Any) -> str:
            word = "".join(ch for ch in str(text).lower() if ch.isalnum())
            return word.removesuffix("alert").removesuffix("alerts")

        wanted = {norm(v) for v in _values(op, value, "source")}

        def source(a: Alert) -> str:
            return norm(a.get("source") or ("built-in" if a.get("isSystemAlert") else "policy"))

        if op == "eq":
            self.preds.append(lambda a: source(a) in wanted)
        else:
            self.preds.append(lambda a: source(a) not in wanted)

    def _f_alertType(self, op: str, value: Any) -> None:
        self._int_field("alertType", lambda a: ALERT_TYPE_BY_TITLE.get(a["title"], 0), op, value)

    def _bool_field(self, field: str, get: Callable[[Alert], bool], op: str, value: Any) -> None:
        if op != "eq":
            raise self._bad_op(field, op)
        wanted = {as_bool(v, f"{field}.eq") for v in _values(op, value, field)}
        self.preds.append(lambda a: get(a) in wanted)

    def _f_alertOpen(self, op: str, value: Any) -> None:
        self._bool_field("alertOpen", lambda a: a["resolutionStatusValue"] == 0, op, value)

    def _f_read(self, op: str, value: Any) -> None:
        self._bool_field("read", lambda a: a["statusValue"] != 0, op, value)

    def _f_id(self, op: str, value: Any) -> None:
        if op not in ("eq", "neq"):
            raise self._bad_op("id", op)
        ids = {str(v) for v in _values(op, value, "id")}
        if op == "eq":
            self.preds.append(lambda a: a["_id"] in ids)
        else:
            self.preds.append(lambda a: a["_id"] not in ids)

    # -- entities --------------------------------------------------------------------------------------------

    def _entity_field(
        self,
        field: str,
        types: Iterable[str],
        op: str,
        value: Any,
        norm: Callable[[Any], Any],
        *,
        attr: str = "id",
    ) -> None:
        if op not in ("eq", "neq"):
            raise self._bad_op(field, op)
        wanted = {norm(v) for v in _values(op, value, field)}
        kinds = frozenset(types)

        def has(a: Alert) -> bool:
            return any(e.get("type") in kinds and e.get(attr) in wanted for e in a["entities"])

        self.preds.append(has if op == "eq" else (lambda a: not has(a)))

    def _f_entity_entity(self, op: str, value: Any) -> None:
        def norm(v: Any) -> Any:
            return v.get("id") if isinstance(v, dict) else v

        self._entity_field("entity.entity", ("account", "user"), op, value, norm)

    def _f_entity_user(self, op: str, value: Any) -> None:
        def norm(v: Any) -> Any:
            return v.get("id") if isinstance(v, dict) else v

        self._entity_field("entity.user", ("user",), op, value, norm)

    def _f_entity_ip(self, op: str, value: Any) -> None:
        self._entity_field("entity.ip", ("ip",), op, value, str)

    def _f_entity_service(self, op: str, value: Any) -> None:
        self._entity_field("entity.service", ("service",), op, value, lambda v: as_int(v, "entity.service"))

    def _f_entity_instance(self, op: str, value: Any) -> None:
        self._entity_field(
            "entity.instance",
            ("account", "user"),
            op,
            value,
            lambda v: as_int(v, "entity.instance"),
            attr="inst",
        )

    def _f_entity_policy(self, op: str, value: Any) -> None:
        self._entity_field("entity.policy", ("policyRule",), op, value, str)

    def _f_entity_file(self, op: str, value: Any) -> None:
        self._entity_field("entity.file", ("file",), op, value, str)


class AlertStore:
    """The tenant's alerts, sorted by creation time, plus the close/read state machine."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._ts: list[int] = []
        self._alerts: list[Alert] = []
        self._by_id: dict[str, Alert] = {}
        self.config = ListConfig()
        self.feedback: list[dict[str, Any]] = []  # every close call, for test assertions
        self.revision = 0  # bumped by every add, clear, close and reopen (the Graph view re-syncs on it)

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- loading ---------------------------------------------------------------------------------------------

    def add(self, alerts: Iterable[Alert]) -> None:
        """Insert alerts keeping timestamp order; alerts in the same millisecond stay in arrival order."""
        with self._lock:
            for alert in alerts:
                if alert["_id"] in self._by_id:
                    raise ValueError(f"duplicate alert id {alert['_id']}")
                ts = alert["timestamp"]
                if not self._ts or ts >= self._ts[-1]:
                    self._ts.append(ts)
                    self._alerts.append(alert)
                else:
                    i = bisect.bisect_right(self._ts, ts)
                    self._ts.insert(i, ts)
                    self._alerts.insert(i, alert)
                self._by_id[alert["_id"]] = alert
            self.revision += 1

    def clear(self) -> None:
        with self._lock:
            self.revision += 1
            self._ts.clear()
            self._alerts.clear()
            self._by_id.clear()
            self.feedback.clear()

    def __len__(self) -> int:
        return len(self._alerts)

    def all(self) -> list[Alert]:
        with self._lock:
            return [dict(a) for a in self._alerts]

    # -- reads -----------------------------------------------------------------------------------------------

    def _matching(self, compiled: CompiledFilter) -> tuple[int, int, list[Alert] | None]:
        """(i0, i1, filtered) — filtered is None when the date slice itself is the answer."""
        i0 = 0 if compiled.lo is None else bisect.bisect_left(self._ts, compiled.lo)
        i1 = len(self._ts) if compiled.hi is None else bisect.bisect_right(self._ts, compiled.hi)
        i1 = max(i0, i1)
        if compiled.predicate is None:
            return i0, i1, None
        pred = compiled.predicate
        return i0, i1, [a for a in self._alerts[i0:i1] if pred(a)]

    def list_alerts(self, params: dict[str, Any]) -> dict[str, Any]:
        skip = as_int(params.get("skip"), "skip", default=0)
        limit = as_int(params.get("limit"), "limit", default=DEFAULT_LIMIT)
        assert skip is not None and limit is not None
        if skip < 0 or limit < 0:
            raise bad_request("skip and limit must not be negative")
        limit = min(limit, MAX_LIMIT)
        max_skip = self.config.max_skip
        if max_skip is not None and skip > max_skip:
            raise bad_request(f"skip must not exceed {max_skip}; page by date (filters.date) instead")
        sort_field = params.get("sortField") or "date"
        if sort_field not in SORT_FIELDS:
            raise bad_request(f"Invalid sortField: {sort_field}")
        direction = str(params.get("sortDirection") or "desc").lower()
        if direction not in ("asc", "desc"):
            raise bad_request("sortDirection must be 'asc' or 'desc'")
        compiled = _FilterCompiler(self.now_ms()).compile(params.get("filters"))
        desc = direction == "desc"
        with self._lock:
            i0, i1, filtered = self._matching(compiled)
            if filtered is None and sort_field == "date":
                count = i1 - i0
                if desc:
                    hi = i1 - skip
                    lo = max(i0, hi - limit)
                    page = self._alerts[lo:hi][::-1] if hi > i0 else []
                else:
                    lo = i0 + skip
                    page = self._alerts[lo : min(i1, lo + limit)] if lo < i1 else []
            else:
                rows = filtered if filtered is not None else self._alerts[i0:i1]
                if desc:
                    rows = rows[::-1]
                if sort_field == "severity":
                    rows = sorted(rows, key=lambda a: a["severityValue"], reverse=desc)
                elif sort_field in ("status", "resolutionStatus"):
                    rows = sorted(rows, key=lambda a: a["resolutionStatusValue"], reverse=desc)
                count = len(rows)
                page = rows[skip : skip + limit]
            page = [dict(a) for a in page]  # snapshots: closes may mutate alerts while the page is serialised
        cap = self.config.total_cap
        return {
            "data": page,
            "hasNext": skip + len(page) < count,
            "max": limit,
            "total": count if cap is None else min(count, cap),
            "moreThanTotal": cap is not None and count > cap,
        }

    def get(self, pk: str) -> Alert:
        with self._lock:
            alert = self._by_id.get(pk)
            if alert is None:
                raise not_found()
            return dict(alert)

    # -- writes ----------------------------------------------------------------------------------------------

    def _targets(self, filters: Any) -> tuple[list[Alert], list[str]]:
        """Alerts a bulk call applies to, and the explicitly requested ids that do not exist."""
        if not isinstance(filters, dict) or not filters:
            raise bad_request('filters are required (e.g. {"id": {"eq": ["<alert id>"]}})')
        id_spec = filters.get("id", filters.get("ID"))
        if len(filters) == 1 and isinstance(id_spec, dict) and set(id_spec) == {"eq"}:
            ids = [str(v) for v in _values("eq", id_spec["eq"], "id")]
            found = [self._by_id[i] for i in dict.fromkeys(ids) if i in self._by_id]
            return found, [i for i in dict.fromkeys(ids) if i not in self._by_id]
        compiled = _FilterCompiler(self.now_ms()).compile(filters)
        i0, i1, filtered = self._matching(compiled)
        rows = filtered if filtered is not None else self._alerts[i0:i1]
        missing: list[str] = []
        if isinstance(id_spec, dict) and "eq" in id_spec:
            missing = [str(i) for i in _values("eq", id_spec["eq"], "id") if str(i) not in self._by_id]
        return rows, missing

    def close(self, kind: str, params: dict[str, Any], *, handled_by: str) -> dict[str, Any]:
        resolution, valid_reasons = CLOSE_KINDS[kind]
        reason_raw = params.get("reasonId")
        reason: int | None = None
        if valid_reasons is None:
            if reason_raw not in (None, ""):
                raise bad_request("reasonId is not accepted when closing as true positive")
        elif reason_raw not in (None, ""):
            reason = as_int(reason_raw, "reasonId")
            if reason not in valid_reasons:
                raise bad_request(
                    f"Invalid reasonId {reason_raw!r} for close_{kind}; "
                    f"expected one of {sorted(valid_reasons)}"
                )
        comment = params.get("comment", "")
        if comment is not None and not isinstance(comment, str):
            raise bad_request("comment must be a string")
        send_feedback = as_bool(params.get("sendFeedback"), "sendFeedback")
        allow_contact = as_bool(params.get("allowContact"), "allowContact")
        feedback_text = params.get("feedbackText")
        contact_email = params.get("contactEmail")
        if allow_contact and not (isinstance(contact_email, str) and "@" in contact_email):
            raise bad_request("contactEmail is required when allowContact is true")
        with self._lock:
            targets, missing = self._targets(params.get("filters"))
            resolved_at = iso_ms(self.now_ms())
            self.revision += 1
            for alert in targets:
                alert["resolutionStatusValue"] = resolution
                alert["statusValue"] = 2
                alert["resolveTime"] = resolved_at
                alert["handledByUser"] = handled_by
                if comment:
                    alert["comment"] = comment
            self.feedback.append(
                {
                    "kind": kind,
                    "ids": [a["_id"] for a in targets],
                    "alertsNotFound": missing,
                    "reasonId": reason,
                    "comment": comment,
                    "sendFeedback": send_feedback,
                    "feedbackText": feedback_text,
                    "allowContact": allow_contact,
                    "contactEmail": contact_email,
                    "handledByUser": handled_by,
                }
            )
        result: dict[str, Any] = {f"closed_{kind}": len(targets)}
        if missing:
            result["alertsNotFound"] = missing
        return result

    def reopen(self, params: dict[str, Any]) -> dict[str, Any]:
        """Undocumented `POST /api/v1/alerts/reopen/` used by MOD:Set-MCASAlert (answer shape UNCONFIRMED)."""
        with self._lock:
            targets, missing = self._targets(params.get("filters"))
            self.revision += 1
            for alert in targets:
                alert["resolutionStatusValue"] = 0
                alert["statusValue"] = 1
                alert.pop("resolveTime", None)
                alert.pop("handledByUser", None)
        result: dict[str, Any] = {"reopened": len(targets)}
        if missing:
            result["alertsNotFound"] = missing
        return result

    def mark(self, pk: str, *, read: bool) -> dict[str, Any]:
        with self._lock:
            alert = self._by_id.get(pk)
            if alert is None:
                raise not_found()
            if read:
                if alert["statusValue"] == 0:
                    alert["statusValue"] = 1
            else:
                alert["statusValue"] = 0
        return {"_id": pk, "read": read}
