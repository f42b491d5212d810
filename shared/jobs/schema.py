"""Job bodies -> a normalised `JobSpec`, or a `ValidationError` whose `field_errors` name every bad field.

Pure: no I/O, no settings lookups (the caller passes the tenant names, the loopback switch, the extra
discovery sources and the clock), so the HTTP intake, the worker and the property tests all validate the same
way.

The fields, limits and enums are the request schema's (shared/jobs/request_schema.py, which the OpenAPI
document publishes); this module adds the messages and the cross-field rules. Rules worth knowing:
- unknown fields are errors (a typo such as `reasonID` must not be silently ignored on a close), and so are
  duplicate keys (`unique_keys`, used when the body is parsed: parsers disagree on which copy wins);
- alert ids are the API's 24-hex `_id`s, at most `MAX_IDS` per job (the worker chunks them by 100 per API
  call); duplicates are dropped;
- `reasonId` must be one the chosen close endpoint documents; true positive takes none;
- windows are fixed at intake (a `lookback` becomes absolute `since`/`until`), so a retried job reads the same
  range.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from shared.alerts.window import DATETIME_BOUNDS_US, WindowRules, parse_window
from shared.discovery.jobs import StorageAccount, parse_blob_ref, validate_stream
from shared.discovery.sources import validate_source
from shared.errors import ValidationError
from shared.jobs.request_schema import (
    ACTION_CLOSE,
    ACTION_DISCOVERY_UPLOAD,
    ACTION_FETCH,
    ACTION_MARK_READ,
    ACTION_MARK_UNREAD,
    ACTION_UPDATE,
    ACTIONS,
    CLASSIFICATIONS,
    CLOSE_KINDS,
    CLOSE_REASONS,
    DEFAULT_FETCH_LIMIT,
    DETERMINATIONS,
    MAX_BLOB,
    MAX_EMAIL,
    MAX_FETCH_LIMIT,
    MAX_FILTER_VALUES,
    MAX_IDS,
    MAX_MARK_IDS,
    MAX_TENANT,
    MAX_TEXT,
    MAX_UPDATE_IDS,
    MAX_URL,
    RESOLUTION_STATUSES,
    SCHEMA_BY_ACTION,
    SEVERITIES,
    UPDATE_STATUSES,
    fields,
)
from shared.outbound.addresses import is_public
from shared.settings import is_loopback_host
from shared.timeparse import API_DURATION, epoch_ms, iso

# Limits, enums and actions live with the request schema (described once) and are re-exported for the actions.
__all__ = [
    "ACTIONS",
    "ACTION_CLOSE",
    "ACTION_DISCOVERY_UPLOAD",
    "ACTION_FETCH",
    "ACTION_MARK_READ",
    "ACTION_MARK_UNREAD",
    "ACTION_UPDATE",
    "API_WINDOW",
    "MAX_IDS",
    "MAX_MARK_IDS",
    "MDA_CLOSE_BY_CLASSIFICATION",
    "RESOLUTION_STATUSES",
    "SEVERITIES",
    "DuplicateKey",
    "JobSpec",
    "ValidationContext",
    "blob_reference_problem",
    "callback_url_problem",
    "unique_keys",
    "validate_job",
]

# The MDA API can only close: a resolved classification picks the close endpoint.
MDA_CLOSE_BY_CLASSIFICATION: dict[str, str] = {
    "truePositive": "true_positive",
    "falsePositive": "false_positive",
    "informationalExpectedActivity": "benign",
}

# The jobs API's window: RFC 3339 instants, `90m|24h|7d|2w` or ISO durations, at most 180 days (the service
# keeps alerts for 180 days), `until` not in the future.
API_WINDOW = WindowRules(
    instants="rfc3339",
    durations=API_DURATION,
    instant_hint="an ISO-8601 date-time string such as 2024-05-01T10:00:00Z",
    max_span=timedelta(days=180),
    future_skew=timedelta(minutes=5),
    until_first=True,
    bounds_us=DATETIME_BOUNDS_US,  # a lookback from early in year 1 would reach before it
    bounds_message="must lie between 0001-01-01 and 9999-12-31",
)
MAX_FIELD_ERRORS = 50

ALERT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
GRAPH_ALERT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:=-]{0,255}$")  # Graph ids: opaque, case kept
EMAIL = re.compile(
    r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$"
)

_WINDOW_FIELDS = fields("Window")
_FILTER_FIELDS = fields("AlertFilters")


class DuplicateKey(ValueError):
    """A JSON object names one key twice (JSON parsers disagree on which wins: refuse both)."""

    def __init__(self, key: str) -> None:
        self.path = _child("", key)
        super().__init__(f"duplicate key {self.path}")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for `json.loads` that refuses duplicate keys."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


@dataclass(frozen=True)
class JobSpec:
    """A validated job; `params` is JSON-ready and normalised (absolute window, lower-case ids)."""

    action: str
    params: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None
    callback_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": self.action, "params": self.params}
        if self.tenant:
            data["tenant"] = self.tenant
        if self.callback_url:
            data["callbackUrl"] = self.callback_url
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        return cls(
            action=str(data["action"]),
            params=dict(data.get("params") or {}),
            tenant=data.get("tenant") or None,
            callback_url=data.get("callbackUrl") or None,
        )


@dataclass(frozen=True)
class ValidationContext:
    """What validation needs from outside: the clock, the tenant profiles and two switches."""

    now: datetime
    tenants: Sequence[str] = ()
    allow_loopback: bool = False
    extra_sources: frozenset[str] = frozenset()
    storage_account: StorageAccount | None = None  # the app's blob endpoint, for blob URLs in discovery jobs
    blob_containers: frozenset[str] | None = None  # containers discovery jobs may read (None: not checked)
    graph_tenants: frozenset[str] = frozenset()  # profiles whose alerts live in Microsoft Graph
    default_tenant: str | None = None  # the profile a job without `tenant` runs on

    def is_graph(self, tenant: str | None) -> bool:
        return (tenant or self.default_tenant or "") in self.graph_tenants


class _Errors:
    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def add(self, path: str, message: str) -> None:
        if path not in self.items and len(self.items) < MAX_FIELD_ERRORS:
            self.items[path] = message


def validate_job(body: Any, context: ValidationContext) -> JobSpec:
    """Validate a parsed JSON body; raise `ValidationError(field_errors=...)` listing every problem found."""
    errors = _Errors()
    if not isinstance(body, dict):
        raise ValidationError("the job must be a JSON object", field_errors={"$": "must be a JSON object"})
    action = body.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        errors.add("action", f"must be one of {', '.join(ACTIONS)}")
        raise ValidationError("the job is invalid", field_errors=errors.items)
    allowed = fields(SCHEMA_BY_ACTION[action])
    for key in body:
        if key not in allowed:
            errors.add(_child("", key), f"is not a field of {action} jobs")

    tenant = _tenant(body.get("tenant"), context, errors)
    callback = _callback_url(body.get("callbackUrl"), context, errors)
    params: dict[str, Any]
    graph = context.is_graph(tenant)
    if action == ACTION_FETCH:
        params = _fetch(body, context, errors)
    elif action == ACTION_CLOSE:
        params = _close(body, errors, graph=graph)
    elif action in (ACTION_MARK_READ, ACTION_MARK_UNREAD):
        params = {"ids": _ids(body.get("ids"), "ids", errors, limit=MAX_MARK_IDS, graph=graph)}
    elif action == ACTION_UPDATE:
        params = _update(body, errors, graph=graph)
    else:
        params = _discovery(body, context, errors)
    if errors.items:
        raise ValidationError("the job is invalid", field_errors=errors.items)
    return JobSpec(action=action, params=params, tenant=tenant, callback_url=callback)


# -- common fields -------------------------------------------------------------------------------------------


def _child(parent: str, key: object) -> str:
    text = str(key)
    safe = text if re.fullmatch(r"[A-Za-z0-9_]{1,64}", text) else repr(text[:64])
    return f"{parent}.{safe}" if parent else safe


def _tenant(value: Any, context: ValidationContext, errors: _Errors) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TENANT:
        errors.add("tenant", f"must be a tenant profile name (1-{MAX_TENANT} chars)")
        return None
    if context.tenants and value not in context.tenants:
        errors.add("tenant", f"must be one of the configured tenant profiles: {', '.join(context.tenants)}")
        return None
    return value


def _callback_url(value: Any, context: ValidationContext, errors: _Errors) -> str | None:
    if value is None:
        return None
    problem = callback_url_problem(value, allow_loopback=context.allow_loopback)
    if problem:
        errors.add("callbackUrl", problem)
        return None
    return str(value)


def callback_url_problem(value: object, *, allow_loopback: bool) -> str | None:
    """Why a callback URL is refused (None: acceptable). Host names are re-checked at send time."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        return f"must be an https URL of at most {MAX_URL} chars"
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme != "https" or not host:
        return "must be an https:// URL with a host"
    if parts.username or parts.password or parts.fragment:
        return "must not carry user info or a fragment"
    if is_loopback_host(host):
        return None if allow_loopback else "must not point at a loopback host"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if "." not in host:
            return "must use a fully qualified host name"
        return None
    if not is_public(address):
        return "must not point at a private, link-local or reserved address (also in IPv6 forms)"
    return None


# -- alerts.fetch --------------------------------------------------------------------------------------------


def _fetch(body: Mapping[str, Any], context: ValidationContext, errors: _Errors) -> dict[str, Any]:
    since, until = _window(body.get("window"), context, errors)
    filters = _filters(body.get("filters"), errors)
    limit = body.get("limit", DEFAULT_FETCH_LIMIT)
    if not _is_int(limit) or not 1 <= limit <= MAX_FETCH_LIMIT:
        errors.add("limit", f"must be a whole number from 1 to {MAX_FETCH_LIMIT}")
        limit = DEFAULT_FETCH_LIMIT
    params: dict[str, Any] = {"filters": filters, "limit": limit}
    if since is not None and until is not None:
        params.update(
            {"since": iso(since), "until": iso(until), "sinceMs": epoch_ms(since), "untilMs": epoch_ms(until)}
        )
    return params


def _window(
    value: Any, context: ValidationContext, errors: _Errors
) -> tuple[datetime | None, datetime | None]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        errors.add("window", "must be an object with since/until or lookback")
        return None, None
    for key in value:
        if key not in _WINDOW_FIELDS:
            errors.add(_child("window", key), "is not a window field (since, until, lookback)")
    window = parse_window(value, API_WINDOW, now=context.now, prefix="window")
    for error in window.errors:
        errors.add(error.path, error.problem)
    if window.errors:
        return None, None
    return window.since, window.until


def _filters(value: Any, errors: _Errors) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add("filters", "must be an object")
        return {}
    result: dict[str, Any] = {}
    for key in value:
        if key not in _FILTER_FIELDS:
            errors.add(_child("filters", key), f"is not a filter ({', '.join(sorted(_FILTER_FIELDS))})")
    for name, table in (("severity", SEVERITIES), ("resolutionStatus", RESOLUTION_STATUSES)):
        if value.get(name) is not None:
            names = _enum_list(value[name], f"filters.{name}", table, errors)
            if names:
                result[name] = names
    for name in ("read", "open"):
        if value.get(name) is not None:
            if isinstance(value[name], bool):
                result[name] = value[name]
            else:
                errors.add(f"filters.{name}", "must be true or false")
    if value.get("policyIds") is not None:
        ids = _string_list(value["policyIds"], "filters.policyIds", errors, max_len=128)
        if ids:
            result["policyIds"] = ids
    if value.get("serviceIds") is not None:
        services = _int_list(value["serviceIds"], "filters.serviceIds", errors)
        if services:
            result["serviceIds"] = services
    return result


def _enum_list(value: Any, path: str, table: Mapping[str, int], errors: _Errors) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > len(table):
        errors.add(path, f"must be a non-empty list of: {', '.join(table)}")
        return []
    out: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or item not in table:
            errors.add(f"{path}[{index}]", f"must be one of: {', '.join(table)}")
        elif item not in out:
            out.append(item)
    return out


def _string_list(value: Any, path: str, errors: _Errors, *, max_len: int) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > MAX_FILTER_VALUES:
        errors.add(path, f"must be a list of 1-{MAX_FILTER_VALUES} strings")
        return []
    out: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > max_len or not item.isprintable():
            errors.add(f"{path}[{index}]", f"must be a printable string of 1-{max_len} chars")
        elif item not in out:
            out.append(item)
    return out


def _int_list(value: Any, path: str, errors: _Errors) -> list[int]:
    if not isinstance(value, list) or not value or len(value) > MAX_FILTER_VALUES:
        errors.add(path, f"must be a list of 1-{MAX_FILTER_VALUES} whole numbers")
        return []
    out: list[int] = []
    for index, item in enumerate(value):
        if not _is_int(item) or not 0 <= item <= 2**31 - 1:
            errors.add(f"{path}[{index}]", "must be a whole number from 0 to 2147483647")
        elif item not in out:
            out.append(item)
    return out


# -- alerts.close / mark -------------------------------------------------------------------------------------


def _ids(value: Any, path: str, errors: _Errors, *, limit: int = MAX_IDS, graph: bool = False) -> list[str]:
    if not isinstance(value, list) or not value:
        errors.add(path, f"must be a non-empty list of alert ids (at most {limit})")
        return []
    if len(value) > limit:
        errors.add(path, f"must hold at most {limit} alert ids per job; split larger batches")
        return []
    out: dict[str, None] = {}
    for index, item in enumerate(value):
        if graph:
            if not isinstance(item, str) or not GRAPH_ALERT_ID.match(item):
                errors.add(f"{path}[{index}]", "must be a Microsoft Graph alert id (letters, digits, _.:=-)")
            else:
                out.setdefault(item, None)
        elif not isinstance(item, str) or not ALERT_ID.match(item):
            errors.add(f"{path}[{index}]", "must be an alert id (24 hexadecimal characters)")
        else:
            out.setdefault(item.lower(), None)
    return list(out)


def _close(body: Mapping[str, Any], errors: _Errors, *, graph: bool = False) -> dict[str, Any]:
    kind = body.get("kind")
    if not isinstance(kind, str) or kind not in CLOSE_KINDS:
        errors.add("kind", f"must be one of {', '.join(CLOSE_KINDS)}")
        kind = None
    params: dict[str, Any] = {"kind": kind, "ids": _ids(body.get("ids"), "ids", errors, graph=graph)}

    reason = body.get("reasonId")
    if reason is not None and kind is not None:
        valid = CLOSE_REASONS[kind]
        if not valid:
            errors.add("reasonId", "is not accepted when closing as true_positive")
        elif not _is_int(reason) or reason not in valid:
            listed = ", ".join(f"{k} ({v})" for k, v in valid.items())
            errors.add("reasonId", f"must be one of the {kind} reasons: {listed}")
        else:
            params["reasonId"] = reason

    _comment(body, params, errors)
    send_feedback = _flag(body.get("sendFeedback"), "sendFeedback", errors)
    allow_contact = _flag(body.get("allowContact"), "allowContact", errors)
    feedback = _text(body.get("feedbackText"), "feedbackText", MAX_TEXT, errors)
    email = _text(body.get("contactEmail"), "contactEmail", MAX_EMAIL, errors)
    if email is not None and not EMAIL.match(email):
        errors.add("contactEmail", "must be an email address")
    if not send_feedback:
        for name, present in (
            ("feedbackText", feedback),
            ("allowContact", allow_contact),
            ("contactEmail", email),
        ):
            if present:
                errors.add(name, "requires sendFeedback=true")
    if allow_contact and not email:
        errors.add("contactEmail", "is required when allowContact=true")
    if send_feedback:
        params["sendFeedback"] = True
        params["allowContact"] = allow_contact
        if feedback is not None:
            params["feedbackText"] = feedback
        if email is not None:
            params["contactEmail"] = email
    return params


# -- alerts.update -------------------------------------------------------------------------------------------


def _update(body: Mapping[str, Any], errors: _Errors, *, graph: bool) -> dict[str, Any]:
    """Graph tenants: any of status, classification, determination, assignedTo (and a comment). MDA tenants:
    only what a close can express - status `resolved` with a classification (and a comment)."""
    params: dict[str, Any] = {"ids": _ids(body.get("ids"), "ids", errors, limit=MAX_UPDATE_IDS, graph=graph)}
    for name, allowed in (
        ("status", UPDATE_STATUSES),
        ("classification", CLASSIFICATIONS),
        ("determination", DETERMINATIONS),
    ):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or value not in allowed:
            errors.add(name, f"must be one of {', '.join(allowed)}")
        else:
            params[name] = value
    if "assignedTo" in body:
        owner = body.get("assignedTo")
        if owner is not None and (not isinstance(owner, str) or len(owner) > MAX_EMAIL):
            errors.add("assignedTo", f"must be a user (up to {MAX_EMAIL} characters) or null")
        else:
            params["assignedTo"] = owner
    _comment(body, params, errors)
    if not any(k in params for k in ("status", "classification", "determination", "assignedTo", "comment")):
        errors.add(
            "status", "an update sets at least one of status, classification, determination, assignedTo"
        )
    if not graph:
        unsupported = (
            "is not supported by the Defender for Cloud Apps API (only closing is); use a Graph tenant"
        )
        for name in ("determination", "assignedTo"):
            if name in body:
                errors.add(name, unsupported)
        if params.get("status") not in (None, "resolved"):
            errors.add("status", "can only be resolved on the Defender for Cloud Apps API")
        if "status" in params or "classification" in params:
            if params.get("status") != "resolved":
                errors.add("status", "must be resolved when a classification is set (the MDA API closes)")
            if params.get("classification") not in MDA_CLOSE_BY_CLASSIFICATION:
                errors.add(
                    "classification",
                    "must be one of " + ", ".join(MDA_CLOSE_BY_CLASSIFICATION) + " to close on the MDA API",
                )
        elif "comment" in params:
            errors.add(
                "comment", "needs status resolved and a classification on the Defender for Cloud Apps API"
            )
    return params


def _comment(body: Mapping[str, Any], params: dict[str, Any], errors: _Errors) -> None:
    comment = _text(body.get("comment"), "comment", MAX_TEXT, errors)
    if comment is not None:
        params["comment"] = comment


def _text(value: Any, path: str, max_len: int, errors: _Errors) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        errors.add(path, f"must be a string of at most {max_len} chars")
        return None
    if any(not ch.isprintable() and ch not in "\n\r\t" for ch in value):
        errors.add(path, "must not contain control characters")
        return None
    return value


def _flag(value: Any, path: str, errors: _Errors) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        errors.add(path, "must be true or false")
        return False
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- discovery.upload ----------------------------------------------------------------------------------------


def _discovery(body: Mapping[str, Any], context: ValidationContext, errors: _Errors) -> dict[str, Any]:
    """Delegates to the discovery feature's own validators, so an accepted job never fails to parse later."""
    params: dict[str, Any] = {}
    blob = body.get("blob")
    problem = blob_reference_problem(blob, context)
    if problem:
        errors.add("blob", problem)
    else:
        params["blob"] = str(blob).strip()
    source = body.get("source")
    try:
        if isinstance(source, str) and source != source.strip():
            raise ValidationError("source must not have surrounding whitespace")
        params["source"] = validate_source(source, extra=context.extra_sources)
    except ValidationError as exc:
        errors.add("source", exc.reason)
    try:
        params["stream"] = validate_stream(body.get("stream"))
    except ValidationError as exc:
        errors.add("stream", exc.reason)
    params["snapshot"] = _flag(body.get("snapshot"), "snapshot", errors)
    return params


def blob_reference_problem(value: object, context: ValidationContext) -> str | None:
    """`<container>/<path>` or a URL of a blob in the app's own storage account; None when acceptable."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_BLOB:
        return f"must be <container>/<blob path> or a blob URL (1-{MAX_BLOB} chars)"
    if any(not ch.isprintable() for ch in value):
        return "must not contain control characters"
    if context.storage_account is not None or "://" not in value:
        account = context.storage_account or StorageAccount("", "https://unset.invalid/")
        try:
            parse_blob_ref(value, account, containers=context.blob_containers)
        except ValidationError as exc:
            return exc.reason
        return None
    return None  # a URL without the account at hand: checked against the storage account by the worker
