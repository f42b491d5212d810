"""The simulated Defender for Cloud Apps API of one tenant: auth, throttle, routing, admin.

One `MdaService` answers everything that arrives on its tenant's HTTPS port (a tenant is a host):

- `/api/...` and the `/cas/api/...` alias, with or without the trailing slash; list endpoints take POST JSON,
  GET with a JSON body, GET with query parameters and form bodies (see `mda_common.request_params`).
- Auth: `Authorization: Token <64-192 chars [0-9A-Za-z=]>` (known legacy tokens, case-sensitive) or
  `Bearer <jwt>` for audience 05a65629-4c1b-48c1-a78b-804c4abdd4af issued in this tenant; anything else is 401
  `{"detail": "Invalid token"}`. Permissions come from `roles` (app) or `scp` (delegated) per the §2.4 table,
  case-insensitively; a miss is 403 `{"detail": "Insufficient role based permissions", "correlation_id"}`.
  The Files API is refused to every Bearer token (§2.4) and open to legacy tokens.
- Throttle: more than `rate_limit` authenticated API calls in a rolling `rate_window_s` → 429
  `{"error": {"message": "Request was throttled. Expected available in N seconds."}}` + `Retry-After: N`.
  Upload PUTs to `/blob/...` and `/s3/...` are storage traffic: no MDA auth, no MDA throttle.
- Order per API request (as in Django REST Framework): counters → fault injection ("mda") → unknown path
  (404, no auth) → auth (401) → permission (403) → throttle (429) → method (405) → handler.
  Storage requests: counters → fault injection ("blob" / "s3") → SAS / signature check → handler.

Served endpoints (v1 unless noted):
  GET|POST alerts/ · GET|POST alerts/<pk>/ · POST alerts/<pk>/read/ · POST alerts/<pk>/unread/ ·
  POST alerts/close_benign/ · alerts/close_false_positive/ · alerts/close_true_positive/ · alerts/reopen/ ·
  GET|POST files/ (legacy tokens only; empty list) · GET discovery/upload_url/ · POST discovery/done_upload/ ·
  GET /api/discovery/streams/ (no v1) · GET /api/discovery_block_scripts/ (no v1) ·
  PUT|GET /blob/uploads/<id> · PUT|GET /s3/<bucket>/<key>.

Admin subpaths (`handle_admin`, mounted by the server at /_admin/mda/{tenant}/{subpath}; JSON in and out):
  GET    alerts                 all alerts, oldest first (`?id=<_id>` repeats to select) → {"count", "alerts"}
  DELETE alerts                 remove every alert
  POST   alerts/seed            {"count", "seed"?, "start_ms"?, "end_ms"?, "days"? (7), "burst_share"? (0.3),
                                 "replace"? (true)} → {"added", "total"}; deterministic per seed + window
  POST   alerts/add             {"count"? (1), "timestamp"? (now, epoch ms)} → {"added", "ids", "timestamp"}:
                                 alerts arriving "now" (e.g. while a pull runs), all in the same millisecond
  GET    alerts/feedback        every close call received (kind, ids, reasonId, comment, feedback fields)
  GET|POST list_config          {"max_skip": int|null (5000), "total_cap": int|null (null)}
  GET|POST throttle             {"limit", "window_s"} (live; e.g. 30 per 2 s in tests)
  GET    throttle/stats         {"limit", "window_s", "in_window", "allowed", "throttled", "injected_429"}
  POST   throttle/reset         forget the rolling window and the counts (limit and window are kept)
  POST   reset                  start-up throttle limit/window (history cleared), default list_config and
                                 discovery/config (azure, no Azurite, default limits); alerts, streams,
                                 uploads and legacy tokens are kept
  GET|POST discovery/config     {"provider": "azure"|"aws", "azurite_blob_endpoint": url|null,
                                 "single_put_limit": bytes, "max_file_size": bytes}
  GET    uploads                finished uploads: stream, snapshot, size, sha256, source, filename, provider
  GET|POST streams              list / add a data source {"displayName", "logType": id|name, "receiverType"?}
  GET    tokens                 number of legacy tokens (values are never echoed)
  POST   tokens                 {"token", "roles": ["Investigation.read", ...]} add or replace a legacy token
  DELETE tokens                 {"token"} revoke a legacy token
  GET    state                  summary (alert count, throttle, discovery config, stream names)

Body streaming: `wants_stream(method, path)` tells the server which requests are upload PUTs; for those it
may call `handle_stream(req, body_reader)` with the unread body instead of buffering it in `req.body`.
"""

from __future__ import annotations

import io
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localdev.simulator.admin_routes import AdminCall, BodyError, find_route
from localdev.simulator.counters import Counters
from localdev.simulator.faults import FaultInjector
from localdev.simulator.mda_alerts import CLOSE_KINDS, AlertStore, ListConfig
from localdev.simulator.mda_common import ApiError, as_int, bad_request, not_found, request_params
from localdev.simulator.mda_discovery import DiscoveryService
from localdev.simulator.mda_storage import BodyReader
from localdev.simulator.seed import AlertFactory
from localdev.simulator.throttle import RollingWindowLimiter
from localdev.simulator.wire import InvalidToken, SimRequest, SimResponse, TokenVerifier

MDA_AUDIENCE = "05a65629-4c1b-48c1-a78b-804c4abdd4af"
LEGACY_TOKEN = re.compile(r"[0-9A-Za-z=]{64,192}")
DAY_MS = 86_400_000

# Permission sets per action
# (https://learn.microsoft.com/defender-cloud-apps/api-authentication-application), lower-case.
ALERTS_READ = frozenset({"investigation.read", "investigation.manage", "discovery.read", "discovery.manage"})
ALERTS_CLOSE = frozenset({"investigation.manage", "discovery.manage"})
DISCOVERY_READ = frozenset({"discovery.read", "discovery.manage"})
DISCOVERY_MANAGE = frozenset({"discovery.manage"})
FILES = frozenset({"<legacy-token-only>"})  # no Bearer permission grants the Files API


@dataclass(frozen=True)
class Principal:
    kind: str  # "app" | "user" | "legacy"
    permissions: frozenset[str]
    name: str


@dataclass(frozen=True)
class Route:
    endpoint: str  # stable counter name: "METHOD /api/v1/path/<pk>/"
    methods: tuple[str, ...]
    permissions: frozenset[str]
    handler: Callable[[SimRequest, Principal], SimResponse]


def _invalid_token() -> ApiError:
    return ApiError(401, {"detail": "Invalid token"}, {"WWW-Authenticate": "Token"})


def _forbidden() -> ApiError:
    return ApiError(
        403, {"detail": "Insufficient role based permissions", "correlation_id": str(uuid.uuid4())}
    )


def _method_not_allowed(method: str) -> ApiError:
    return ApiError(405, {"detail": f'Method "{method}" not allowed.'})


class MdaService:
    """Everything arriving on one MDA tenant's port, plus its admin subtree."""

    def __init__(
        self,
        name: str,
        tenant_id: str,
        verifier: TokenVerifier,
        *,
        legacy_tokens: dict[str, set[str]],
        rate_limit: int,
        rate_window_s: float,
        api_url: str,
        faults: FaultInjector | None = None,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.time,
        seed_alerts: int = 0,
    ) -> None:
        self.name = name
        self.tenant_id = tenant_id
        self.api_url = api_url.rstrip("/")
        self._verifier = verifier
        self._legacy: dict[str, frozenset[str]] = {
            t: frozenset(r.lower() for r in roles) for t, roles in legacy_tokens.items()
        }
        self._faults = faults
        self._counters = counters
        self._clock = clock
        self.limiter = RollingWindowLimiter(rate_limit, rate_window_s, clock=clock)
        self._default_throttle = (rate_limit, float(rate_window_s))
        self._injected_429 = 0
        self.alerts = AlertStore(clock=clock)
        self._discovery: DiscoveryService | None = None
        self._seed = zlib.crc32(name.encode())
        self._factory_obj: AlertFactory | None = None  # built on first use, like the seed below
        # Seeded on first use, not at start: a simulator serving hundreds of tenants starts at once and
        # only pays for the tenants a run touches.
        self._pending_seed = seed_alerts
        self._seed_lock = threading.RLock()

    # -- entry points ----------------------------------------------------------------------------------------

    def wants_stream(self, method: str, path: str) -> bool:
        """True for upload PUTs, whose bodies the server should hand over unread via `handle_stream`."""
        return method.upper() == "PUT" and DiscoveryService.storage_kind(path) is not None

    def handle(self, req: SimRequest) -> SimResponse:
        """Everything arriving on this tenant's HTTPS port (the body already read into `req.body`)."""
        if DiscoveryService.storage_kind(req.path) is not None:
            return self.handle_stream(req, io.BytesIO(req.body))
        return self._handle_api(req)

    def handle_stream(self, req: SimRequest, body: BodyReader) -> SimResponse:
        """A storage request (upload target); its body is read from `body`, `Content-Length` bytes at most."""
        kind = DiscoveryService.storage_kind(req.path)
        if kind is None:
            return self._handle_api(req)
        endpoint = f"{req.method.upper()} /blob/<id>" if kind == "blob" else f"{req.method.upper()} /s3/<key>"
        if req.arg("comp"):
            endpoint += f"?comp={req.arg('comp')}"
        self._hit(kind, endpoint)
        if self._faults is not None:
            injected = self._faults.before(kind, req)
            if injected is not None:
                return injected
        try:
            return self.discovery.handle_storage(req, body)
        except ApiError as exc:
            return exc.response()

    def _hit(self, service: str, endpoint: str) -> None:
        if self._counters is not None:
            self._counters.hit(service, endpoint)

    @property
    def discovery(self) -> DiscoveryService:
        """Built on first use: most tenants of a many-tenant run never upload anything."""
        if self._discovery is None:
            with self._seed_lock:
                if self._discovery is None:
                    self._discovery = DiscoveryService(
                        tenant_name=self.name, api_url=self.api_url, clock=self._clock
                    )
        return self._discovery

    @property
    def _factory(self) -> AlertFactory:
        if self._factory_obj is None:
            self._factory_obj = self._new_factory(self._seed)
        return self._factory_obj

    @_factory.setter
    def _factory(self, factory: AlertFactory) -> None:
        self._factory_obj = factory

    def _ensure_seeded(self) -> None:
        if not self._pending_seed:
            return
        with self._seed_lock:
            count, self._pending_seed = self._pending_seed, 0
            if count:
                self._seed_alerts({"count": count})

    def _handle_api(self, req: SimRequest) -> SimResponse:
        self._ensure_seeded()
        method = req.method.upper()
        route_or_error = self._route(method, req.path)
        endpoint = route_or_error.endpoint if isinstance(route_or_error, Route) else f"{method} <unknown>"
        self._hit("mda", endpoint)
        response = self._dispatch(req, route_or_error)
        if self._faults is not None:
            response = self._faults.after("mda", req, response)  # `body` rules: a mangled answer
        if self._counters is not None:
            self._counters.incr("mda_status", str(response.status))
        return response

    def _dispatch(self, req: SimRequest, route: Route | ApiError) -> SimResponse:
        if self._faults is not None:
            injected = self._faults.before("mda", req)
            if injected is not None:
                if injected.status == 429:
                    self._injected_429 += 1
                return injected
        try:
            # DRF order: URL resolution (404), then authentication, permissions, throttling, method (405).
            if isinstance(route, ApiError):
                raise route
            principal = self._authenticate(req)
            self._authorize(principal, route.permissions)
            wait = self.limiter.acquire()
            if wait is not None:
                return SimResponse.json(
                    429,
                    {"error": {"message": f"Request was throttled. Expected available in {wait} seconds."}},
                    {"Retry-After": str(wait)},
                )
            if req.method.upper() not in route.methods:
                raise _method_not_allowed(req.method.upper())
            return route.handler(req, principal)
        except ApiError as exc:
            return exc.response()

    # -- auth ------------------------------------------------------------------------------------------------

    def _authenticate(self, req: SimRequest) -> Principal:
        scheme, _, credential = req.header("authorization").strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() == "token":
            roles = self._legacy.get(credential) if LEGACY_TOKEN.fullmatch(credential) else None
            if roles is None:
                raise _invalid_token()
            return Principal("legacy", roles, "api-token-owner")
        if scheme.lower() == "bearer" and credential:
            try:
                claims = self._verifier.verify(credential, audience=MDA_AUDIENCE)
            except InvalidToken:
                raise _invalid_token() from None
            if str(claims.get("tid", "")) != self.tenant_id:
                raise _invalid_token()
            scp = claims.get("scp")
            if isinstance(scp, str) and scp.strip():
                perms = frozenset(s.lower() for s in scp.split())
                name = str(
                    claims.get("upn") or claims.get("preferred_username") or claims.get("oid") or "user"
                )
                return Principal("user", perms, name)
            roles = claims.get("roles")
            perms = frozenset(str(r).lower() for r in roles) if isinstance(roles, list) else frozenset()
            return Principal("app", perms, f"app:{claims.get('appid', 'unknown')}")
        raise _invalid_token()

    @staticmethod
    def _authorize(principal: Principal, needed: frozenset[str]) -> None:
        if needed is FILES:
            if principal.kind != "legacy":
                raise _forbidden()
            return
        if principal.kind == "legacy" and not principal.permissions:
            raise _forbidden()
        if not needed & principal.permissions:
            raise _forbidden()

    # -- routing ---------------------------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> Route | ApiError:
        """Match a path (with or without `/cas` and the trailing slash) to a route, or the error to send."""
        if path.startswith("/cas/api/") or path == "/cas/api":
            path = path[len("/cas") :]
        if not path.startswith("/api/"):
            return not_found()
        parts = [p for p in path[len("/api/") :].split("/") if p]

        def route(
            methods: tuple[str, ...],
            template: str,
            perms: frozenset[str],
            handler: Callable[[SimRequest, Principal], SimResponse],
        ) -> Route:
            return Route(f"{method} /api/{template}", methods, perms, handler)

        match parts:
            case ["v1", "alerts"]:
                return route(("GET", "POST"), "v1/alerts/", ALERTS_READ, self._alerts_list)
            case ["v1", "alerts", kind] if kind.startswith("close_") and kind[len("close_") :] in CLOSE_KINDS:
                return route(
                    ("POST",),
                    f"v1/alerts/{kind}/",
                    ALERTS_CLOSE,
                    lambda req, who: self._alerts_close(req, who, kind[len("close_") :]),
                )
            case ["v1", "alerts", "reopen"]:
                return route(("POST",), "v1/alerts/reopen/", ALERTS_CLOSE, self._alerts_reopen)
            case ["v1", "alerts", pk]:
                return route(
                    ("GET", "POST"),
                    "v1/alerts/<pk>/",
                    ALERTS_READ,
                    lambda req, who: SimResponse.json(200, self.alerts.get(pk)),
                )
            case ["v1", "alerts", pk, ("read" | "unread") as action]:
                return route(
                    ("POST",),
                    f"v1/alerts/<pk>/{action}/",
                    ALERTS_READ,
                    lambda req, who: SimResponse.json(200, self.alerts.mark(pk, read=action == "read")),
                )
            case ["v1", "files"]:
                return route(("GET", "POST"), "v1/files/", FILES, self._files_list)
            case ["v1", "files", _pk]:
                return route(("GET", "POST"), "v1/files/<pk>/", FILES, self._files_get)
            case ["v1", "discovery", "upload_url"]:
                return route(
                    ("GET", "POST"),
                    "v1/discovery/upload_url/",
                    DISCOVERY_MANAGE,
                    lambda req, who: SimResponse.json(200, self.discovery.upload_url(request_params(req))),
                )
            case ["v1", "discovery", "done_upload"]:
                return route(
                    ("POST",),
                    "v1/discovery/done_upload/",
                    DISCOVERY_MANAGE,
                    lambda req, who: SimResponse.json(200, self.discovery.done_upload(request_params(req))),
                )
            case ["discovery", "streams"]:
                return route(
                    ("GET",),
                    "discovery/streams/",
                    DISCOVERY_READ,
                    lambda req, who: SimResponse.json(200, self.discovery.list_streams()),
                )
            case ["discovery_block_scripts"]:
                return route(
                    ("GET",),
                    "discovery_block_scripts/",
                    DISCOVERY_MANAGE,
                    lambda req, who: self.discovery.block_script(request_params(req)),
                )
        return not_found()

    # -- handlers --------------------------------------------------------------------------------------------

    def _alerts_list(self, req: SimRequest, who: Principal) -> SimResponse:
        return SimResponse.json(200, self.alerts.list_alerts(request_params(req)))

    def _alerts_close(self, req: SimRequest, who: Principal, kind: str) -> SimResponse:
        return SimResponse.json(200, self.alerts.close(kind, request_params(req), handled_by=who.name))

    def _alerts_reopen(self, req: SimRequest, who: Principal) -> SimResponse:
        return SimResponse.json(200, self.alerts.reopen(request_params(req)))

    @staticmethod
    def _files_list(req: SimRequest, who: Principal) -> SimResponse:
        params = request_params(req)
        as_int(params.get("skip"), "skip")
        as_int(params.get("limit"), "limit")
        return SimResponse.json(200, {"total": 0, "hasNext": False, "data": []})

    @staticmethod
    def _files_get(req: SimRequest, who: Principal) -> SimResponse:
        raise not_found()

    # -- admin -----------------------------------------------------------------------------------------------

    def _new_factory(self, seed: int) -> AlertFactory:
        return AlertFactory(
            seed=seed,
            portal_url=self.api_url,
            context_id=self.tenant_id,
            domain=f"{re.sub(r'[^a-z0-9-]', '', self.name.lower()) or 'contoso'}.com",
        )

    def _seed_alerts(self, spec: dict[str, Any]) -> dict[str, Any]:
        count = as_int(spec.get("count"), "count", default=0) or 0
        if count < 0 or count > 1_000_000:
            raise bad_request("count must be between 0 and 1,000,000")
        now_ms = int(self._clock() * 1000)
        days = as_int(spec.get("days"), "days", default=7) or 7
        end_ms = as_int(spec.get("end_ms"), "end_ms", default=now_ms)
        assert end_ms is not None
        start_ms = as_int(spec.get("start_ms"), "start_ms", default=end_ms - days * DAY_MS)
        assert start_ms is not None
        if start_ms > end_ms:
            raise bad_request("start_ms must not be after end_ms")
        burst_share = spec.get("burst_share", 0.3)
        if (
            isinstance(burst_share, bool)
            or not isinstance(burst_share, int | float)
            or not 0 <= burst_share < 1
        ):
            raise bad_request("burst_share must be a number in [0, 1)")
        if spec.get("replace", True) is not False:
            self.alerts.clear()
            seed = as_int(spec.get("seed"), "seed", default=self._seed)
            assert seed is not None
            self._factory = self._new_factory(seed)
        alerts = self._factory.batch(count, start_ms=start_ms, end_ms=end_ms, burst_share=float(burst_share))
        self.alerts.add(alerts)
        return {"added": len(alerts), "total": len(self.alerts)}

    def _add_alerts(self, spec: dict[str, Any]) -> dict[str, Any]:
        count = as_int(spec.get("count"), "count", default=1) or 0
        if count < 1 or count > 100_000:
            raise bad_request("count must be between 1 and 100,000")
        timestamp = as_int(spec.get("timestamp"), "timestamp", default=int(self._clock() * 1000))
        assert timestamp is not None
        alerts = self._factory.at(count, timestamp)
        self.alerts.add(alerts)
        return {"added": len(alerts), "ids": [a["_id"] for a in alerts], "timestamp": timestamp}

    def handle_admin(self, req: SimRequest, subpath: str) -> SimResponse:
        """/_admin/mda/{tenant}/{subpath} — see the module docstring for the subpaths."""
        self._ensure_seeded()
        method, sub = req.method.upper(), subpath.strip("/")
        try:
            call = AdminCall.with_body(req)
        except BodyError as exc:
            return SimResponse.json(400, {"detail": f"admin {exc}"})
        try:
            found = find_route(self._admin_routes(), method, sub)
            if found is None:
                raise ApiError(404, {"detail": f"unknown MDA admin path {method} {sub!r}"})
            return SimResponse.json(200, found[0](call))
        except ApiError as exc:
            return exc.response()
        except ValueError as exc:  # e.g. limiter configuration
            return SimResponse.json(400, {"detail": str(exc)})

    def _admin_routes(self) -> dict[tuple[str, str], Callable[[AdminCall], Any]]:
        """Every admin subpath (the module docstring says what each takes and answers)."""
        return {
            ("GET", "alerts"): self._admin_alerts,
            ("DELETE", "alerts"): self._admin_clear_alerts,
            ("POST", "alerts/seed"): lambda call: self._seed_alerts(call.body),
            ("POST", "alerts/add"): lambda call: self._add_alerts(call.body),
            ("GET", "alerts/feedback"): lambda call: {"feedback": list(self.alerts.feedback)},
            ("GET", "list_config"): lambda call: self._admin_list_config(),
            ("POST", "list_config"): self._admin_set_list_config,
            ("GET", "throttle"): lambda call: self._admin_throttle(),
            ("POST", "throttle"): self._admin_set_throttle,
            ("GET", "throttle/stats"): self._admin_throttle_stats,
            ("POST", "throttle/reset"): self._admin_reset_throttle_window,
            ("POST", "reset"): self._admin_reset,
            ("GET", "discovery/config"): lambda call: self.discovery.config.public(),
            ("POST", "discovery/config"): lambda call: self.discovery.configure(call.body),
            ("GET", "uploads"): lambda call: {"uploads": self.discovery.uploads_report()},
            ("GET", "streams"): lambda call: self.discovery.list_streams(),
            ("POST", "streams"): lambda call: self.discovery.add_stream(call.body),
            ("GET", "tokens"): lambda call: {"count": len(self._legacy)},
            ("POST", "tokens"): self._admin_add_legacy_token,
            ("DELETE", "tokens"): self._admin_revoke_legacy_token,
            ("GET", "state"): self._admin_state,
            ("GET", ""): self._admin_state,
        }

    def _admin_alerts(self, call: AdminCall) -> Any:
        wanted = set(call.req.query.get("id", []))
        alerts = [a for a in self.alerts.all() if not wanted or a["_id"] in wanted]
        return {"count": len(alerts), "alerts": alerts}

    def _admin_clear_alerts(self, call: AdminCall) -> Any:
        self.alerts.clear()
        return {"count": 0}

    def _admin_list_config(self) -> Any:
        cfg = self.alerts.config
        return {"max_skip": cfg.max_skip, "total_cap": cfg.total_cap}

    def _admin_set_list_config(self, call: AdminCall) -> Any:
        self._set_list_config(call.body)
        return self._admin_list_config()

    def _admin_throttle(self) -> Any:
        stats = self.limiter.stats()
        return {"limit": stats.limit, "window_s": stats.window_s}

    def _admin_set_throttle(self, call: AdminCall) -> Any:
        limit = as_int(call.body.get("limit"), "limit")
        window = call.body.get("window_s")
        if window is not None and (isinstance(window, bool) or not isinstance(window, int | float)):
            raise bad_request("window_s must be a number of seconds")
        self.limiter.configure(limit=limit, window_s=window)
        return self._admin_throttle()

    def _admin_throttle_stats(self, call: AdminCall) -> Any:
        return {**self.limiter.stats().as_dict(), "injected_429": self._injected_429}

    def _admin_reset_throttle_window(self, call: AdminCall) -> Any:
        self.limiter.reset()
        self._injected_429 = 0
        return self.limiter.stats().as_dict()

    def _admin_reset(self, call: AdminCall) -> Any:
        self._reset_throttle()
        self.alerts.config = ListConfig()
        self.discovery.reset_config()
        return {"reset": True}

    def _admin_add_legacy_token(self, call: AdminCall) -> Any:
        token, roles = call.body.get("token"), call.body.get("roles", [])
        if not isinstance(token, str) or not LEGACY_TOKEN.fullmatch(token):
            raise bad_request("token must be 64-192 characters of [0-9A-Za-z=]")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise bad_request("roles must be a list of permission names")
        self._legacy[token] = frozenset(r.lower() for r in roles)
        return {"count": len(self._legacy)}

    def _admin_revoke_legacy_token(self, call: AdminCall) -> Any:
        removed = self._legacy.pop(str(call.body.get("token", "")), None) is not None
        return {"removed": removed, "count": len(self._legacy)}

    def _admin_state(self, call: AdminCall) -> Any:
        return {
            "tenant": self.name,
            "tenant_id": self.tenant_id,
            "api_url": self.api_url,
            "alerts": len(self.alerts),
            "throttle": self.limiter.stats().as_dict(),
            "discovery": self.discovery.config.public(),
            "streams": [s["displayName"] for s in self.discovery.list_streams()["streams"]],
        }

    def _reset_throttle(self) -> None:
        limit, window = self._default_throttle
        self.limiter.configure(limit=limit, window_s=window)
        self.limiter.reset()
        self._injected_429 = 0

    def _set_list_config(self, spec: dict[str, Any]) -> None:
        cfg = self.alerts.config
        for name in ("max_skip", "total_cap"):
            if name in spec:
                value = spec[name]
                parsed = None if value is None else as_int(value, name)
                if parsed is not None and parsed < 0:
                    raise bad_request(f"{name} must not be negative")
                setattr(cfg, name, parsed)
