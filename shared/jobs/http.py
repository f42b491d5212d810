"""Framework-neutral request/response values for the jobs API.

functions/jobs.py turns `func.HttpRequest` into an `ApiRequest` and an `ApiResponse` back into
`func.HttpResponse`; everything in between is plain Python that tests (and the benchmark) call directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from shared.headers import header_value


@dataclass(frozen=True)
class ApiRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    def origin(self) -> str:
        """`scheme://host[:port]` of the request, for absolute status URLs ('' when unknown)."""
        parts = urlsplit(self.url)
        if parts.scheme in ("http", "https") and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
        return ""


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> ApiResponse:
    body = json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")
    return ApiResponse(status, body, {"Content-Type": "application/json", **(headers or {})})


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    correlation_id: str | None = None,
    field_errors: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ApiResponse:
    payload: dict[str, Any] = {"error": code, "message": message}
    if field_errors:
        payload["fieldErrors"] = dict(field_errors)
    if correlation_id:
        payload["correlationId"] = correlation_id
    extra = dict(headers or {})
    if correlation_id:
        extra.setdefault("X-Correlation-ID", correlation_id)
    return json_response(status, payload, extra)
