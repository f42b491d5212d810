"""An in-memory OpenTelemetry metric reader bound to the app's metrics facade, for the reliability tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.telemetry import metrics, reset_telemetry_for_tests


@pytest.fixture
def reader() -> Iterator[Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    metrics.use(provider)
    try:
        yield memory
    finally:
        reset_telemetry_for_tests()
        provider.shutdown()


def metric_points(reader: Any) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Every recorded data point by metric name: (attributes, value or (count, sum) for histograms)."""
    found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = (point.count, point.sum)
                    found.setdefault(metric.name, []).append((dict(point.attributes), value))
    return found
