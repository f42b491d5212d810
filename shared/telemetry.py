"""Metrics and traces through OpenTelemetry, exported to Application Insights only when it is configured.

- `configure_telemetry()` (called once at app start by `configure_logging()`): when
  `APPLICATIONINSIGHTS_CONNECTION_STRING` is set, imports `azure-monitor-opentelemetry` and configures it;
  otherwise imports nothing. The distro costs ~0.3 s of imports; cold starts without telemetry never pay it.
- `metrics.add("alerts_pulled", n, tenant=...)` / `metrics.record("pull_lag", seconds, tenant=...)`: a small
  facade over the metrics API. Until a meter provider is bound it is a dictionary lookup and a return, so
  feature code calls it unconditionally.

Logs are NOT exported by the distro by default: the Functions host already ships the worker's log records to
Application Insights, and exporting them here as well would store every line twice. Set
`MCAS_TELEMETRY_EXPORT_LOGS=true` only with host.json `"telemetryMode": "OpenTelemetry"`, where the host stops
doing so. Span URLs are redacted (SAS `sig=`, presigned signatures) before export.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

CONNECTION_STRING_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
EXPORT_LOGS_SETTING = "MCAS_TELEMETRY_EXPORT_LOGS"
METER_NAME = "mcas"
_TRUE = ("1", "true", "yes", "on")

AttributeValue = str | bool | int | float


@dataclass(frozen=True)
class MetricSpec:
    kind: Literal["counter", "histogram"]
    unit: str
    description: str


# The app's metrics; OpenTelemetry name `mcas.<key>`. Attributes: `tenant` (`source` for dead letters).
METRICS: dict[str, MetricSpec] = {
    "alerts_pulled": MetricSpec("counter", "{alert}", "Alerts delivered to the sinks"),
    "alert_pages": MetricSpec("counter", "{page}", "Alert pages fetched from the API"),
    "throttled_429": MetricSpec("counter", "{response}", "429 Too Many Requests answers from the API"),
    "token_cache_hits": MetricSpec("counter", "{request}", "Authorization headers served from cache"),
    "token_cache_misses": MetricSpec("counter", "{request}", "Authorization headers that needed a new token"),
    "upload_bytes": MetricSpec("counter", "By", "Cloud Discovery log bytes uploaded"),
    "dead_letters": MetricSpec("counter", "{message}", "Messages moved to the dead-letter store"),
    "pull_lag": MetricSpec("histogram", "s", "Age of the newest alert delivered when a pull run ends"),
}


class Metrics:
    """Facade over the OpenTelemetry metrics API; a no-op until `use()` binds a meter provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instruments: dict[str, Any] | None = None
        # A plain attribute, not a property: hot paths (the cached token header) test it on every call.
        self.enabled = False

    def use(self, meter_provider: Any) -> None:
        """Create the instruments on `meter_provider` (the distro's, or an SDK provider in tests)."""
        meter = meter_provider.get_meter(METER_NAME)
        instruments: dict[str, Any] = {}
        for key, spec in METRICS.items():
            create = meter.create_counter if spec.kind == "counter" else meter.create_histogram
            instruments[key] = create(f"{METER_NAME}.{key}", unit=spec.unit, description=spec.description)
        with self._lock:
            self._instruments = instruments
            self.enabled = True

    def disable(self) -> None:
        with self._lock:
            self._instruments = None
            self.enabled = False

    def add(self, name: str, value: float = 1, **attributes: AttributeValue) -> None:
        """Add to a counter, e.g. `metrics.add("alerts_pulled", 100, tenant="contoso")`."""
        self._emit(name, "counter", value, attributes)

    def record(self, name: str, value: float, **attributes: AttributeValue) -> None:
        """Record a histogram value, e.g. `metrics.record("pull_lag", 12.5, tenant="contoso")`."""
        self._emit(name, "histogram", value, attributes)

    def _emit(self, name: str, kind: str, value: float, attributes: Mapping[str, AttributeValue]) -> None:
        spec = METRICS.get(name)
        if spec is None or spec.kind != kind:
            # Checked even when off, so a typo fails the tests rather than silently never reporting.
            raise ValueError(f"{name!r} is not a {kind} metric (known: {', '.join(sorted(METRICS))})")
        instruments = self._instruments
        if instruments is None:
            return
        try:
            instrument = instruments[name]
            if kind == "counter":
                instrument.add(value, attributes=dict(attributes))
            else:
                instrument.record(value, attributes=dict(attributes))
        except Exception as exc:  # telemetry must never fail the work it describes
            log.debug("metric %s not recorded: %s", name, exc)


metrics = Metrics()

_configure_lock = threading.Lock()
_state = {"configured": False}


def telemetry_requested(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get(CONNECTION_STRING_SETTING, "").strip())


def configure_telemetry(env: Mapping[str, str] | None = None) -> bool:
    """Configure Azure Monitor OpenTelemetry if a connection string is set. Idempotent; True when active.

    Never raises: a worker without telemetry is better than a worker that fails to start.
    """
    env = os.environ if env is None else env
    if not telemetry_requested(env):
        return False
    with _configure_lock:
        if _state["configured"]:
            return True
        try:
            from azure.monitor.opentelemetry import configure_azure_monitor
            from opentelemetry import metrics as otel_metrics
        except ImportError as exc:
            log.warning(
                "%s is set but azure-monitor-opentelemetry is not installed (%s)",
                CONNECTION_STRING_SETTING,
                exc,
            )
            return False
        from shared.settings import DEFAULTS

        export_logs = (env.get(EXPORT_LOGS_SETTING) or DEFAULTS[EXPORT_LOGS_SETTING]).strip().lower() in _TRUE
        if not export_logs:
            # The distro ignores its `disable_logging` argument (1.8: overwritten from the environment), so
            # switch the log exporter off the documented OpenTelemetry way, unless the operator chose.
            from opentelemetry.environment_variables import OTEL_LOGS_EXPORTER

            os.environ.setdefault(OTEL_LOGS_EXPORTER, "none")
        try:
            configure_azure_monitor(
                connection_string=env[CONNECTION_STRING_SETTING].strip(),
                logger_name="",
                span_processors=[_redacting_span_processor()],
                instrumentation_options={
                    # Web frameworks the app does not use; the HTTP clients and the Azure SDKs stay on.
                    name: {"enabled": False}
                    for name in ("django", "fastapi", "flask", "psycopg2")
                },
            )
        except Exception as exc:
            log.warning("Azure Monitor OpenTelemetry could not be configured: %s", exc)
            return False
        metrics.use(otel_metrics.get_meter_provider())
        _state["configured"] = True
        log.info("telemetry: Azure Monitor OpenTelemetry configured (logs exported: %s)", export_logs)
        return True


_URL_ATTRIBUTES = ("http.url", "url.full", "url.query", "http.target", "url.path")


def _redacting_span_processor() -> Any:
    """A span processor that rewrites URL attributes through the auth helper's redaction at span start.

    HTTP client instrumentations set the URL when the span starts; SAS (`sig=`) and presigned
    (`X-Amz-Signature=`, `...Token=`) query values must not reach Application Insights.
    """
    from opentelemetry.sdk.trace import SpanProcessor

    from shared.auth.redaction import redact

    class RedactingSpanProcessor(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            attributes = getattr(span, "attributes", None) or {}
            for key in _URL_ATTRIBUTES:
                value = attributes.get(key)
                if isinstance(value, str):
                    cleaned = redact(value)
                    if cleaned != value:
                        span.set_attribute(key, cleaned)

    return RedactingSpanProcessor()


def reset_telemetry_for_tests() -> None:
    """Unbind the facade (the global OpenTelemetry providers cannot be unset within a process)."""
    metrics.disable()
    with _configure_lock:
        _state["configured"] = False
