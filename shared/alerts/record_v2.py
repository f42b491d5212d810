"""Schema version 2 of the normalised alert record: one meaning whichever source an alert was read from.

Version 2 adds what a change feed needs: `source` (`mda` | `graph`), `version` (monotonic per alert: the
microseconds since the epoch of `updated`), `updated`, and the triage state in Microsoft Graph's vocabulary
(`status`, `classification`, `determination`, `assigned_to`), plus `portal_url`. Sinks deduplicate on
(`id`, `version`): every change of an alert is a new version, delivered once.

Mapping of the Defender for Cloud Apps API's `resolutionStatusValue` (Microsoft publishes no table; this
follows the labels: "benign true positive" is Graph's `informationalExpectedActivity`):
0 OPEN -> new / unknown; 5 TRUE_POSITIVE and legacy 2 RESOLVED -> resolved / truePositive;
4 BENIGN -> resolved / informationalExpectedActivity; 3 FALSE_POSITIVE and legacy 1 DISMISSED -> resolved /
falsePositive. The MDA API does not expose the determination or an assignee: `unknown` and null.
Graph values are kept as Graph sends them, unknown ones included (every Graph enum is open); a missing
value is `unknown`. https://learn.microsoft.com/graph/api/resources/security-alert
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any, Literal

from shared.alerts.model import (
    ENTITIES_SCHEMA,
    NULLABLE_STR,
    SEVERITY,
    AlertEntity,
    NormalizedAlertV2,
    _entity,
    _enum,
    _first,
    _opt_str,
    alert_id,
    alert_timestamp_ms,
    record_schema,
)
from shared.errors import ValidationError
from shared.timeparse import iso_from_ms, iso_utc_us, parse_iso_us

SCHEMA_VERSION_2: Literal[2] = 2
_HEX24 = re.compile(r"^[0-9a-fA-F]{24}$")

# MDA resolutionStatusValue -> (status, classification)
MDA_STATE: dict[int, tuple[str, str]] = {
    0: ("new", "unknown"),
    1: ("resolved", "falsePositive"),
    2: ("resolved", "truePositive"),
    3: ("resolved", "falsePositive"),
    4: ("resolved", "informationalExpectedActivity"),
    5: ("resolved", "truePositive"),
}

ALERT_SCHEMA_V2: dict[str, Any] = record_schema(
    SCHEMA_VERSION_2,
    "Normalised Defender for Cloud Apps alert, version 2 (either source)",
    NormalizedAlertV2,
    {
        "schema_version": {"const": SCHEMA_VERSION_2},
        "source": {"enum": ["mda", "graph"], "description": "where the record was read"},
        "id": {"type": "string", "description": "the source's own alert id (MDA `_id`, Graph `id`)"},
        "mda_id": {
            **NULLABLE_STR,
            "description": "the MDA `_id` (Graph: `providerAlertId` or `id` when 24 hex characters)",
        },
        "tenant": {"type": "string", "description": "tenant profile name"},
        "version": {
            "type": "integer",
            "description": "microseconds since the epoch of `updated`; grows with every change of the alert",
        },
        "updated": {"type": "string", "format": "date-time", "description": "last change, ISO-8601 UTC"},
        "updated_ms": {"type": "integer", "description": "`updated` in epoch milliseconds"},
        "timestamp": {"type": "string", "format": "date-time", "description": "creation, ISO-8601 UTC"},
        "timestamp_ms": {"type": "integer", "description": "creation, epoch milliseconds"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "severity": {"type": "string", "description": "low|medium|high|informational|unknown or a new value"},
        "status": {"type": "string", "description": "new|inProgress|resolved or a new value"},
        "classification": {
            "type": "string",
            "description": "unknown|falsePositive|truePositive|informationalExpectedActivity or a new value",
        },
        "determination": {"type": "string", "description": "Graph determination; unknown when not given"},
        "assigned_to": NULLABLE_STR,
        "resolved_time": {**NULLABLE_STR, "description": "ISO-8601 as the source sends it"},
        "portal_url": NULLABLE_STR,
        "entities": ENTITIES_SCHEMA,
        "raw": {"type": "object", "description": "the source's alert object, unchanged"},
    },
)


def _text(value: Any) -> str:
    return _opt_str(value) or ""


def _state(value: Any) -> str:
    """A Graph enum value as sent (open enum), `unknown` when missing."""
    if value is None or value == "":
        return "unknown"
    return value if isinstance(value, str) else str(value)


def mda_v2(raw: Mapping[str, Any], *, tenant: str) -> NormalizedAlertV2:
    """Version 2 of an MDA API alert. `updated` is its resolution time once closed, else its creation."""
    ts_ms = alert_timestamp_ms(raw)
    identifier = alert_id(raw)
    severity, _ = _enum(SEVERITY, _first(raw, "severityValue", "severity"))
    resolution = _first(raw, "resolutionStatusValue", "resolutionStatus")
    number = resolution if type(resolution) is int else None
    status, classification = (
        MDA_STATE.get(number, ("unknown", "unknown"))
        if number is not None
        else (
            f"unknown:{resolution}",
            "unknown",
        )
    )
    if number is not None and number not in MDA_STATE:
        status = f"unknown:{number}"
    updated_us = ts_ms * 1000
    resolved = _opt_str(raw.get("resolveTime"))
    if resolved and status == "resolved":
        # An odd resolveTime must not lose the alert; its creation time stands in.
        with contextlib.suppress(ValidationError):
            updated_us = max(updated_us, parse_iso_us(resolved, what=f"alert {identifier} resolveTime"))
    entities = raw.get("entities")
    return {
        "schema_version": SCHEMA_VERSION_2,
        "source": "mda",
        "id": identifier,
        "mda_id": identifier,
        "tenant": tenant,
        "version": updated_us,
        "updated": iso_utc_us(updated_us),
        "updated_ms": updated_us // 1000,
        "timestamp": iso_from_ms(ts_ms),
        "timestamp_ms": ts_ms,
        "title": _text(raw.get("title")),
        "description": _text(raw.get("description")),
        "severity": severity,
        "status": status,
        "classification": classification,
        "determination": "unknown",
        "assigned_to": None,
        "resolved_time": resolved if status == "resolved" else None,
        "portal_url": _opt_str(raw.get("URL") or raw.get("url")),
        "entities": [_entity(e) for e in entities] if type(entities) is list else [],
        "raw": raw if type(raw) is dict else dict(raw),
    }


def _mda_id(raw: Mapping[str, Any]) -> str | None:
    for key in ("providerAlertId", "id"):
        value = raw.get(key)
        if isinstance(value, str) and _HEX24.match(value):
            return value
    return None


_EVIDENCE_KIND = {
    "#microsoft.graph.security.userEvidence": "account",
    "#microsoft.graph.security.ipEvidence": "ip",
    "#microsoft.graph.security.cloudApplicationEvidence": "service",
    "#microsoft.graph.security.oauthApplicationEvidence": "oauthApplication",
    "#microsoft.graph.security.fileEvidence": "file",
    "#microsoft.graph.security.urlEvidence": "url",
    "#microsoft.graph.security.mailboxEvidence": "mailbox",
}


def _evidence(item: Any) -> AlertEntity:
    if not isinstance(item, Mapping):
        return {"type": None, "id": None, "label": None, "role": None, "email": None}
    odata = _opt_str(item.get("@odata.type"))
    kind = _EVIDENCE_KIND.get(odata or "", (odata or "").rsplit(".", 1)[-1] or None)
    found = item.get("userAccount")
    account: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    roles = item.get("roles")
    ident = (
        account.get("azureAdUserId")
        or item.get("ipAddress")
        or item.get("appId")
        or item.get("url")
        or item.get("primaryAddress")
    )
    label = (
        account.get("displayName")
        or item.get("displayName")
        or item.get("ipAddress")
        or item.get("url")
        or item.get("primaryAddress")
    )
    return {
        "type": kind,
        "id": _opt_str(ident),
        "label": _opt_str(label),
        "role": str(roles[0]) if isinstance(roles, list) and roles else None,
        "email": _opt_str(account.get("userPrincipalName")),
    }


def graph_v2(raw: Mapping[str, Any], *, tenant: str) -> NormalizedAlertV2:
    """Version 2 of a Graph `alert`; raises ValidationError without `id` or `lastUpdateDateTime`."""
    identifier = raw.get("id")
    if not isinstance(identifier, str) or not identifier:
        raise ValidationError("Graph alert without an id")
    updated_us = parse_iso_us(raw.get("lastUpdateDateTime"), what=f"alert {identifier} lastUpdateDateTime")
    created = raw.get("createdDateTime")
    created_us = parse_iso_us(created, what=f"alert {identifier} createdDateTime") if created else updated_us
    evidence = raw.get("evidence")
    return {
        "schema_version": SCHEMA_VERSION_2,
        "source": "graph",
        "id": identifier,
        "mda_id": _mda_id(raw),
        "tenant": tenant,
        "version": updated_us,
        "updated": iso_utc_us(updated_us),
        "updated_ms": updated_us // 1000,
        "timestamp": iso_from_ms(created_us // 1000),
        "timestamp_ms": created_us // 1000,
        "title": _text(raw.get("title")),
        "description": _text(raw.get("description")),
        "severity": _state(raw.get("severity")),
        "status": _state(raw.get("status")),
        "classification": _state(raw.get("classification")),
        "determination": _state(raw.get("determination")),
        "assigned_to": _opt_str(raw.get("assignedTo")),
        "resolved_time": _opt_str(raw.get("resolvedDateTime")),
        "portal_url": _opt_str(raw.get("alertWebUrl")),
        "entities": [_evidence(e) for e in evidence] if isinstance(evidence, list) else [],
        "raw": raw if type(raw) is dict else dict(raw),
    }
