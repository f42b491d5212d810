"""The normalised alert record every sink receives, and its JSON schema. Pure: no I/O, no heavy imports.

The API's enums drift (severity 3 and resolution statuses 3-5 are recent; older clients mis-map them; https://learn.microsoft.com/defender-cloud-apps/api-alerts),
so mapping follows the documented tables and an unknown value is kept as `unknown:<value>` - never a crash,
never silently mapped to something else. The API's object travels unchanged in `raw`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from shared.errors import ValidationError
from shared.timeparse import iso_from_ms

SCHEMA_VERSION = 1

SEVERITY: dict[int, str] = {0: "low", 1: "medium", 2: "high", 3: "informational"}
RESOLUTION_STATUS: dict[int, str] = {
    0: "open",
    1: "dismissed",
    2: "resolved",
    3: "false_positive",
    4: "benign",
    5: "true_positive",
}
STATUS: dict[int, str] = {0: "unread", 1: "read", 2: "archived"}
# The same tables by name, for filters and jobs that name values (`{"low": 0, ...}`).
SEVERITY_BY_NAME: dict[str, int] = {name: value for value, name in SEVERITY.items()}
RESOLUTION_STATUS_BY_NAME: dict[str, int] = {name: value for value, name in RESOLUTION_STATUS.items()}

CloseKind = Literal["benign", "false_positive", "true_positive"]
CLOSE_KINDS: tuple[CloseKind, ...] = ("benign", "false_positive", "true_positive")
# The reasonId values each close endpoint documents (https://learn.microsoft.com/defender-cloud-apps/api-alerts);
# a true-positive close takes none.
CLOSE_REASONS: dict[str, dict[int, str]] = {
    "benign": {
        2: "Actual severity is lower",
        4: "Other",
        5: "Confirmed with end user",
        6: "Triggered by test",
    },
    "false_positive": {
        0: "Not of interest",
        1: "Too many similar alerts",
        3: "Alert is not accurate",
        4: "Other",
    },
    "true_positive": {},
}
STORIES: dict[int, str] = {
    0: "threat_detection",
    1: "privileged_account_monitoring",
    2: "compliance",
    3: "dlp",
    4: "discovery",
    5: "sharing_control",
    7: "access_control",
    8: "configuration_monitoring",
}
INTENT: dict[int, str] = {
    0: "unknown",
    1: "preattack",
    2: "initial_access",
    3: "persistence",
    4: "privilege_escalation",
    5: "defense_evasion",
    6: "credential_access",
    7: "discovery",
    8: "lateral_movement",
    9: "execution",
    10: "collection",
    11: "exfiltration",
    12: "command_and_control",
    13: "impact",
}


class AlertEntity(TypedDict):
    type: str | None
    id: str | None
    label: str | None
    role: str | None
    email: str | None


class NormalizedAlertV1(TypedDict):
    schema_version: int
    id: str
    tenant: str
    timestamp: str
    timestamp_ms: int
    title: str
    description: str
    severity: str
    severity_value: int | None
    resolution_status: str
    resolution_status_value: int | None
    status: str
    status_value: int | None
    url: str | None
    entities: list[AlertEntity]
    stories: list[str]
    intent: list[str]
    threat_score: int | None
    is_preview: bool
    resolve_time: str | None
    handled_by: str | None
    comment: str | None
    raw: dict[str, Any]


class NormalizedAlertV2(TypedDict):
    """Schema version 2 (shared/alerts/record_v2.py builds it and holds its JSON schema)."""

    schema_version: Literal[2]
    source: str
    id: str
    mda_id: str | None
    tenant: str
    version: int
    updated: str
    updated_ms: int
    timestamp: str
    timestamp_ms: int
    title: str
    description: str
    severity: str
    status: str
    classification: str
    determination: str
    assigned_to: str | None
    resolved_time: str | None
    portal_url: str | None
    entities: list[AlertEntity]
    raw: dict[str, Any]


NormalizedAlert = NormalizedAlertV1 | NormalizedAlertV2

NULLABLE_STR: dict[str, Any] = {"type": ["string", "null"]}
_NULLABLE_INT: dict[str, Any] = {"type": ["integer", "null"]}

ENTITIES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": list(AlertEntity.__annotations__),
        "properties": dict.fromkeys(AlertEntity.__annotations__, NULLABLE_STR),
    },
}


def record_schema(version: int, title: str, record: type, properties: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema (2020-12) of a normalised alert record: every field of `record`, and only those."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:mcas-functions:normalized-alert:{version}",
        "title": title,
        "type": "object",
        "additionalProperties": False,
        "required": list(record.__annotations__),
        "properties": properties,
    }


ALERT_SCHEMA: dict[str, Any] = record_schema(
    1,
    "Normalised Defender for Cloud Apps alert",
    NormalizedAlertV1,
    {
        "schema_version": {"const": SCHEMA_VERSION},
        "id": {"type": "string", "description": "the API's `_id` (24 hex chars); the dedupe key"},
        "tenant": {
            "type": "string",
            "description": "tenant profile name (MCAS_TENANT_NAME / MCAS_TENANT_PROFILES)",
        },
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "description": "creation time, ISO-8601 UTC, ms",
        },
        "timestamp_ms": {"type": "integer", "description": "creation time, epoch milliseconds"},
        "title": {"type": "string"},
        "description": {"type": "string", "description": "may contain HTML, as the API sends it"},
        "severity": {"type": "string", "description": "low|medium|high|informational, else unknown:<value>"},
        "severity_value": _NULLABLE_INT,
        "resolution_status": {
            "type": "string",
            "description": "open|dismissed|resolved|false_positive|benign|true_positive|unknown:<value>",
        },
        "resolution_status_value": _NULLABLE_INT,
        "status": {"type": "string", "description": "unread|read|archived, else unknown:<value>"},
        "status_value": _NULLABLE_INT,
        "url": {**NULLABLE_STR, "description": "portal link (`URL`)"},
        "entities": ENTITIES_SCHEMA,
        "stories": {"type": "array", "items": {"type": "string"}},
        "intent": {"type": "array", "items": {"type": "string"}, "description": "MITRE tactics"},
        "threat_score": _NULLABLE_INT,
        "is_preview": {"type": "boolean"},
        "resolve_time": {**NULLABLE_STR, "description": "ISO-8601 as the API sends it"},
        "handled_by": NULLABLE_STR,
        "comment": NULLABLE_STR,
        "raw": {"type": "object", "description": "the API's alert object, unchanged"},
    },
)


def _enum(table: Mapping[int, str], value: Any) -> tuple[str, int | None]:
    """(name, number). Unknown or odd values are kept visibly instead of failing or being guessed."""
    if type(value) is int:  # the common case first: this runs several times per alert
        name = table.get(value)
        return (name, value) if name is not None else (f"unknown:{value}", value)
    if value is None:
        return "unknown", None
    if isinstance(value, bool):
        return f"unknown:{value}", None
    if isinstance(value, int):
        return table.get(value, f"unknown:{value}"), value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return _enum(table, int(text))
        lowered = text.lower()
        for number, name in table.items():
            if name == lowered:
                return name, number
        return f"unknown:{text}", None
    return f"unknown:{value}", None


def _names(table: Mapping[int, str], values: Any) -> list[str]:
    if not isinstance(values, list):
        return []
    return [table.get(v) or _enum(table, v)[0] if type(v) is int else _enum(table, v)[0] for v in values]


def _opt_str(value: Any) -> str | None:
    if value is None or type(value) is str:
        text: str | None = value
        return text
    return str(value)


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def alert_id(raw: Mapping[str, Any]) -> str:
    value = raw.get("_id")
    if not isinstance(value, str) or not value:
        raise ValidationError("alert without an _id")
    return value


def alert_timestamp_ms(raw: Mapping[str, Any]) -> int:
    value = raw.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"alert {raw.get('_id')!r} has no epoch-ms timestamp")
    return int(value)


def _entity(item: Any) -> AlertEntity:
    # Hot path (about five entities per alert): plain dict lookups, no ABC isinstance checks.
    if type(item) is not dict:
        item = dict(item) if isinstance(item, Mapping) else {}
    get = item.get
    kind, ident, label, role = get("type"), get("id"), get("label"), get("entityRole")
    email = get("pa") or get("em")
    return {
        "type": kind if kind is None or type(kind) is str else str(kind),
        "id": ident if ident is None or type(ident) is str else str(ident),
        "label": label if label is None or type(label) is str else str(label),
        "role": role if role is None or type(role) is str else str(role),
        "email": email if email is None or type(email) is str else str(email),
    }


def _first(raw: Mapping[str, Any], key: str, fallback: str) -> Any:
    value = raw.get(key)
    return raw.get(fallback) if value is None else value


def normalize(raw: Mapping[str, Any], *, tenant: str) -> NormalizedAlertV1:
    """The normalised record (schema 1) for one API alert object. Raises ValidationError only without
    `_id`/timestamp. Schema 2: shared/alerts/record_v2.py.

    Hot path (100 alerts a page): a dict literal and direct lookups; no copies of `raw`.
    """
    ts_ms = alert_timestamp_ms(raw)
    severity, severity_value = _enum(SEVERITY, _first(raw, "severityValue", "severity"))
    resolution, resolution_value = _enum(
        RESOLUTION_STATUS, _first(raw, "resolutionStatusValue", "resolutionStatus")
    )
    status, status_value = _enum(STATUS, _first(raw, "statusValue", "status"))
    entities = raw.get("entities")
    alert: NormalizedAlertV1 = {
        "schema_version": SCHEMA_VERSION,
        "id": alert_id(raw),
        "tenant": tenant,
        "timestamp": iso_from_ms(ts_ms),
        "timestamp_ms": ts_ms,
        "title": _opt_str(raw.get("title")) or "",
        "description": _opt_str(raw.get("description")) or "",
        "severity": severity,
        "severity_value": severity_value,
        "resolution_status": resolution,
        "resolution_status_value": resolution_value,
        "status": status,
        "status_value": status_value,
        "url": _opt_str(raw.get("URL") or raw.get("url")),
        "entities": [_entity(e) for e in entities] if type(entities) is list else [],
        "stories": _names(STORIES, raw.get("stories")),
        "intent": _names(INTENT, raw.get("intent")),
        "threat_score": _opt_int(raw.get("threatScore")),
        "is_preview": bool(raw.get("isPreview", False)),
        "resolve_time": _opt_str(raw.get("resolveTime")),
        "handled_by": _opt_str(raw.get("handledByUser")),
        "comment": _opt_str(raw.get("comment")),
        "raw": raw if type(raw) is dict else dict(raw),  # not copied: nothing here mutates it
    }
    return alert
