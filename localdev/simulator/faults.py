"""Fault injection for the simulator: 5xx shares, added latency, connection resets and 429 storms.

Tests configure faults through the admin API (`POST /_admin/faults`, `DELETE /_admin/faults`); every service
asks the shared `FaultInjector` before doing real work:

    injected = faults.before("mda", req)      # service: entra | keyvault | msi | mda | blob | s3
    if injected is not None:
        return injected                        # an error response, or SimResponse.reset() (abort=True)

`before()` applies any configured latency itself (it sleeps in the request thread) and then returns None
(carry on), an error `SimResponse`, or a response with `abort=True`, which the server turns into an abrupt
close (TCP RST) with no HTTP answer. The server calls `before()` for the entra, keyvault and msi services;
the MDA service calls it itself for "mda", "blob" and "s3": only it knows which of those an MDA-port path is.

Rates are deterministic, not random, so tests are reproducible: with `error_rate` 0.5 every second matching
request fails (the 2nd, 4th, ...); with 1.0 every one does. Rules are checked in the order they were added;
the first rule that fires decides the outcome, and latency from every matching rule adds up.

Malformed answers (`body` rules) are applied *after* the service answered: the MDA service passes its real
response through `after("mda", req, response)`, which may rewrite it (see BODY_MODES). The request itself
was processed, exactly as when a proxy mangles an answer on the way back. Such a rule's `error_rate` is the
share of matching answers rewritten (0 or unset: every one); it keeps the service's status unless `status`
is given. Body rules take no part in `before()`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from localdev.simulator.wire import SimRequest, SimResponse

SERVICES = frozenset({"entra", "keyvault", "msi", "mda", "blob", "s3", "logs"})
# How a `body` rule rewrites an answer (JSON bodies; "html", "truncated", "empty" and "huge" work on any):
#   html            an HTML error page (text/html), as a gateway or WAF in front of the service would send
#   truncated       the first half of the body, Content-Type unchanged (invalid JSON)
#   empty           no body at all, Content-Type unchanged
#   missing_fields  the keys named in `fields` removed from the top-level object and from each object of a
#                   top-level "data" list; without `fields`, every top-level key (an empty object)
#   wrong_types     the values of those keys replaced by a value of another JSON type (string <-> number,
#                   list <-> object, bool -> string, null -> list)
#   huge            the object padded with a "_padding" string to `body_bytes` bytes (default 8 MiB)
BODY_MODES = frozenset({"html", "truncated", "empty", "missing_fields", "wrong_types", "huge"})
DEFAULT_HUGE_BYTES = 8 * 1024 * 1024
MAX_HUGE_BYTES = 512 * 1024 * 1024
_FIELDS = frozenset(
    {
        "service",
        "error_rate",
        "status",
        "latency_ms",
        "reset_rate",
        "throttle_burst",
        "count",
        "path_prefix",
        "retry_after",
        "latency_rate",
        "body",
        "fields",
        "body_bytes",
        "tenant",
    }
)


class FaultSpecError(ValueError):
    """The admin API received a fault rule it cannot use; the message names the field."""


@dataclass
class FaultRule:
    """One configured fault. See the module docstring for how the fields combine.

    - service: one of SERVICES or "all".
    - error_rate: share (0..1) of matching requests answered with `status`.
    - status: the injected HTTP status (default 503; 429 gets a Retry-After header and a throttle body).
    - latency_ms: delay added to matching requests (a share `latency_rate` of them: 0.1 = every tenth,
      a "latency spike"; default every one).
    - reset_rate: share (0..1) of matching requests whose connection is dropped without an answer.
    - throttle_burst: the next N matching requests are answered 429 (a "429 storm") before error_rate applies.
    - count: the rule retires after firing (error, reset or 429) this many times; None = never.
    - path_prefix: only requests whose path starts with this string match.
    - retry_after: the Retry-After header (seconds) on injected 429 and 5xx answers, default 1. MSAL honours
      it: it replays a 429/5xx from its own cache for that long (5 s when the header is absent), so keep it
      small for tests that expect a retry to reach the simulator; 0 disables MSAL's replay.
    - body: rewrite the service's answer instead of failing the request (one of BODY_MODES; MDA API only).
    - fields: for missing_fields / wrong_types, the keys to change (default: every top-level key).
    - body_bytes: for huge, the size of the rewritten body.
    - tenant: only requests to this MDA tenant's port match (one tenant's outage among many).
    """

    service: str = "all"
    error_rate: float = 0.0
    status: int = 503
    latency_ms: float = 0.0
    reset_rate: float = 0.0
    throttle_burst: int = 0
    count: int | None = None
    path_prefix: str = ""
    retry_after: int = 1
    latency_rate: float = 1.0
    body: str | None = None
    fields: tuple[str, ...] | None = None
    body_bytes: int = DEFAULT_HUGE_BYTES
    tenant: str = ""
    keep_status: bool = True  # body rules: keep the service's status unless the spec named one
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    fired: int = 0
    _error_acc: float = field(default=0.0, repr=False)
    _reset_acc: float = field(default=0.0, repr=False)
    _latency_acc: float = field(default=0.0, repr=False)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> FaultRule:
        """Validate an admin-API JSON object into a rule (unknown keys and bad ranges are refused)."""
        if not isinstance(spec, dict):
            raise FaultSpecError("fault spec must be a JSON object")
        unknown = set(spec) - _FIELDS
        if unknown:
            raise FaultSpecError(f"unknown fault fields {sorted(unknown)}")
        service = str(spec.get("service", "all"))
        if service != "all" and service not in SERVICES:
            raise FaultSpecError(f"service must be 'all' or one of {sorted(SERVICES)}")
        try:
            rule = cls(
                service=service,
                error_rate=float(spec.get("error_rate") or 0.0),
                status=int(spec.get("status") or 503),
                latency_ms=float(spec.get("latency_ms") or 0.0),
                reset_rate=float(spec.get("reset_rate") or 0.0),
                throttle_burst=int(spec.get("throttle_burst") or 0),
                count=None if spec.get("count") is None else int(spec["count"]),
                path_prefix=str(spec.get("path_prefix") or ""),
                retry_after=1 if spec.get("retry_after") is None else int(spec["retry_after"]),
                latency_rate=1.0 if spec.get("latency_rate") is None else float(spec["latency_rate"]),
                body=None if spec.get("body") is None else str(spec["body"]),
                fields=_field_names(spec.get("fields")),
                body_bytes=DEFAULT_HUGE_BYTES if spec.get("body_bytes") is None else int(spec["body_bytes"]),
                keep_status=spec.get("status") is None,
                tenant=str(spec.get("tenant") or ""),
            )
        except (TypeError, ValueError) as exc:
            raise FaultSpecError(f"invalid fault field value: {exc}") from None
        if rule.body is not None and rule.body not in BODY_MODES:
            raise FaultSpecError(f"body must be one of {sorted(BODY_MODES)}")
        if rule.body is not None and (rule.reset_rate or rule.throttle_burst):
            raise FaultSpecError("a body rule rewrites answers; it takes no reset_rate or throttle_burst")
        if not 1 <= rule.body_bytes <= MAX_HUGE_BYTES:
            raise FaultSpecError(f"body_bytes must be between 1 and {MAX_HUGE_BYTES}")
        for name in ("error_rate", "reset_rate", "latency_rate"):
            if not 0.0 <= getattr(rule, name) <= 1.0:
                raise FaultSpecError(f"{name} must be between 0 and 1")
        if not 100 <= rule.status <= 599:
            raise FaultSpecError("status must be an HTTP status code")
        negative = rule.latency_ms < 0 or rule.throttle_burst < 0 or rule.retry_after < 0
        if negative or (rule.count is not None and rule.count < 0):
            raise FaultSpecError("latency_ms, throttle_burst, retry_after and count must not be negative")
        return rule

    def matches(self, service: str, path: str, listener: str = "") -> bool:
        if self.tenant and listener != f"mda:{self.tenant}":
            return False
        return (self.service in ("all", service)) and path.startswith(self.path_prefix)

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


def _field_names(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FaultSpecError("fields must be a list of key names")
    return tuple(value)


_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>simulated gateway</center></body></html>\n"
)


def _other_type(value: Any) -> Any:
    """A JSON value of a different type than `value` (what a drifting or broken API might send)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return 12345
    if isinstance(value, list):
        return {"unexpected": "object"}
    if isinstance(value, dict):
        return ["unexpected", "list"]
    return []


def _rewrite(
    payload: Any, fields: tuple[str, ...] | None, change: Callable[[dict[str, Any], str], None]
) -> Any:
    if not isinstance(payload, dict):
        return payload
    for key in list(payload) if fields is None else [k for k in fields if k in payload]:
        change(payload, key)
    items = payload.get("data")
    if fields is not None and isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                for key in [k for k in fields if k in item]:
                    change(item, key)
    return payload


def mangle(rule: FaultRule, response: SimResponse) -> SimResponse:
    """The answer `response` rewritten per `rule.body` (see BODY_MODES)."""
    status = response.status if rule.keep_status else rule.status
    headers = dict(response.headers)
    mode = rule.body
    if mode == "html":
        return SimResponse(status, _HTML_PAGE, {"Content-Type": "text/html; charset=utf-8"})
    if mode == "truncated":
        return SimResponse(status, response.body[: len(response.body) // 2], headers)
    if mode == "empty":
        return SimResponse(status, b"", headers)
    try:
        payload = json.loads(response.body) if response.body else None
    except ValueError:
        payload = None
    if mode == "huge":
        base = payload if isinstance(payload, dict) else {"data": payload}
        filler = max(0, rule.body_bytes - len(json.dumps(base)) - 16)
        body = json.dumps({**base, "_padding": "x" * filler}).encode()
        return SimResponse(status, body, {**headers, "Content-Type": "application/json"})
    if mode == "missing_fields":
        payload = _rewrite(payload, rule.fields, lambda obj, key: obj.pop(key, None))
    else:  # wrong_types

        def swap(obj: dict[str, Any], key: str) -> None:
            obj[key] = _other_type(obj[key])

        payload = _rewrite(payload, rule.fields, swap)
    return SimResponse(status, json.dumps(payload).encode(), {**headers, "Content-Type": "application/json"})


def error_body(service: str, status: int, retry_after: int) -> SimResponse:
    """A plausible error answer for an injected status, shaped like the service's own error bodies."""
    headers = {"Retry-After": str(retry_after)} if status == 429 or status >= 500 else {}
    correlation = str(uuid.uuid4())
    payload: dict[str, Any]
    if service == "mda":
        if status == 429:
            message = f"Request was throttled. Expected available in {retry_after} seconds."
            payload = {"error": {"message": message}}
        else:
            payload = {"detail": "Internal server error", "correlation_id": correlation}
    elif service == "entra":
        code = "temporarily_unavailable" if status in (429, 503) else "server_error"
        payload = {
            "error": code,
            "error_description": "AADSTS90033: A transient error has occurred. Please try again.",
            "error_codes": [90033],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": correlation,
        }
    elif service == "logs":
        code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
        payload = {"error": {"code": code, "message": "Injected fault (simulator)."}}
        headers["x-ms-error-code"] = code
    elif service == "keyvault":
        code = "Throttled" if status == 429 else "ServiceUnavailable"
        payload = {"error": {"code": code, "message": "Injected fault (simulator)."}}
    elif service in ("blob", "s3"):
        return SimResponse(
            status,
            b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
            b"<Message>Injected fault (simulator).</Message></Error>",
            {"Content-Type": "application/xml", **headers},
        )
    else:
        payload = {"error": "injected_fault", "error_description": "Injected fault (simulator)."}
    return SimResponse(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})


class FaultInjector:
    """Thread-safe registry of fault rules, shared by every listener of one simulator process."""

    def __init__(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_fire: Callable[[str, str], None] | None = None,
    ) -> None:
        """`on_fire(service, kind)` is called per injected outcome (kind: error, reset, throttle, latency)."""
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._sleep = sleep
        self._on_fire = on_fire

    def add(self, spec: dict[str, Any]) -> FaultRule:
        """Add a rule from an admin-API spec; raises FaultSpecError if the spec is invalid."""
        rule = FaultRule.from_spec(spec)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.public() for r in self._rules]

    def before(self, service: str, req: SimRequest) -> SimResponse | None:
        """Decide the fate of one request to `service`: None (proceed), an error response, or an abort."""
        latency_ms = 0.0
        outcome: SimResponse | None = None
        kind = ""
        with self._lock:
            for rule in self._rules:
                if rule.body is not None or rule.exhausted:
                    continue
                if not rule.matches(service, req.path, req.listener):
                    continue
                if rule.latency_ms:
                    rule._latency_acc += rule.latency_rate
                    if rule._latency_acc >= 1.0 - 1e-9:
                        rule._latency_acc -= 1.0
                        latency_ms += rule.latency_ms
                if outcome is not None:
                    continue
                if rule.throttle_burst > 0:
                    rule.throttle_burst -= 1
                    rule.fired += 1
                    outcome, kind = error_body(service, 429, rule.retry_after), "throttle"
                    continue
                rule._reset_acc += rule.reset_rate
                if rule.reset_rate and rule._reset_acc >= 1.0 - 1e-9:
                    rule._reset_acc -= 1.0
                    rule.fired += 1
                    outcome, kind = SimResponse.reset(), "reset"
                    continue
                rule._error_acc += rule.error_rate
                if rule.error_rate and rule._error_acc >= 1.0 - 1e-9:
                    rule._error_acc -= 1.0
                    rule.fired += 1
                    outcome, kind = error_body(service, rule.status, rule.retry_after), "error"
            self._rules = [r for r in self._rules if not (r.exhausted and r.count is not None)]
        if latency_ms > 0:
            if self._on_fire:
                self._on_fire(service, "latency")
            self._sleep(latency_ms / 1000.0)
        if outcome is not None and self._on_fire:
            self._on_fire(service, kind)
        return outcome

    def after(self, service: str, req: SimRequest, response: SimResponse) -> SimResponse:
        """The service's answer, or that answer rewritten by the first firing `body` rule."""
        chosen: FaultRule | None = None
        with self._lock:
            for rule in self._rules:
                if rule.body is None or rule.exhausted or not rule.matches(service, req.path, req.listener):
                    continue
                rate = rule.error_rate or 1.0
                rule._error_acc += rate
                if rule._error_acc >= 1.0 - 1e-9:
                    rule._error_acc -= 1.0
                    rule.fired += 1
                    chosen = rule
                    break
            self._rules = [r for r in self._rules if not (r.exhausted and r.count is not None)]
        if chosen is None or response.abort:
            return response
        if self._on_fire:
            self._on_fire(service, f"body:{chosen.body}")
        return mangle(chosen, response)
