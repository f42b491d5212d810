"""OpenTelemetry: nothing heavy is imported without Application Insights; the metrics facade records into an
SDK meter provider when bound; the distro is configured (logs left to the host) when a connection string is
set; span URLs lose their signatures before export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.telemetry import METRICS, metrics
from tests.platform.metric_reader import metric_points

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("APPLICATIONINSIGHTS_", "MCAS_TELEMETRY"))
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, **env},
        timeout=60,
        check=False,
    )


def test_without_a_connection_string_nothing_heavy_is_imported():
    code = (
        "import sys\n"
        "from shared.logging_setup import configure_logging\n"
        "from shared.telemetry import configure_telemetry, metrics\n"
        "configure_logging()\n"
        "assert configure_telemetry() is False\n"
        "metrics.add('alerts_pulled', 3, tenant='contoso')\n"
        "metrics.record('pull_lag', 1.5, tenant='contoso')\n"
        "print([m for m in sys.modules if m.startswith(('opentelemetry', 'azure.monitor', 'azure.core'))])\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_facade_records_counters_and_histograms_with_attributes(reader):
    metrics.add("alerts_pulled", 100, tenant="contoso")
    metrics.add("alerts_pulled", 50, tenant="contoso")
    metrics.add("alerts_pulled", 7, tenant="fabrikam")
    metrics.add("throttled_429", tenant="contoso")
    metrics.add("upload_bytes", 4096, tenant="contoso")
    metrics.add("dead_letters", source="mcas-jobs-poison")
    metrics.record("pull_lag", 12.0, tenant="contoso")
    metrics.record("pull_lag", 18.0, tenant="contoso")

    points = metric_points(reader)
    assert sorted(points["mcas.alerts_pulled"], key=lambda p: p[0]["tenant"]) == [
        ({"tenant": "contoso"}, 150),
        ({"tenant": "fabrikam"}, 7),
    ]
    assert points["mcas.throttled_429"] == [({"tenant": "contoso"}, 1)]
    assert points["mcas.upload_bytes"] == [({"tenant": "contoso"}, 4096)]
    assert points["mcas.dead_letters"] == [({"source": "mcas-jobs-poison"}, 1)]
    assert points["mcas.pull_lag"] == [({"tenant": "contoso"}, (2, 30.0))]


def test_every_declared_metric_can_be_emitted(reader):
    for name, spec in METRICS.items():
        (metrics.add if spec.kind == "counter" else metrics.record)(name, 1, tenant="t")
    assert set(metric_points(reader)) == {f"mcas.{name}" for name in METRICS}


def test_unknown_or_misused_metrics_fail_even_when_off():
    assert not metrics.enabled
    with pytest.raises(ValueError, match="not a counter metric"):
        metrics.add("alerts_pulld", 1)
    with pytest.raises(ValueError, match="not a counter metric"):
        metrics.add("pull_lag", 1)
    with pytest.raises(ValueError, match="not a histogram metric"):
        metrics.record("alerts_pulled", 1)


def test_off_records_nothing_and_loads_no_sdk():
    # The cost of a disabled call is measured by the cold-start benchmark; here: it does no work at all.
    before = {name for name in sys.modules if name.startswith("opentelemetry")}
    for _ in range(1_000):
        metrics.add("alerts_pulled", 1, tenant="contoso")
    assert not metrics.enabled
    assert {name for name in sys.modules if name.startswith("opentelemetry")} == before


def test_span_urls_lose_their_signatures():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from shared.telemetry import _redacting_span_processor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(_redacting_span_processor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sas = (
        "https://acct.blob.core.windows.net/logs/fw.log?sv=2024-01-01&sp=cw&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
    )
    presigned = (
        "https://bucket.s3.amazonaws.com/fw.log?X-Amz-Credential=AKIA&X-Amz-Signature=0123456789abcdef"
    )
    with provider.get_tracer("t").start_as_current_span(
        "PUT", attributes={"http.url": sas, "url.full": presigned}
    ):
        pass
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert str(attributes["http.url"]).endswith("&sig=[REDACTED]")
    assert "0123456789abcdef" not in str(attributes["url.full"])
    provider.shutdown()


CONFIGURE = """
import json, logging, sys
from shared.logging_setup import configure_logging
from shared.telemetry import metrics
configure_logging()
configure_logging()
metrics.add('alerts_pulled', 1, tenant='contoso')
root = logging.getLogger()
print(json.dumps({
    "enabled": metrics.enabled,
    "handlers": [type(h).__module__ + '.' + type(h).__name__ for h in root.handlers],
    "filters": [[type(f).__name__ for f in h.filters] for h in root.handlers],
    "formatters": [type(h.formatter).__name__ for h in root.handlers],
}))
"""
# A syntactically valid connection string pointing at a closed loopback port: nothing leaves the machine.
CONNECTION = (
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
    "IngestionEndpoint=https://127.0.0.1:9/;LiveEndpoint=https://127.0.0.1:9/"
)


@pytest.mark.parametrize("export_logs", [False, True])
def test_with_a_connection_string_the_distro_is_configured(tmp_path, export_logs):
    pytest.importorskip("azure.monitor.opentelemetry")
    result = _python(
        CONFIGURE,
        APPLICATIONINSIGHTS_CONNECTION_STRING=CONNECTION,
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        MCAS_TELEMETRY_EXPORT_LOGS=str(export_logs).lower(),
        TMPDIR=str(tmp_path),  # the exporters' offline retry storage
    )
    assert result.returncode == 0, result.stderr[-2000:]
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state["enabled"] is True
    otel = "opentelemetry.instrumentation.logging.handler.LoggingHandler"
    if export_logs:
        # Only with telemetryMode OpenTelemetry: one exporter handler, with context and redaction, not JSON.
        assert state["handlers"] == [otel]
        assert state["filters"] == [["ContextFilter", "RedactionFilter"]]
        assert state["formatters"] == ["NoneType"]
    else:
        assert state["handlers"] == []  # the host ships the logs; no second copy
