"""The simulated Azure Monitor Logs Ingestion endpoint (a `kind: Direct` data collection rule's own host).

    POST /dataCollectionRules/{immutableId}/streams/{stream}?api-version=2023-01-01

- Auth: `Bearer <jwt>` for audience `https://monitor.azure.com` issued by the simulator; else 401. A
  principal denied through the admin API gets the service's 403 `OperationFailed` (no Monitoring Metrics
  Publisher role on the rule).
- api-version must be 2023-01-01 or 2023-04-01-preview; `Content-Type: application/json`; `Content-Encoding:
  gzip` is accepted (any other encoding is 415).
- The request content is at most 1,048,576 bytes (413 `ContentLengthLimitExceeded`, the service's message),
  the decompressed body too (whether the service caps it is not documented: this is the stricter reading).
- The body must be a JSON array of objects, else 400 `InvalidContent`; a record the admin API marked as
  malformed (`reject`) makes the whole call 400, as the service refuses a call it cannot parse.
- Unknown rule or stream: 404 with the service's error shape `{"error": {"code", "message"}}` and
  `x-ms-error-code`. Success is 204 No Content; the rows are stored with the time they arrived.
Faults (429 with Retry-After, 5xx, resets, latency) come from `faults.py` with service `logs`, before this
handler runs.

Admin subpaths (mounted at /_admin/logs/{subpath}; JSON in and out):
  GET    records            stored rows, oldest first: {"count", "records"} (`?stream=`, `?dcr=` filter,
                            `?offset=`/`?limit=` page); each row is the object as sent
  DELETE records            forget every row and the statistics
  GET    stats              {"calls", "accepted", "rows", "statuses", "max_request_bytes", "bytes",
                            "max_decoded_bytes", "gzip_calls"}
  POST   reject             {"field": "AlertId", "values": [...]} rows with these values are malformed (400)
  DELETE reject             accept every row again
  POST   deny               {"principal": object id or client id} -> that caller gets 403
  DELETE deny               allow every caller again
  GET    rules              the rules and their streams, and the endpoint
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from localdev.simulator.admin_routes import AdminCall, BodyError, find_route
from localdev.simulator.wire import InvalidToken, SimRequest, SimResponse, TokenVerifier

MONITOR_AUDIENCE = "https://monitor.azure.com"
MAX_CONTENT_BYTES = 1_048_576
API_VERSIONS = frozenset({"2023-01-01", "2023-04-01-preview"})
DEFAULT_STREAM = "Custom-MDAAlerts_CL"
_PATH = re.compile(r"^/dataCollectionRules/([^/]+)/streams/([^/]+)/?$")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> SimResponse:
    return SimResponse.json(
        status, {"error": {"code": code, "message": message}}, {"x-ms-error-code": code, **(headers or {})}
    )


class LogsIngestionService:
    """One endpoint with its data collection rules; thread-safe."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        rules: dict[str, set[str]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._clock = clock
        self.default_rule = f"dcr-{uuid.uuid4().hex}"
        self.rules: dict[str, set[str]] = rules or {self.default_rule: {DEFAULT_STREAM}}
        self.endpoint = ""  # set by the server once its port is known
        self._lock = threading.Lock()
        self._rows: list[tuple[str, str, float, dict[str, Any]]] = []  # rule, stream, arrived, row
        self._reject: tuple[str, frozenset[str]] | None = None
        self._denied: set[str] = set()
        self._stats: dict[str, Any] = {}
        self._statuses: Counter[str] = Counter()
        self._reset_stats()

    def _reset_stats(self) -> None:
        self._stats = {
            "calls": 0,
            "accepted": 0,
            "rows": 0,
            "bytes": 0,
            "max_request_bytes": 0,
            "max_decoded_bytes": 0,
            "gzip_calls": 0,
        }
        self._statuses = Counter()

    @staticmethod
    def endpoint_name(req: SimRequest) -> str:
        return f"{req.method.upper()} /dataCollectionRules/<id>/streams/<stream>"

    # -- ingestion -------------------------------------------------------------------------------------

    def handle(self, req: SimRequest) -> SimResponse:
        response = self._handle(req)
        with self._lock:
            self._stats["calls"] += 1
            self._statuses[str(response.status)] += 1
        return response

    def _handle(self, req: SimRequest) -> SimResponse:
        match = _PATH.match(req.path)
        if match is None:
            return _error(404, "NotFound", f"The resource path '{req.path}' is not found.")
        if req.method.upper() != "POST":
            return _error(405, "MethodNotAllowed", f"The method '{req.method}' is not allowed.")
        rule, stream = match.group(1), match.group(2)
        version = req.arg("api-version")
        if version not in API_VERSIONS:
            return _error(
                400,
                "InvalidApiVersion" if version else "MissingApiVersionParameter",
                f"The api-version '{version or ''}' is not supported; use one of {sorted(API_VERSIONS)}.",
            )
        claims_or_error = self._authenticate(req)
        if isinstance(claims_or_error, SimResponse):
            return claims_or_error
        with self._lock:
            streams = self.rules.get(rule)
            denied = bool({claims_or_error.get("oid"), claims_or_error.get("appid")} & self._denied)
        if streams is None:
            return _error(404, "NotFound", f"Data collection rule with immutable Id '{rule}' not found.")
        if denied:
            return _error(
                403,
                "OperationFailed",
                "The authentication token provided does not have access to ingest data for the data "
                f"collection rule with immutable Id '{rule}'.",
            )
        if stream not in streams:
            return _error(
                404, "InvalidStream", f"Stream '{stream}' is not declared in data collection rule '{rule}'."
            )
        content = req.body
        if len(content) > MAX_CONTENT_BYTES:
            return self._too_large(len(content))
        if not req.header("content-type").lower().startswith("application/json"):
            return _error(415, "UnsupportedMediaType", "Content-Type must be application/json.")
        encoding = req.header("content-encoding").strip().lower()
        if encoding == "gzip":
            try:
                content = _gunzip(content, MAX_CONTENT_BYTES)
            except _TooLarge as exc:
                return self._too_large(exc.size)
            except (OSError, EOFError, zlib.error):
                return _error(400, "InvalidContent", "The request body is not valid gzip.")
        elif encoding not in ("", "identity"):
            return _error(
                415, "UnsupportedContentEncoding", f"Content-Encoding '{encoding}' is not supported."
            )
        try:
            records = json.loads(content.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return _error(400, "InvalidContent", "The request body is not valid JSON.")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return _error(400, "InvalidContent", "The request body must be a JSON array of objects.")
        with self._lock:
            reject = self._reject
        if reject is not None:
            field, values = reject
            bad = next((r for r in records if str(r.get(field)) in values), None)
            if bad is not None:
                return _error(
                    400, "InvalidContent", f"A record could not be parsed: {field} '{bad.get(field)}'."
                )
        arrived = self._clock()
        with self._lock:
            self._rows.extend((rule, stream, arrived, r) for r in records)
            stats = self._stats
            stats["accepted"] += 1
            stats["rows"] += len(records)
            stats["bytes"] += len(req.body)
            stats["max_request_bytes"] = max(stats["max_request_bytes"], len(req.body))
            stats["max_decoded_bytes"] = max(stats["max_decoded_bytes"], len(content))
            stats["gzip_calls"] += encoding == "gzip"
        return SimResponse(204, b"", {})

    def _authenticate(self, req: SimRequest) -> dict[str, Any] | SimResponse:
        scheme, _, token = req.header("authorization").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _error(401, "InvalidAuthenticationToken", "The request has no bearer token.")
        try:
            return self._verifier.verify(token.strip(), audience=MONITOR_AUDIENCE)
        except InvalidToken as exc:
            return _error(401, "InvalidAuthenticationToken", f"The provided token is not valid: {exc}")

    def _too_large(self, size: int) -> SimResponse:
        return _error(
            413,
            "ContentLengthLimitExceeded",
            f"Maximum allowed content length: {MAX_CONTENT_BYTES} bytes (1 MB). Provided content length: "
            f"{size} bytes.",
        )

    # -- admin -----------------------------------------------------------------------------------------

    def clear_conditions(self) -> None:
        """What the simulator's reset clears: denied principals and records marked malformed (rows stay)."""
        with self._lock:
            self._denied.clear()
            self._reject = None

    def handle_admin(self, req: SimRequest, subpath: str) -> SimResponse:
        try:
            call = AdminCall.with_body(req)
        except BodyError as exc:
            return SimResponse.json(400, {"error": str(exc)})
        method, sub = req.method.upper(), subpath.strip("/")
        found = find_route(self._admin_routes(), method, sub)
        if found is None:
            return SimResponse.json(404, {"error": f"unknown logs admin endpoint {method} {sub}"})
        with self._lock:
            return found[0](call)

    def _admin_routes(self) -> dict[tuple[str, str], Callable[[AdminCall], SimResponse]]:
        """Every admin subpath (the module docstring says what each takes and answers)."""
        return {
            ("GET", "records"): self._admin_records,
            ("DELETE", "records"): self._admin_clear_records,
            ("GET", "stats"): lambda call: SimResponse.json(
                200, {**self._stats, "statuses": dict(self._statuses)}
            ),
            ("POST", "reject"): self._admin_reject,
            ("DELETE", "reject"): self._admin_clear_reject,
            ("POST", "deny"): self._admin_deny,
            ("DELETE", "deny"): self._admin_clear_denied,
            ("GET", "rules"): lambda call: SimResponse.json(200, self.describe()),
        }

    def _admin_records(self, call: AdminCall) -> SimResponse:
        req = call.req
        rows = [
            r
            for rule, stream, _, r in self._rows
            if req.arg("stream") in (None, stream) and req.arg("dcr") in (None, rule)
        ]
        offset = int(req.arg("offset") or 0)
        limit = int(req.arg("limit") or len(rows) or 1)
        return SimResponse.json(200, {"count": len(rows), "records": rows[offset : offset + limit]})

    def _admin_clear_records(self, call: AdminCall) -> SimResponse:
        self._rows.clear()
        self._reset_stats()
        return SimResponse.json(200, {"count": 0})

    def _admin_reject(self, call: AdminCall) -> SimResponse:
        values = call.body.get("values")
        if not isinstance(values, list):
            return SimResponse.json(400, {"error": "'values' must be a list"})
        self._reject = (str(call.body.get("field") or "AlertId"), frozenset(str(v) for v in values))
        return SimResponse.json(200, {"field": self._reject[0], "values": sorted(self._reject[1])})

    def _admin_clear_reject(self, call: AdminCall) -> SimResponse:
        self._reject = None
        return SimResponse.json(200, {"values": []})

    def _admin_deny(self, call: AdminCall) -> SimResponse:
        principal = call.body.get("principal")
        if not isinstance(principal, str) or not principal:
            return SimResponse.json(400, {"error": "'principal' is required"})
        self._denied.add(principal)
        return SimResponse.json(200, {"denied": sorted(self._denied)})

    def _admin_clear_denied(self, call: AdminCall) -> SimResponse:
        self._denied.clear()
        return SimResponse.json(200, {"denied": []})

    def describe(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "dcr_immutable_id": self.default_rule,
            "stream": DEFAULT_STREAM,
            "rules": {rule: sorted(streams) for rule, streams in self.rules.items()},
            "audience": MONITOR_AUDIENCE,
        }


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress at most `limit` bytes (a gzip bomb must not exhaust the simulator)."""
    decompressor = zlib.decompressobj(31)
    out = decompressor.decompress(data, limit + 1)
    if len(out) > limit:
        raise _TooLarge(limit + 1 + len(decompressor.unconsumed_tail))
    if not decompressor.eof:
        raise EOFError("truncated gzip stream")
    return out
