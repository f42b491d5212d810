"""Settings owned by alert retrieval, validated here (shared/settings.py keeps only the common ones).

| Setting | Default | Meaning |
|---|---|---|
| MCAS_ALERTS_SCHEDULE | `0 */5 * * * *` | timer schedule (read by the binding as `%MCAS_ALERTS_SCHEDULE%`) |
| MCAS_ALERT_SINKS | (none) | comma list of `queue`, `blob`, `webhook` |
| MCAS_ALERT_WEBHOOK_URL | - | https URL for the `webhook` sink (loopback only with MCAS_ALLOW_LOOPBACK) |
| MCAS_ALERT_WEBHOOK_SECRET_NAME | `mcas-alert-webhook-secret` | Key Vault secret with the `whsec_` key |
| MCAS_FIRST_FETCH_LOOKBACK | `24h` | window start on a tenant's first run |
| MCAS_ALERTS_MAX_PAGES_PER_RUN | `100` | catch-up cap per run and tenant (100 alerts/page) |
| MCAS_ALERTS_TIME_BUDGET_SECONDS | `480` | a run stops cleanly within this (functionTimeout 10 min) |
| MCAS_ALERTS_SETTLE_SECONDS | `60` | alerts newer than now minus this wait for the next run |
| MCAS_ALERTS_LEASE_SECONDS | `120` | how long a crashed run blocks the tenant's checkpoint |
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from shared.errors import ConfigurationError
from shared.settings import Settings, get_settings, is_loopback_host

SINK_NAMES = ("queue", "blob", "webhook")
DEFAULT_SCHEDULE = "0 */5 * * * *"
DEFAULT_WEBHOOK_SECRET_NAME = "mcas-alert-webhook-secret"  # noqa: S105 - a name, not a secret
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, name: str = "duration") -> float:
    """`90m`, `24h`, `7d`, `45s`, `2w` or plain seconds -> seconds (> 0)."""
    match = _DURATION.match(text or "")
    if not match:
        raise ConfigurationError(name, f"must be a duration such as 90m, 24h or 7d, got {text!r}")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2).lower()]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(name, f"must be longer than zero, got {text!r}")
    return seconds


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
        lookback = settings.get("MCAS_FIRST_FETCH_LOOKBACK", "24h") or "24h"
        return cls(
            sinks=sinks,
            webhook_url=webhook_url,
            webhook_secret_name=settings.get("MCAS_ALERT_WEBHOOK_SECRET_NAME", DEFAULT_WEBHOOK_SECRET_NAME)
            or DEFAULT_WEBHOOK_SECRET_NAME,
            first_fetch_lookback_s=parse_duration(lookback, name="MCAS_FIRST_FETCH_LOOKBACK"),
            max_pages_per_run=int(
                _number(settings, "MCAS_ALERTS_MAX_PAGES_PER_RUN", "100", integer=True, minimum=1)
            ),
            time_budget_s=_number(settings, "MCAS_ALERTS_TIME_BUDGET_SECONDS", "480", minimum=5),
            settle_s=_number(settings, "MCAS_ALERTS_SETTLE_SECONDS", "60", minimum=0),
            lease_s=_number(settings, "MCAS_ALERTS_LEASE_SECONDS", "120", minimum=1),
        )
