"""The simulated Microsoft Graph security API (`alerts_v2`) of one tenant, over that tenant's MDA alerts.

One `GraphService` per MDA tenant, on its own HTTPS port (the real Graph is one host for every tenant; here
the MDA tenants share one Entra directory, so the host tells them apart). It serves:

  GET   /v1.0/security/alerts_v2                 `$filter` (subset below), `$top` (clamped to `max_top`,
                                                 default 1000), `$orderby` (lastUpdateDateTime or
                                                 createdDateTime, asc|desc; default createdDateTime desc),
                                                 `$skip`, `@odata.nextLink` (a `$skiptoken` offset into the
                                                 same query: it shifts when alerts change mid-paging, as
                                                 offset paging does)
  GET   /v1.0/security/alerts_v2/{id}
  PATCH /v1.0/security/alerts_v2/{id}            status, classification, determination, assignedTo
  POST  /v1.0/security/alerts_v2/{id}/comments   answers the alert's whole comment list
Filter subset: clauses joined by `and`; a clause is `serviceSource eq '<v>'` (or a parenthesised `or` of
them), `lastUpdateDateTime|createdDateTime eq|ge|gt|le|lt <ISO>`, or `status|severity|classification|
determination|assignedTo eq '<v>'`. Anything else is 400 `BadRequest`, as Graph answers properties outside
its filter list.

Auth: a Bearer token for Microsoft Graph (audience checked) issued in this directory, else 401
`InvalidAuthenticationToken`; application roles `SecurityAlert.Read.All` / `SecurityAlert.ReadWrite.All`
(writes need the latter), else 403 `Forbidden`. Throttle: more than `limit` calls in a rolling window -> 429
`TooManyRequests` with `Retry-After` and Graph's error body. Every request passes fault injection ("graph").

Mapping of the tenant's MDA alerts (Microsoft does not document the id shape; ASSUMED here): Graph `id` =
`ca` + the MDA `_id`, `providerAlertId` = `_id`; resolution status 0 -> new/unknown, 5 and 2 ->
resolved/truePositive, 4 -> resolved/informationalExpectedActivity, 3 and 1 -> resolved/falsePositive;
`lastUpdateDateTime` = the MDA resolve time (never later than when the simulator first sees it) or creation.
A later MDA close shows in Graph as a new `lastUpdateDateTime`. Graph-side changes do not flow back to MDA.
Timestamps carry 7 fractional digits, as Graph's do.

Changes over time (admin, JSON, at /_admin/graph/{tenant}/{subpath}):
  GET  alerts                 every alert as Graph shows it now (visible versions)
  POST alerts/change          {"ids"?: [graph ids] | "count"?: n, "status"?, "classification"?,
                               "determination"?, "assignedTo"?, "comment"?, "times"? (1; each change its
                               own lastUpdateDateTime), "visible_after_s"? (late visibility),
                               "back_s"? (stamp lastUpdateDateTime this far in the past)} -> the changes
  GET|POST config             {"visibility_delay_s", "drift_per_minute", "max_top", "limit", "window_s"}
  GET  throttle/stats         rolling-window counts
  POST reset                  default config, throttle history cleared (alert state kept)
"""

from __future__ import annotations

import bisect
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from localdev.simulator.admin_routes import AdminCall, BodyError, find_route
from localdev.simulator.counters import Counters
from localdev.simulator.faults import FaultInjector
from localdev.simulator.throttle import RollingWindowLimiter
from localdev.simulator.wire import InvalidToken, SimRequest, SimResponse, TokenVerifier

GRAPH_AUDIENCE = "00000003-0000-0000-c000-000000000000"
READ_ROLES = frozenset({"securityalert.read.all", "securityalert.readwrite.all"})
WRITE_ROLES = frozenset({"securityalert.readwrite.all"})
SERVICE_SOURCE = "microsoftDefenderForCloudApps"
UPDATABLE = ("status", "classification", "determination", "assignedTo")
STATUS_VALUES = ("new", "inProgress", "resolved", "unknown")
MDA_STATE: dict[int, tuple[str, str]] = {
    0: ("new", "unknown"),
    1: ("resolved", "falsePositive"),
    2: ("resolved", "truePositive"),
    3: ("resolved", "falsePositive"),
    4: ("resolved", "informationalExpectedActivity"),
    5: ("resolved", "truePositive"),
}
SEVERITY = {0: "low", 1: "medium", 2: "high", 3: "informational"}
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?Z$")
_CLAUSE = re.compile(r"^\s*(\w+)\s+(eq|ge|gt|le|lt)\s+('(?:[^']|'')*'|[0-9TZ:.\-]+)\s*$")
_DATE_PROPS = ("lastUpdateDateTime", "createdDateTime")
_EQ_PROPS = {"serviceSource", "status", "severity", "classification", "determination", "assignedTo"}


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> SimResponse:
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                    "request-id": str(uuid.uuid4()),
                    "client-request-id": str(uuid.uuid4()),
                },
            }
        }
        return SimResponse.json(self.status, body, self.headers)


def _bad(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def parse_iso_us(text: str) -> int:
    match = _ISO.match(text.strip())
    if match is None:
        raise _bad(f"Invalid date-time literal {text!r}")
    import calendar

    y, mo, d, h, mi, s = (int(match.group(i)) for i in range(1, 7))
    frac = (match.group(7) or "").ljust(7, "0")
    seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    return seconds * 1_000_000 + int(frac[:6])


def iso7(epoch_us: int) -> str:
    seconds, micros = divmod(epoch_us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}0Z"


@dataclass
class Version:
    updated_us: int
    visible_at: float  # wall seconds
    status: str
    classification: str
    determination: str
    assigned_to: str | None
    resolved_us: int | None


@dataclass
class GraphAlertState:
    mda_id: str
    created_us: int
    mda_resolution: int
    severity: str
    versions: list[Version] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)

    def visible(self, now: float) -> Version | None:
        shown = [v for v in self.versions if v.visible_at <= now]
        return shown[-1] if shown else None


@dataclass
class GraphConfig:
    visibility_delay_s: float = 0.0
    drift_per_minute: float = 0.0
    max_top: int = 1000


class GraphService:
    """Everything arriving on one tenant's Graph port, plus its admin subtree."""

    def __init__(
        self,
        name: str,
        tenant_id: str,
        verifier: TokenVerifier,
        *,
        mda: Any,
        graph_url: str,
        rate_limit: int = 150,
        rate_window_s: float = 60.0,
        faults: FaultInjector | None = None,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.tenant_id = tenant_id
        self.graph_url = graph_url.rstrip("/")
        self._verifier = verifier
        self._mda = mda
        self._faults = faults
        self._counters = counters
        self._clock = clock
        self._default_throttle = (rate_limit, float(rate_window_s))
        self.limiter = RollingWindowLimiter(rate_limit, rate_window_s, clock=clock)
        self.config = GraphConfig()
        self._lock = threading.RLock()
        self._alerts: dict[str, GraphAlertState] = {}  # graph id -> state
        self._rng = random.Random(7)
        self._last_drift = clock()
        self._synced_revision: int | None = None
        # Visible alerts sorted by (lastUpdateDateTime, id), rebuilt after a change or when a late version
        # becomes visible: a `ge` query is a bisect plus the page, not a scan of every alert.
        self._index: list[tuple[int, str, dict[str, Any], GraphAlertState, Version]] | None = None
        self._index_keys: list[tuple[int, str]] = []
        self._index_expires = float("inf")

    # -- the MDA view ----------------------------------------------------------------------------------------

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    def _sync(self) -> None:
        """Mirror the MDA tenant's alerts: new ones appear, MDA closes become new Graph versions. Scans only
        when the MDA store changed since the last scan."""
        now = self._clock()
        self._drift(now)
        revision = getattr(self._mda.alerts, "revision", None)
        if revision is not None and revision == self._synced_revision:
            return
        self._synced_revision = revision
        self._index = None
        now_us = int(now * 1_000_000)
        seen: set[str] = set()
        for raw in self._mda_alerts():
            mda_id = str(raw["_id"])
            graph_id = f"ca{mda_id}"
            seen.add(graph_id)
            resolution = int(raw.get("resolutionStatusValue") or 0)
            state = self._alerts.get(graph_id)
            if state is not None and state.mda_resolution == resolution:
                continue
            status, classification = MDA_STATE.get(resolution, ("unknown", "unknown"))
            resolved_us: int | None = None
            created_us = int(raw["timestamp"]) * 1000
            updated_us = created_us
            if status == "resolved":
                resolve_time = raw.get("resolveTime")
                resolved_us = parse_iso_us(resolve_time) if isinstance(resolve_time, str) else now_us
                if resolved_us > now_us and state is None:
                    # Seeded with a resolve time still ahead: resolved half-way to now instead.
                    resolved_us = created_us + max(0, now_us - created_us) // 2
                resolved_us = min(resolved_us, now_us)
                updated_us = max(created_us, resolved_us)
            if state is None:
                self._alerts[graph_id] = GraphAlertState(
                    mda_id,
                    created_us,
                    resolution,
                    SEVERITY.get(int(raw.get("severityValue") or 0), "unknown"),
                    [Version(updated_us, 0.0, status, classification, "unknown", None, resolved_us)],
                )
                continue
            state.mda_resolution = resolution
            last = state.versions[-1]
            stamp = max(now_us, last.updated_us + 1)
            state.versions.append(
                Version(
                    stamp,
                    now + self.config.visibility_delay_s,
                    status,
                    classification,
                    last.determination,
                    last.assigned_to,
                    stamp if status == "resolved" else None,
                )
            )
        for gone in set(self._alerts) - seen:
            del self._alerts[gone]

    def _drift(self, now: float) -> None:
        rate = self.config.drift_per_minute
        if rate <= 0 or not self._alerts:
            self._last_drift = now
            return
        due = int((now - self._last_drift) * rate / 60.0)
        if due <= 0:
            return
        self._last_drift = now
        ids = sorted(self._alerts)
        for _ in range(min(due, 1000)):
            graph_id = ids[int(self._rng.random() * len(ids))]
            self._change(graph_id, {"status": "inProgress", "assignedTo": "drift@contoso.com"}, now=now)

    def _change(
        self,
        graph_id: str,
        changes: dict[str, Any],
        *,
        now: float,
        visible_after_s: float | None = None,
        back_s: float = 0.0,
    ) -> Version:
        state = self._alerts[graph_id]
        last = state.versions[-1]
        stamp = max(int((now - back_s) * 1_000_000), last.updated_us + 1)
        status = changes.get("status", last.status)
        version = Version(
            stamp,
            now + (self.config.visibility_delay_s if visible_after_s is None else visible_after_s),
            status,
            changes.get("classification", last.classification),
            changes.get("determination", last.determination),
            changes.get("assignedTo", last.assigned_to),
            (last.resolved_us or stamp) if status == "resolved" else None,
        )
        state.versions.append(version)
        self._index = None
        return version

    def _view(
        self, graph_id: str, state: GraphAlertState, version: Version, raw: dict[str, Any]
    ) -> dict[str, Any]:
        evidence: list[dict[str, Any]] = []
        for entity in raw.get("entities") or []:
            if entity.get("type") in ("account", "user"):
                evidence.append(
                    {
                        "@odata.type": "#microsoft.graph.security.userEvidence",
                        "roles": [],
                        "verdict": "unknown",
                        "userAccount": {
                            "displayName": entity.get("label"),
                            "userPrincipalName": entity.get("pa") or entity.get("em"),
                            "azureAdUserId": entity.get("id"),
                        },
                    }
                )
            elif entity.get("type") == "ip":
                evidence.append(
                    {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": entity.get("id")}
                )
            elif entity.get("type") == "service":
                evidence.append(
                    {
                        "@odata.type": "#microsoft.graph.security.cloudApplicationEvidence",
                        "appId": entity.get("id"),
                        "displayName": entity.get("label"),
                    }
                )
        return {
            "@odata.type": "#microsoft.graph.security.alert",
            "id": graph_id,
            "providerAlertId": state.mda_id,
            "incidentId": str(int(state.mda_id[:8], 16)),
            "status": version.status,
            "severity": state.severity,
            "classification": version.classification,
            "determination": version.determination,
            "serviceSource": SERVICE_SOURCE,
            "detectionSource": "cloudAppSecurity",
            "productName": "Microsoft Defender for Cloud Apps",
            "detectorId": str(raw.get("title", "")),
            "tenantId": self.tenant_id,
            "title": raw.get("title", ""),
            "description": raw.get("description", ""),
            "category": "InitialAccess",
            "assignedTo": version.assigned_to,
            "alertWebUrl": f"https://security.microsoft.com/alerts/{graph_id}?tid={self.tenant_id}",
            "incidentWebUrl": f"https://security.microsoft.com/incidents/{state.mda_id[:8]}?tid={self.tenant_id}",
            "createdDateTime": iso7(state.created_us),
            "lastUpdateDateTime": iso7(version.updated_us),
            "resolvedDateTime": iso7(version.resolved_us) if version.resolved_us else None,
            "firstActivityDateTime": iso7(state.created_us),
            "lastActivityDateTime": iso7(state.created_us),
            "mitreTechniques": [],
            "comments": list(state.comments),
            "evidence": evidence,
            "systemTags": [],
        }

    def _mda_alerts(self) -> list[dict[str, Any]]:
        """The MDA tenant's alert objects, not copied (read only here; the admin view copies)."""
        store = self._mda.alerts
        with store._lock:
            return list(store._alerts)

    def _sorted_index(self) -> list[tuple[int, str, dict[str, Any], GraphAlertState, Version]]:
        now = self._clock()
        if self._index is None or now >= self._index_expires:
            rows = [(r[0]["lastUpdateDateTime"], r[1], r[0], r[2], r[3]) for r in self._rows()]
            rows.sort(key=lambda r: (r[0], r[1]))
            self._index = rows
            self._index_keys = [(r[0], r[1]) for r in rows]
            pending = [v.visible_at for s in self._alerts.values() for v in s.versions if v.visible_at > now]
            self._index_expires = min(pending, default=float("inf"))
        return self._index

    def _rows(self) -> list[tuple[dict[str, Any], str, GraphAlertState, Version]]:
        """(filter row, id, state, visible version) per alert: the row holds what `$filter` and `$orderby`
        look at (times as epoch µs), so a list builds full alert objects only for the page it returns."""
        now = self._clock()
        out: list[tuple[dict[str, Any], str, GraphAlertState, Version]] = []
        for graph_id, state in self._alerts.items():
            version = state.visible(now)
            if version is None:
                continue
            row = {
                "id": graph_id,
                "serviceSource": SERVICE_SOURCE,
                "lastUpdateDateTime": version.updated_us,
                "createdDateTime": state.created_us,
                "status": version.status,
                "classification": version.classification,
                "determination": version.determination,
                "assignedTo": version.assigned_to,
                "severity": state.severity,
            }
            out.append((row, graph_id, state, version))
        return out

    def _visible(self) -> list[dict[str, Any]]:
        raw_by_id = {str(a["_id"]): a for a in self._mda_alerts()}
        return [
            self._view(graph_id, state, version, raw_by_id[state.mda_id])
            for _, graph_id, state, version in self._rows()
            if state.mda_id in raw_by_id
        ]

    # -- requests --------------------------------------------------------------------------------------------

    def handle(self, req: SimRequest) -> SimResponse:
        method = req.method.upper()
        path = req.path.rstrip("/")
        endpoint = self._endpoint(method, path)
        if self._counters is not None:
            self._counters.hit("graph", endpoint)
        if self._faults is not None:
            injected = self._faults.before("graph", req)
            if injected is not None:
                return injected
        try:
            if endpoint.endswith("<unknown>"):
                raise GraphError(404, "UnknownError", f"Resource not found for the segment in {path!r}.")
            roles = self._authenticate(req)
            needed = READ_ROLES if method == "GET" else WRITE_ROLES
            if not needed & roles:
                raise GraphError(
                    403,
                    "Forbidden",
                    "Missing role permissions on the request. API requires one of "
                    f"'{', '.join(sorted(needed))}'.",
                )
            wait = self.limiter.acquire()
            if wait is not None:
                raise GraphError(
                    429,
                    "TooManyRequests",
                    "Too many requests from the application for this tenant. Please try again later.",
                    {"Retry-After": str(wait)},
                )
            with self._lock:
                self._sync()
                return self._dispatch(method, path, req)
        except GraphError as exc:
            return exc.response()

    @staticmethod
    def _endpoint(method: str, path: str) -> str:
        parts = [p for p in path.split("/") if p]
        match parts:
            case ["v1.0", "security", "alerts_v2"] if method == "GET":
                return "GET /v1.0/security/alerts_v2"
            case ["v1.0", "security", "alerts_v2", _] if method in ("GET", "PATCH"):
                return f"{method} /v1.0/security/alerts_v2/<id>"
            case ["v1.0", "security", "alerts_v2", _, "comments"] if method == "POST":
                return "POST /v1.0/security/alerts_v2/<id>/comments"
        return f"{method} <unknown>"

    def _authenticate(self, req: SimRequest) -> frozenset[str]:
        scheme, _, token = req.header("authorization").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            claims = self._verifier.verify(token.strip(), audience=GRAPH_AUDIENCE)
        except InvalidToken as exc:
            raise GraphError(
                401, "InvalidAuthenticationToken", f"Access token validation failure ({exc})."
            ) from None
        if str(claims.get("tid", "")) != self.tenant_id:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is from another tenant.")
        roles = claims.get("roles")
        return frozenset(str(r).lower() for r in roles) if isinstance(roles, list) else frozenset()

    def _dispatch(self, method: str, path: str, req: SimRequest) -> SimResponse:
        parts = [p for p in path.split("/") if p]
        if len(parts) == 3:
            return SimResponse.json(200, self._list(req))
        graph_id = parts[3]
        state = self._alerts.get(graph_id)
        if state is None or state.visible(self._clock()) is None:
            raise GraphError(404, "NotFound", f"Alert {graph_id} was not found.")
        if len(parts) == 5:
            body = self._json(req)
            comment = body.get("comment")
            if not isinstance(comment, str) or not comment:
                raise _bad("comment is required")
            state.comments.append(
                {"comment": comment, "createdByDisplayName": "app", "createdDateTime": iso7(self._now_us())}
            )
            self._change(graph_id, {}, now=self._clock(), visible_after_s=0.0)
            return SimResponse.json(200, {"value": list(state.comments)})
        if method == "PATCH":
            body = self._json(req)
            unknown = set(body) - set(UPDATABLE)
            if unknown or not body:
                raise _bad(f"Invalid properties for update: {sorted(unknown) or 'none'}")
            if "status" in body and body["status"] not in STATUS_VALUES:
                raise _bad(f"Invalid value for status: {body['status']!r}")
            self._change(graph_id, body, now=self._clock(), visible_after_s=0.0)
        return SimResponse.json(200, self._one(graph_id))

    def _one(self, graph_id: str) -> dict[str, Any]:
        state = self._alerts[graph_id]
        version = state.visible(self._clock())
        assert version is not None
        raw = self._mda.alerts.get(state.mda_id)
        return self._view(graph_id, state, version, raw)

    @staticmethod
    def _json(req: SimRequest) -> dict[str, Any]:
        try:
            body = req.json()
        except (ValueError, UnicodeDecodeError):
            raise _bad("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise _bad("the request body must be a JSON object")
        return body

    def _list(self, req: SimRequest) -> dict[str, Any]:
        unknown = {
            k for k in req.query if k not in ("$filter", "$top", "$skip", "$orderby", "$skiptoken", "$count")
        }
        if unknown:
            raise _bad(f"Query option(s) {sorted(unknown)} are not supported.")
        predicate = _compile_filter(req.arg("$filter") or "")
        top = _int_arg(req.arg("$top"), "$top", default=self.config.max_top)
        top = max(1, min(top, self.config.max_top))
        offset = _int_arg(req.arg("$skiptoken") or req.arg("$skip"), "$skip", default=0)
        order = (req.arg("$orderby") or "createdDateTime desc").strip().split()
        if (
            not order
            or order[0] not in _DATE_PROPS
            or len(order) > 2
            or (len(order) == 2 and order[1] not in ("asc", "desc"))
        ):
            raise _bad(f"$orderby {req.arg('$orderby')!r} is not supported.")
        key = order[0]
        ascending_updates = key == "lastUpdateDateTime" and (len(order) == 1 or order[1] == "asc")
        if ascending_updates and req.arg("$count") != "true":
            # The app's query: a bisect to the lower bound, then just enough rows for the page.
            index = self._sorted_index()
            start = bisect.bisect_left(self._index_keys, (predicate.lower_bound, ""))
            rows: list[tuple[dict[str, Any], str, GraphAlertState, Version]] = []
            for _, graph_id, row, state, version in index[start:]:
                if predicate(row):
                    rows.append((row, graph_id, state, version))
                    if len(rows) > offset + top:
                        break
        else:
            rows = [r for r in self._rows() if predicate(r[0])]
            rows.sort(key=lambda r: (r[0][key], r[1]), reverse=len(order) == 2 and order[1] == "desc")
            if len(order) == 1 and key == "createdDateTime":
                rows.reverse()
        page = [
            self._view(graph_id, state, version, self._mda.alerts.get(state.mda_id))
            for _, graph_id, state, version in rows[offset : offset + top]
        ]
        answer: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/v1.0/$metadata#security/alerts_v2",
            "value": page,
        }
        if req.arg("$count") == "true":
            answer["@odata.count"] = len(rows)
        if offset + len(page) < len(rows):
            params = {k: v[-1] for k, v in req.query.items() if k not in ("$skip", "$skiptoken")}
            params["$skiptoken"] = str(offset + len(page))
            answer["@odata.nextLink"] = f"{self.graph_url}/v1.0/security/alerts_v2?{urlencode(params)}"
        return answer

    # -- admin -----------------------------------------------------------------------------------------------

    def handle_admin(self, req: SimRequest, subpath: str) -> SimResponse:
        method, sub = req.method.upper(), subpath.strip("/")
        try:
            call = AdminCall.with_body(req)
        except BodyError as exc:
            return SimResponse.json(400, {"error": f"admin {exc}"})
        try:
            with self._lock:
                self._sync()
                found = find_route(self._admin_routes(), method, sub)
                if found is None:
                    raise KeyError(f"unknown Graph admin path {method} {sub!r}")
                return SimResponse.json(200, found[0](call))
        except (GraphError, ValueError, KeyError) as exc:
            return SimResponse.json(400, {"error": str(exc)})

    def _admin_routes(self) -> dict[tuple[str, str], Callable[[AdminCall], Any]]:
        """Every admin subpath (under /_admin/graph/{tenant}/)."""
        return {
            ("GET", "alerts"): self._admin_alerts,
            ("POST", "alerts/change"): lambda call: self._admin_change(call.body),
            ("GET", "config"): lambda call: self._admin_config(),
            ("POST", "config"): self._admin_set_config,
            ("GET", "throttle/stats"): lambda call: self.limiter.stats().as_dict(),
            ("POST", "reset"): self._admin_reset,
        }

    def _admin_alerts(self, call: AdminCall) -> Any:
        alerts = self._visible()
        alerts.sort(key=lambda a: (a["lastUpdateDateTime"], a["id"]))
        return {"count": len(alerts), "alerts": alerts}

    def _admin_config(self) -> Any:
        stats = self.limiter.stats()
        return {**self.config.__dict__, "limit": stats.limit, "window_s": stats.window_s}

    def _admin_set_config(self, call: AdminCall) -> Any:
        spec = call.body
        for name in ("visibility_delay_s", "drift_per_minute"):
            if name in spec:
                setattr(self.config, name, float(spec[name]))
        if "max_top" in spec:
            self.config.max_top = int(spec["max_top"])
        if "limit" in spec or "window_s" in spec:
            self.limiter.configure(limit=spec.get("limit"), window_s=spec.get("window_s"))
        self._last_drift = self._clock()
        return self._admin_config()

    def _admin_reset(self, call: AdminCall) -> Any:
        self.config = GraphConfig()
        limit, window = self._default_throttle
        self.limiter.configure(limit=limit, window_s=window)
        self.limiter.reset()
        return {"reset": True}

    def _admin_change(self, spec: dict[str, Any]) -> dict[str, Any]:
        ids = spec.get("ids")
        if ids is None:
            count = int(spec.get("count", 1))
            pool = sorted(self._alerts)
            ids = self._rng.sample(pool, min(count, len(pool)))
        changes = {k: spec[k] for k in UPDATABLE if k in spec}
        comment = spec.get("comment")
        times = int(spec.get("times", 1))
        visible_after = spec.get("visible_after_s")
        back_s = float(spec.get("back_s", 0.0))
        now = self._clock()
        out: list[dict[str, Any]] = []
        for graph_id in ids:
            if graph_id not in self._alerts:
                raise KeyError(f"no alert {graph_id}")
            if comment:
                self._alerts[graph_id].comments.append(
                    {
                        "comment": comment,
                        "createdByDisplayName": "admin",
                        "createdDateTime": iso7(int(now * 1e6)),
                    }
                )
            for _ in range(times):
                version = self._change(
                    graph_id,
                    changes or {"assignedTo": f"analyst{self._rng.randrange(100)}@contoso.com"},
                    now=now,
                    visible_after_s=None if visible_after is None else float(visible_after),
                    back_s=back_s,
                )
                out.append({"id": graph_id, "lastUpdateDateTime": iso7(version.updated_us)})
        return {"changes": out}


def _int_arg(value: str | None, name: str, *, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        parsed = int(value)
    except ValueError:
        raise _bad(f"{name} must be an integer") from None
    if parsed < 0:
        raise _bad(f"{name} must not be negative")
    return parsed


def _literal(text: str) -> str:
    if not (text.startswith("'") and text.endswith("'")):
        raise _bad(f"Expected a quoted string, got {text}")
    return text[1:-1].replace("''", "'")


def _compile_clause(text: str) -> Callable[[dict[str, Any]], bool]:
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        options = [_compile_clause(part) for part in re.split(r"\s+or\s+", text[1:-1])]
        return lambda a: any(o(a) for o in options)
    match = _CLAUSE.match(text)
    if match is None:
        raise _bad(f"Invalid filter clause: {text}")
    prop, op, value = match.groups()
    if prop in _DATE_PROPS:
        bound = parse_iso_us(value)
        import operator

        compare: Callable[[int, int], bool] = {
            "eq": operator.eq,
            "ge": operator.ge,
            "gt": operator.gt,
            "le": operator.le,
            "lt": operator.lt,
        }[op]
        return lambda a: compare(a[prop], bound)  # rows hold times as epoch µs
    if prop in _EQ_PROPS and op == "eq":
        wanted = _literal(value)
        return lambda a: a.get(prop) == wanted
    raise _bad(f"Filter on property {prop!r} with operator {op!r} is not supported.")


class _CompiledFilter:
    """The `$filter` as one predicate over rows, plus its lower bound on `lastUpdateDateTime` (epoch µs)."""

    def __init__(self, clauses: list[Callable[[dict[str, Any]], bool]], lower_bound: int) -> None:
        self.clauses = clauses
        self.lower_bound = lower_bound

    def __call__(self, row: dict[str, Any]) -> bool:
        return all(c(row) for c in self.clauses)


def _compile_filter(text: str) -> _CompiledFilter:
    if not text.strip():
        return _CompiledFilter([], -1)
    parts = _split_and(text)
    bound = -1
    for part in parts:
        match = _CLAUSE.match(part)
        if match and match.group(1) == "lastUpdateDateTime" and match.group(2) in ("ge", "gt", "eq"):
            bound = max(bound, parse_iso_us(match.group(3)))
    return _CompiledFilter([_compile_clause(c) for c in parts], bound)


def _split_and(text: str) -> list[str]:
    """Split on top-level ` and ` (not inside parentheses or quotes)."""
    parts: list[str] = []
    depth, quoted, start, i = 0, False, 0, 0
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and text[i : i + 5].lower() == " and ":
            parts.append(text[start:i])
            start = i + 5
            i += 5
            continue
        i += 1
    parts.append(text[start:])
    return parts
