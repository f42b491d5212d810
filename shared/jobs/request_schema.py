"""The job request body, described once: JSON Schema (OpenAPI 3.0 dialect) built from the limits and enums.

`validate_job` (shared/jobs/schema.py) takes its field sets, limits and enums from here and adds the rules
a schema cannot say (reasonId per close kind, feedback fields, MDA versus Graph tenants, the window's clock
rules, private and loopback callback hosts); the OpenAPI document (shared/jobs/openapi.py) publishes `SCHEMAS`
as its request-body components unchanged. References point at `#/components/schemas/<name>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.alerts import model as alert_model

ACTION_FETCH = "alerts.fetch"
ACTION_CLOSE = "alerts.close"
ACTION_MARK_READ = "alerts.mark_read"
ACTION_MARK_UNREAD = "alerts.mark_unread"
ACTION_DISCOVERY_UPLOAD = "discovery.upload"
ACTION_UPDATE = "alerts.update"
ACTIONS: tuple[str, ...] = (
    ACTION_FETCH,
    ACTION_CLOSE,
    ACTION_MARK_READ,
    ACTION_MARK_UNREAD,
    ACTION_DISCOVERY_UPLOAD,
    ACTION_UPDATE,
)
# alerts.update: Microsoft Graph's values (https://learn.microsoft.com/graph/api/resources/security-alert);
# determinations in the spelling of Graph's service metadata.
UPDATE_STATUSES: tuple[str, ...] = ("new", "inProgress", "resolved")
CLASSIFICATIONS: tuple[str, ...] = (
    "unknown",
    "falsePositive",
    "truePositive",
    "informationalExpectedActivity",
)
DETERMINATIONS: tuple[str, ...] = (
    "unknown",
    "apt",
    "malware",
    "securityPersonnel",
    "securityTesting",
    "unwantedSoftware",
    "other",
    "multiStagedAttack",
    "compromisedAccount",
    "phishing",
    "maliciousUserActivity",
    "notMalicious",
    "notEnoughDataToValidate",
    "confirmedActivity",
    "lineOfBusinessApplication",
)

# The alert model owns the enums and close reasons; the jobs API names values by these tables.
CLOSE_KINDS: tuple[str, ...] = alert_model.CLOSE_KINDS
CLOSE_REASONS: Mapping[str, Mapping[int, str]] = alert_model.CLOSE_REASONS
SEVERITIES: Mapping[str, int] = alert_model.SEVERITY_BY_NAME
RESOLUTION_STATUSES: Mapping[str, int] = alert_model.RESOLUTION_STATUS_BY_NAME

MAX_UPDATE_IDS = 100  # Graph updates one alert per call
MAX_IDS = 500  # close: bulk calls of 100; also keeps a job's spec well inside one 64 KiB Table property
MAX_MARK_IDS = 100  # mark read/unread is one API call per alert under the tenant's 30 requests/minute
MAX_TEXT = 1000
MAX_EMAIL = 254
MAX_URL = 2048
MAX_BLOB = 1024
MAX_TENANT = 64
MAX_FILTER_VALUES = 100
MAX_FETCH_LIMIT = 1000
DEFAULT_FETCH_LIMIT = 100

REF = "#/components/schemas/"
# A superset of what `callback_url_problem` accepts: https (any case) and a host that is dotted (a fully
# qualified name or an IPv4 address) or a bracketed IPv6 address.
CALLBACK_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]://[^/?#\s]*[.\[]\S*$"
# A superset of the jobs API's duration grammar (shared/timeparse.py API_DURATION).
LOOKBACK_PATTERN = r"^(\d{1,7}[smhdwSMHDW]|[Pp]\S*)$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"{REF}{name}"}


_COMMON_PROPERTIES: dict[str, Any] = {
    "tenant": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TENANT,
        "description": "Tenant profile name (MSSP setups); default: the first profile.",
    },
    "callbackUrl": {
        "type": "string",
        "pattern": CALLBACK_URL_PATTERN,
        "maxLength": MAX_URL,
        "description": "https URL that receives the finished job, signed per Standard Webhooks "
        "(webhook-id `job_<jobId>`). The host must be a fully qualified name or a public IP address: "
        "private, link-local, reserved and loopback addresses (also in IPv6 forms) are refused, and so are "
        "user info and fragments; host names are checked again when the callback is sent.",
    },
}


def _ids(limit: int) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": limit,
        "items": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:=-]{0,255}$"},
        "description": "Alert ids: the MDA API's 24-hex `_id` on tenants whose alert source is `mda`, "
        "Microsoft Graph alert ids on `graph` tenants; duplicates are ignored.",
    }


def _action(*names: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(names)}


def _reasons() -> str:
    parts = []
    for kind, reasons in CLOSE_REASONS.items():
        listed = ", ".join(f"{k} = {v}" for k, v in reasons.items()) or "none (omit reasonId)"
        parts.append(f"{kind}: {listed}")
    return "Documented reason per kind - " + "; ".join(parts) + "."


_TEXT: dict[str, Any] = {"type": "string", "maxLength": MAX_TEXT}

SCHEMAS: dict[str, Any] = {
    "Window": {
        "type": "object",
        "additionalProperties": False,
        "description": "Give `since` or `lookback` (default lookback 24h), not both; `until` defaults to now "
        "and must not be in the future. At most 180 days, `since` before `until`. Fixed when the job is "
        "accepted.",
        "properties": {
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
            "lookback": {
                "type": "string",
                "pattern": LOOKBACK_PATTERN,
                "description": "e.g. 90m, 24h, 7d or ISO-8601 PT24H",
            },
        },
        "not": {"required": ["since", "lookback"]},
    },
    "AlertFilters": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "severity": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": list(SEVERITIES)},
            },
            "resolutionStatus": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": list(RESOLUTION_STATUSES)},
            },
            "read": {"type": "boolean"},
            "open": {"type": "boolean"},
            "policyIds": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_FILTER_VALUES,
                "items": {"type": "string", "minLength": 1, "maxLength": 128},
            },
            "serviceIds": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_FILTER_VALUES,
                "items": {"type": "integer", "minimum": 0, "maximum": 2147483647},
            },
        },
    },
    "FetchJob": {
        "type": "object",
        "additionalProperties": False,
        "required": ["action"],
        "properties": {
            "action": _action(ACTION_FETCH),
            "window": ref("Window"),
            "filters": ref("AlertFilters"),
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_FETCH_LIMIT,
                "default": DEFAULT_FETCH_LIMIT,
            },
            **_COMMON_PROPERTIES,
        },
    },
    "CloseJob": {
        "type": "object",
        "additionalProperties": False,
        "required": ["action", "kind", "ids"],
        "properties": {
            "action": _action(ACTION_CLOSE),
            "kind": {"type": "string", "enum": list(CLOSE_KINDS)},
            "ids": _ids(MAX_IDS),
            "reasonId": {"type": "integer", "description": _reasons()},
            "comment": _TEXT,
            "sendFeedback": {"type": "boolean", "default": False},
            "feedbackText": {**_TEXT, "description": "Requires sendFeedback=true."},
            "allowContact": {
                "type": "boolean",
                "default": False,
                "description": "Requires sendFeedback.",
            },
            "contactEmail": {
                "type": "string",
                "maxLength": MAX_EMAIL,
                "description": "An email address; required when allowContact=true.",
            },
            **_COMMON_PROPERTIES,
        },
    },
    "MarkJob": {
        "type": "object",
        "additionalProperties": False,
        "required": ["action", "ids"],
        "properties": {
            "action": _action(ACTION_MARK_READ, ACTION_MARK_UNREAD),
            "ids": _ids(MAX_MARK_IDS),
            **_COMMON_PROPERTIES,
        },
    },
    "DiscoveryUploadJob": {
        "type": "object",
        "additionalProperties": False,
        "required": ["action", "blob", "source", "stream"],
        "description": "Application context only (signed requests or app tokens).",
        "properties": {
            "action": _action(ACTION_DISCOVERY_UPLOAD),
            "blob": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_BLOB,
                "description": "<container>/<blob name>, or the URL of a blob in the app's own account.",
            },
            "source": {
                "type": "string",
                "pattern": "^[A-Za-z][A-Za-z0-9_]{1,63}$",
                "description": "A documented Cloud Discovery source id, e.g. PALO_ALTO.",
            },
            "stream": {"type": "string", "minLength": 1, "maxLength": 256},
            "snapshot": {"type": "boolean", "default": False},
            **_COMMON_PROPERTIES,
        },
    },
    "UpdateJob": {
        "type": "object",
        "additionalProperties": False,
        "required": ["action", "ids"],
        "description": "Sets the triage state. Graph tenants: any of the fields. MDA tenants: only "
        "status resolved with a classification (truePositive, falsePositive or "
        "informationalExpectedActivity pick the close endpoint) and a comment; determination and "
        "assignedTo are field errors there.",
        "properties": {
            "action": _action(ACTION_UPDATE),
            "ids": _ids(MAX_UPDATE_IDS),
            "status": {"type": "string", "enum": list(UPDATE_STATUSES)},
            "classification": {"type": "string", "enum": list(CLASSIFICATIONS)},
            "determination": {"type": "string", "enum": list(DETERMINATIONS)},
            "assignedTo": {"type": "string", "maxLength": MAX_EMAIL, "nullable": True},
            "comment": _TEXT,
            **_COMMON_PROPERTIES,
        },
    },
}

# Which schema describes each action's body (the request's discriminator).
SCHEMA_BY_ACTION: dict[str, str] = {
    ACTION_FETCH: "FetchJob",
    ACTION_CLOSE: "CloseJob",
    ACTION_MARK_READ: "MarkJob",
    ACTION_MARK_UNREAD: "MarkJob",
    ACTION_DISCOVERY_UPLOAD: "DiscoveryUploadJob",
    ACTION_UPDATE: "UpdateJob",
}
SCHEMAS["JobRequest"] = {
    "oneOf": [ref(name) for name in dict.fromkeys(SCHEMA_BY_ACTION.values())],
    "discriminator": {
        "propertyName": "action",
        "mapping": {action: f"{REF}{name}" for action, name in SCHEMA_BY_ACTION.items()},
    },
}


def fields(name: str) -> frozenset[str]:
    """The properties schema `name` allows (everything else is an unknown field)."""
    return frozenset(SCHEMAS[name]["properties"])
