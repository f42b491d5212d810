"""The row the `logs` sink writes to the `MDAAlerts_CL` table: a flat, typed projection of an alert record.

Pure (no I/O). Column names and types come from `logs_table.json`, the file the infrastructure also uses for
the table and the data collection rule's stream declaration, so the three cannot drift apart. Reserved column
names (`id`, `Title`, `TenantId`, ...) are mapped to `AlertId`, `AlertTitle`, `MdaTenant`
(https://learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview).

Records of schema version 1 (MDA only, no version or update time) project as version 1, updated = created.
Every column value is kept at most `FIELD_MAX_BYTES`: the service cuts longer values silently, which would
leave a `dynamic` column as broken JSON; a raw record over the limit becomes a stub with its size and hash
(the essentials have their own columns), long entity lists keep their leading entities.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from shared.timeparse import parse_instant

# "Fields over 64 KB are truncated" (Logs Ingestion limits); 64,000 bytes stays below either reading of KB.
FIELD_MAX_BYTES = 64_000
TABLE_FILE = Path(__file__).with_name("logs_table.json")
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
_MDA_SERVICE_SOURCE = "microsoftDefenderForCloudApps"
# v1 records carry MDA's resolution status; the terminal ones are classifications in Graph's terms.
_V1_CLASSIFICATION = {
    "false_positive": "falsePositive",
    "true_positive": "truePositive",
    "benign": "informationalExpectedActivity",
}


@cache
def table_columns() -> list[dict[str, str]]:
    """The table's columns as declared: `[{"name", "type"}, ...]`."""
    columns: list[dict[str, str]] = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    return columns


@cache
def column_types() -> dict[str, str]:
    """Column name -> Log Analytics type, in table order."""
    return {c["name"]: c["type"] for c in table_columns()}


def encode(row: Any) -> bytes:
    return _ENCODER.encode(row).encode("utf-8")


def _iso(value: Any) -> str | None:
    """ISO-8601 UTC with milliseconds and `Z` from epoch ms or an ISO string; None if unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int | float):
            moment = dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
        elif isinstance(value, str) and value:
            moment = parse_instant(value, "iso8601")
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if len(text) * 4 <= FIELD_MAX_BYTES:  # a character is at most 4 UTF-8 bytes: usually no encoding needed
        return text
    return text.encode("utf-8")[:FIELD_MAX_BYTES].decode("utf-8", errors="ignore")


def _version(alert: Mapping[str, Any]) -> int:
    value = alert.get("version")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 1


def _raw_column(raw: Any) -> Any:
    size = len(encode(raw)) if raw is not None else 0
    if size <= FIELD_MAX_BYTES:
        return raw
    return {
        "_truncated": True,
        "bytes": size,
        "sha256": hashlib.sha256(encode(raw)).hexdigest(),
        "keys": sorted(raw)[:200] if isinstance(raw, dict) else None,
    }


def _entities_column(entities: Any) -> list[Any]:
    if not isinstance(entities, list):
        return []
    if len(encode(entities)) <= FIELD_MAX_BYTES:
        return entities
    kept: list[Any] = []
    size = 2
    for entity in entities:
        size += len(encode(entity)) + 1
        if size > FIELD_MAX_BYTES:
            break
        kept.append(entity)
    return kept


def _classification(alert: Mapping[str, Any], v1: bool) -> str:
    if not v1:
        return _text(alert.get("classification"))
    return _V1_CLASSIFICATION.get(str(alert.get("resolution_status")), "")


def project(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The table row for one normalised alert (schema v1 or v2)."""
    schema_version = alert.get("schema_version")
    v1 = not isinstance(schema_version, int) or schema_version < 2
    raw = alert.get("raw")
    raw_map: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    source = _text(alert.get("source")) or "mda"
    created = _iso(alert.get("timestamp")) or _iso(alert.get("timestamp_ms"))
    updated = (None if v1 else _iso(alert.get("updated"))) or created
    alert_id = _text(alert.get("id"))
    if source == "mda":
        mda_alert_id = alert_id
        service_source = _MDA_SERVICE_SOURCE
    else:
        mda_alert_id = _text(raw_map.get("providerAlertId"))
        service_source = _text(raw_map.get("serviceSource"))
    return {
        "TimeGenerated": updated,
        "AlertId": alert_id,
        "AlertVersion": _version(alert),
        "Source": source,
        "MdaTenant": _text(alert.get("tenant")),
        "AlertTitle": _text(alert.get("title")),
        "Severity": _text(alert.get("severity")),
        "Status": _text(alert.get("resolution_status") if v1 else alert.get("status")),
        "Classification": _classification(alert, v1),
        "Determination": "" if v1 else _text(alert.get("determination")),
        "AssignedTo": _text(alert.get("handled_by") if v1 else alert.get("assigned_to")),
        "Created": created,
        "Updated": updated,
        "PortalUrl": _text(alert.get("url") if v1 else alert.get("portal_url") or alert.get("url")),
        "ServiceSource": service_source,
        "MdaAlertId": mda_alert_id,
        "Entities": _entities_column(alert.get("entities")),
        "RawRecord": _raw_column(raw),
        "SchemaVersion": schema_version if isinstance(schema_version, int) else 1,
    }
