"""Request parsing and error plumbing shared by the simulated Defender for Cloud Apps endpoints.

The real service is loose about how parameters arrive
(https://learn.microsoft.com/defender-cloud-apps/api-introduction): POST with JSON, GET with a JSON
body, GET with query parameters (`filters` JSON-encoded) and form-encoded bodies (curl `-d '{...}'` even
sends JSON under a form content type). Everything is normalised here into one plain dict so handlers stay
simple.
"""

from __future__ import annotations

import json
from typing import Any

from localdev.simulator.wire import SimRequest, SimResponse


class ApiError(Exception):
    """Raised by handlers; turned into the JSON error response the service would send."""

    def __init__(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(str(payload.get("detail", payload)))
        self.status = status
        self.payload = payload
        self.headers = headers or {}

    def response(self) -> SimResponse:
        return SimResponse.json(self.status, self.payload, self.headers)


def bad_request(detail: str, **extra: Any) -> ApiError:
    return ApiError(400, {"detail": detail, **extra})


def not_found(detail: str = "Not found.") -> ApiError:
    return ApiError(404, {"detail": detail})


def _decode_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request(f"JSON parse error in {where} - {exc.msg}") from None


def request_params(req: SimRequest) -> dict[str, Any]:
    """Merge query parameters and body into one dict (body wins); JSON-encoded `filters` are decoded."""
    params: dict[str, Any] = {k: v[-1] for k, v in req.query.items() if v}
    body = req.body
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("Request body is not UTF-8") from None
        stripped = text.lstrip()
        if stripped.startswith(("{", "[")):
            decoded = _decode_json(stripped, "request body")
            if not isinstance(decoded, dict):
                raise bad_request("Request body must be a JSON object")
            params.update(decoded)
        elif stripped:
            params.update(req.form())
    filters = params.get("filters")
    if isinstance(filters, str):
        params["filters"] = _decode_json(filters, "filters") if filters.strip() else {}
    return params


def as_int(value: Any, name: str, *, default: int | None = None) -> int | None:
    """Integers may arrive as JSON numbers or as query/form strings."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise bad_request(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise bad_request(f"{name} must be an integer")


def as_bool(value: Any, name: str, *, default: bool = False) -> bool:
    """Booleans may arrive as JSON booleans or as "true"/"false" strings from forms and query strings."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0"}:
        return value.strip().lower() in {"true", "1"}
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise bad_request(f"{name} must be a boolean")
