"""Settings owned by alert retrieval, validated here (shared/settings.py keeps only the common ones).

| Setting | Default | Meaning |
|---|---|---|
| MCAS_ALERTS_SCHEDULE | `0 * * * * *` | timer schedule (read by the binding as `%MCAS_ALERTS_SCHEDULE%`) |
| MCAS_ALERT_SINKS | (none) | comma list of `queue`, `blob`, `webhook`, `logs` |
| MCAS_ALERT_WEBHOOK_URL | - | https URL for the `webhook` sink (loopback only with MCAS_ALLOW_LOOPBACK) |
| MCAS_ALERT_WEBHOOK_SECRET_NAME | `mcas-alert-webhook-secret` | Key Vault secret with the `whsec_` key |
| MCAS_FIRST_FETCH_LOOKBACK | `24h` | window start on a tenant's first run |
| MCAS_ALERTS_MAX_PAGES_PER_RUN | `100` | catch-up cap per run and tenant (100 alerts/page) |
| MCAS_ALERTS_TIME_BUDGET_SECONDS | `480` | a run stops cleanly within this (functionTimeout 10 min) |
| MCAS_ALERTS_SETTLE_SECONDS | `60` | alerts newer than now minus this wait for the next run |
| MCAS_ALERTS_LEASE_SECONDS | `120` | how long a crashed run blocks the tenant's checkpoint |
| MCAS_LOGS_INGESTION_ENDPOINT | - | `logs` sink: the DCR's logs ingestion endpoint (or a DCE's), https |
| MCAS_LOGS_DCR_IMMUTABLE_ID | - | `logs` sink: the data collection rule's `dcr-...` immutable id |
| MCAS_LOGS_STREAM | `Custom-MDAAlerts_CL` | `logs` sink: the DCR's input stream |
| MCAS_LOGS_SCOPE | per cloud | `logs` sink: token scope (`https://monitor.azure.com/.default`, .us, .cn) |
| MCAS_LOGS_TENANT_PROFILE | first profile | `logs` sink: the profile whose app identity gets the token |
| MCAS_LOGS_CREDENTIAL | `app` | `logs` sink: `app` (that profile's app) or `managed_identity` (own MI) |
| MCAS_ALERT_SCHEMA_VERSION | `2` | record shape: 2 (source, version, triage state) or 1 (MDA only) |
| MCAS_GRAPH_OVERLAP_SECONDS | `300` | Graph pulls re-read this far behind the cursor (late-visible updates) |
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from shared.errors import ConfigurationError
from shared.settings import Settings, get_settings, is_loopback_host
from shared.timeparse import setting_seconds

SINK_NAMES = ("queue", "blob", "webhook", "logs")
DEFAULT_SCHEDULE = "0 * * * * *"
DEFAULT_WEBHOOK_SECRET_NAME = "mcas-alert-webhook-secret"  # noqa: S105 - a name, not a secret
DEFAULT_LOGS_STREAM = "Custom-MDAAlerts_CL"
DEFAULT_LOGS_SCOPE = "https://monitor.azure.com/.default"
LOGS_CREDENTIALS = ("app", "managed_identity")
_DCR_ID = re.compile(r"^dcr-[0-9a-fA-F]{32}$")
_STREAM = re.compile(r"^Custom-[A-Za-z0-9_-]{1,200}$")


def parse_sinks(raw: str | None) -> tuple[str, ...]:
    names = [n.strip().lower() for n in re.split(r"[,\s;]+", raw or "") if n.strip()]
    if names in (["none"], []):
        return ()
    unknown = [n for n in names if n not in SINK_NAMES]
    if unknown:
        raise ConfigurationError(
            "MCAS_ALERT_SINKS", f"unknown sink(s) {unknown}; use any of {', '.join(SINK_NAMES)}"
        )
    return tuple(dict.fromkeys(names))


def validate_webhook_url(value: str, *, allow_loopback: bool) -> str:
    from urllib.parse import urlsplit

    name = "MCAS_ALERT_WEBHOOK_URL"
    parts = urlsplit(value.strip())
    host = parts.hostname or ""
    if parts.scheme != "https" or not host:
        raise ConfigurationError(name, "must be an https:// URL")
    if parts.username or parts.password or parts.fragment:
        raise ConfigurationError(name, "must not carry user info or a fragment")
    if is_loopback_host(host) and not allow_loopback:
        raise ConfigurationError(name, "may point at a loopback host only with MCAS_ALLOW_LOOPBACK=true")
    return value.strip()


@dataclass(frozen=True)
class LogsConfig:
    """Where the `logs` sink writes: the Logs Ingestion endpoint, data collection rule and stream."""

    endpoint: str
    dcr_immutable_id: str
    stream: str
    scope: str
    tenant_profile: str | None
    credential: str = "app"  # "app": the profile's app registration; "managed_identity": the worker's own


def monitor_scope(endpoint: str, authority_host: str) -> str:
    """Token scope for Azure Monitor ingestion in the endpoint's cloud (US Government `.us`, China `.cn`)."""
    from urllib.parse import urlsplit

    hosts = (urlsplit(endpoint).hostname or "", urlsplit(authority_host).hostname or "")
    if any(h.endswith((".azure.us", ".microsoftonline.us", ".usgovcloudapi.net")) for h in hosts):
        return "https://monitor.azure.us/.default"
    if any(h.endswith((".azure.cn", ".chinacloudapi.cn")) for h in hosts):
        return "https://monitor.azure.cn/.default"
    return DEFAULT_LOGS_SCOPE


def logs_config(settings: Settings) -> LogsConfig | None:
    """The `logs` sink's settings, validated; None when no endpoint is configured."""
    from urllib.parse import urlsplit

    raw = (settings.get("MCAS_LOGS_INGESTION_ENDPOINT") or "").strip()
    if not raw:
        return None
    name = "MCAS_LOGS_INGESTION_ENDPOINT"
    parts = urlsplit(raw)
    host = parts.hostname or ""
    if parts.scheme != "https" or not host:
        raise ConfigurationError(name, "must be an https:// URL (the DCR's or DCE's logs ingestion endpoint)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigurationError(name, "must not carry user info, a query or a fragment")
    if is_loopback_host(host) and not settings.allow_loopback:
        raise ConfigurationError(name, "may point at a loopback host only with MCAS_ALLOW_LOOPBACK=true")
    dcr = (settings.get("MCAS_LOGS_DCR_IMMUTABLE_ID") or "").strip()
    if not _DCR_ID.match(dcr):
        raise ConfigurationError(
            "MCAS_LOGS_DCR_IMMUTABLE_ID",
            f"must be a data collection rule immutable id (dcr-<32 hex>), got {dcr!r}",
        )
    stream = (settings.get("MCAS_LOGS_STREAM") or DEFAULT_LOGS_STREAM).strip()
    if not _STREAM.match(stream):
        raise ConfigurationError(
            "MCAS_LOGS_STREAM", f"must name a custom stream (Custom-<name>), got {stream!r}"
        )
    scope = (settings.get("MCAS_LOGS_SCOPE") or "").strip() or monitor_scope(raw, settings.authority_host)
    if not scope.endswith("/.default"):
        raise ConfigurationError("MCAS_LOGS_SCOPE", f"must end in /.default, got {scope!r}")
    profile = (settings.get("MCAS_LOGS_TENANT_PROFILE") or "").strip() or None
    if profile is not None and profile not in {p.name for p in settings.tenants}:
        raise ConfigurationError("MCAS_LOGS_TENANT_PROFILE", f"names no tenant profile: {profile!r}")
    credential = (settings.get("MCAS_LOGS_CREDENTIAL") or "app").strip().lower()
    if credential not in LOGS_CREDENTIALS:
        raise ConfigurationError(
            "MCAS_LOGS_CREDENTIAL", f"must be app or managed_identity, got {credential!r}"
        )
    return LogsConfig(raw.rstrip("/"), dcr, stream, scope, profile, credential)


def _number(
    settings: Settings, name: str, default: str, *, integer: bool = False, minimum: float = 0
) -> float:
    raw = settings.get(name, default) or default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigurationError(
            name, f"must be a {'whole ' if integer else ''}number, got {raw!r}"
        ) from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigurationError(name, f"must be at least {minimum}, got {raw!r}")
    return value


@dataclass(frozen=True)
class AlertConfig:
    sinks: tuple[str, ...]
    webhook_url: str | None
    webhook_secret_name: str
    first_fetch_lookback_s: float
    max_pages_per_run: int
    time_budget_s: float
    settle_s: float
    lease_s: float
    logs: LogsConfig | None = None
    schema_version: int = 2
    graph_overlap_s: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> AlertConfig:
        settings = settings or get_settings()
        sinks = parse_sinks(settings.get("MCAS_ALERT_SINKS"))
        url = settings.get("MCAS_ALERT_WEBHOOK_URL")
        webhook_url = validate_webhook_url(url, allow_loopback=settings.allow_loopback) if url else None
        if "webhook" in sinks and not webhook_url:
            raise ConfigurationError(
                "MCAS_ALERT_WEBHOOK_URL", "is required when MCAS_ALERT_SINKS includes webhook"
            )
        logs = logs_config(settings)
        if "logs" in sinks and logs is None:
            raise ConfigurationError(
                "MCAS_LOGS_INGESTION_ENDPOINT", "is required when MCAS_ALERT_SINKS includes logs"
            )
        lookback = settings.get("MCAS_FIRST_FETCH_LOOKBACK", "24h") or "24h"
        return cls(
            sinks=sinks,
            webhook_url=webhook_url,
            webhook_secret_name=settings.get("MCAS_ALERT_WEBHOOK_SECRET_NAME", DEFAULT_WEBHOOK_SECRET_NAME)
            or DEFAULT_WEBHOOK_SECRET_NAME,
            first_fetch_lookback_s=setting_seconds(lookback, name="MCAS_FIRST_FETCH_LOOKBACK"),
            max_pages_per_run=int(
                _number(settings, "MCAS_ALERTS_MAX_PAGES_PER_RUN", "100", integer=True, minimum=1)
            ),
            time_budget_s=_number(settings, "MCAS_ALERTS_TIME_BUDGET_SECONDS", "480", minimum=5),
            settle_s=_number(settings, "MCAS_ALERTS_SETTLE_SECONDS", "60", minimum=0),
            lease_s=_number(settings, "MCAS_ALERTS_LEASE_SECONDS", "120", minimum=1),
            logs=logs,
            schema_version=_schema_version(settings.get("MCAS_ALERT_SCHEMA_VERSION")),
            graph_overlap_s=_number(settings, "MCAS_GRAPH_OVERLAP_SECONDS", "300", minimum=0),
        )


def _schema_version(raw: str | None) -> int:
    text = (raw or "2").strip()
    if text not in ("1", "2"):
        raise ConfigurationError("MCAS_ALERT_SCHEMA_VERSION", f"must be 1 or 2, got {raw!r}")
    return int(text)
