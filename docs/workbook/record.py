"""Record the sample that docs/workbook/render.py draws the operations workbook from.

    .venv/bin/python docs/workbook/record.py          # writes docs/workbook/sample/*.ndjson (about a minute)

Runs the real app in the local world (tenant simulator with three tenants, Azurite, the in-process local
host), as `make demo` does, through 24 "hours": each hour runs the alert pull timer once (one page per tenant
and run, so the first day's backlog drains over several hours, as after a first deployment), new alerts
arrive, and some hours bring trouble: 429 storms, failing token requests, discovery logs to upload and a
malformed queue message that is dead-lettered. The app's metrics are read from an in-memory OpenTelemetry
reader after each hour and written in Application Insights' `customMetrics` shape; token requests and failures
come from the simulator's counters (`dependencies` shape), failed discovery runs from the local host
(`requests` shape), and the delivered alerts from the blob sink, projected onto the MDAAlerts_CL columns
(shared/alerts/logs_table.json) without their raw record and entities, which the panels do not read.

The recording runs in seconds, so each hour is stamped on a simulated clock ending at the recording time; the
alerts keep the creation times the simulator gave them (spread over the last day).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).resolve().parent / "sample"
TENANTS = {"contoso": 520, "fabrikam": 260, "northwind": 90}  # alerts already waiting when the app starts
HOURS = 24
DAY_MS = 86_400_000


def _metric_rows(reader: Any, stamp: datetime) -> Iterator[dict[str, Any]]:
    """The reader's delta points since the last call, as customMetrics rows."""
    data = reader.get_metrics_data()
    if data is None:
        return
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    row: dict[str, Any] = {
                        "timestamp": stamp.isoformat().replace("+00:00", "Z"),
                        "name": metric.name,
                        "customDimensions": dict(point.attributes),
                    }
                    if hasattr(point, "count"):  # histogram
                        row.update(
                            value=point.sum, valueCount=point.count, valueMax=point.max, valueMin=point.min
                        )
                    else:
                        row.update(
                            value=point.value, valueCount=1, valueMax=point.value, valueMin=point.value
                        )
                    if row["value"]:
                        yield row


def _alert_rows(blobs: Any) -> list[dict[str, Any]]:
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for item in blobs.list_blobs():
        for line in blobs.download_blob(item.name).readall().decode("utf-8").splitlines():
            if not line.strip():
                continue
            alert = json.loads(line)
            created = alert["timestamp"]
            row = {
                "TimeGenerated": created,
                "AlertId": alert["id"],
                "AlertVersion": alert["timestamp_ms"],
                "Source": "mda",
                "MdaTenant": alert["tenant"],
                "AlertTitle": alert["title"],
                "Severity": alert["severity"],
                "Status": alert["status"],
                "Classification": alert["resolution_status"],
                "Determination": "",
                "AssignedTo": alert.get("handled_by") or "",
                "Created": created,
                "Updated": alert.get("resolve_time") or created,
                "PortalUrl": alert.get("url") or "",
                "ServiceSource": "microsoftDefenderForCloudApps",
                "MdaAlertId": alert["id"],
                "Entities": [],
                "RawRecord": {},
                "SchemaVersion": alert["schema_version"],
            }
            rows[(row["AlertId"], row["AlertVersion"])] = row
    return sorted(rows.values(), key=lambda r: (r["Created"], r["AlertId"]))


def _write(name: str, rows: list[dict[str, Any]]) -> None:
    SAMPLE.mkdir(parents=True, exist_ok=True)
    with (SAMPLE / f"{name}.ndjson").open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, sort_keys=True, default=str) + "\n")
    print(f"  {name}: {len(rows)} rows")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

    from localdev.azurite import AzuriteHandle
    from localdev.demo import demo_context
    from localdev.demo_discovery import SOURCE, STREAM, blob_created_event, sample_log
    from localdev.simulator.client import start_simulator
    from shared.storage import CONTAINER_ALERTS, QUEUE_DISCOVERY_JOBS, container_client, queue_client
    from shared.telemetry import metrics

    delta = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
    reader = InMemoryMetricReader(preferred_temporality=delta)
    provider = MeterProvider(metric_readers=[reader])
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    custom_metrics: list[dict[str, Any]] = []
    dependencies: list[dict[str, Any]] = []
    requests_rows: list[dict[str, Any]] = []

    with tempfile.TemporaryDirectory(prefix="mcas-record-") as tmp, ExitStack() as stack:
        simulator = start_simulator(Path(tmp) / "simulator", mda_tenants=list(TENANTS), rate_limit=2000)
        stack.callback(simulator.stop)
        azurite = stack.enter_context(AzuriteHandle(extent_memory_limit_mb=256))
        profiles = [
            {"name": name, "api_url": simulator.api_url(name), "rate_limit_per_minute": 2000}
            for name in TENANTS
        ]
        os.environ.update(
            {
                "MCAS_TENANT_PROFILES": json.dumps(profiles),
                "MCAS_ALERT_SINKS": "blob",
                "MCAS_FIRST_FETCH_LOOKBACK": "2d",
                "MCAS_ALERTS_MAX_PAGES_PER_RUN": "1",
                "MCAS_ALERTS_SETTLE_SECONDS": "1",
                "MCAS_RATE_LIMIT_PER_MINUTE": "2000",
                "MCAS_ALERTS_SCHEDULE": "0 */5 * * * *",
            }
        )
        ctx = stack.enter_context(demo_context(simulator, azurite, Path(tmp)))
        metrics.use(provider)
        stack.callback(metrics.disable)
        now_ms = int(time.time() * 1000)
        for number, (tenant, count) in enumerate(TENANTS.items()):
            ctx.simulator.mda(
                tenant,
                "POST",
                "alerts/seed",
                {"count": count, "seed": 7 + number, "start_ms": now_ms - DAY_MS, "end_ms": now_ms - 5_000},
            )
            ctx.simulator.mda(
                tenant, "POST", "discovery/config", {"azurite_blob_endpoint": azurite.blob_endpoint}
            )
        counters = ctx.simulator.counters()

        for hour in range(HOURS):
            stamp = end - timedelta(hours=HOURS - 1 - hour)
            if hour in (6, 7, 15):
                ctx.simulator.add_fault(service="mda", status=429, error_rate=0.35, retry_after=1)
            if hour in (11, 19):
                ctx.simulator.add_fault(service="entra", status=503, error_rate=1.0, count=2)
                ctx.simulator.revoke_tokens()
                from shared.caches import reset_all_caches

                reset_all_caches()  # the next pull asks Entra ID for a token again
            if hour % 4 == 2:  # new alerts arrive
                fresh = int(time.time() * 1000) - 2_000
                for number, tenant in enumerate(TENANTS):
                    ctx.simulator.mda(
                        tenant, "POST", "alerts/add", {"count": 6 - 2 * number, "timestamp": fresh}
                    )
                time.sleep(2)  # past the settle window
            ctx.host.run_timer("alerts_pull_timer")
            ctx.simulator.clear_faults()
            if hour % 6 == 3:
                blob = container_client("mcas-discovery-logs").get_blob_client(
                    f"{SOURCE}/{STREAM}/fw-{hour:02d}.log"
                )
                blob.upload_blob(sample_log(1500 + 500 * hour), overwrite=True)
                queue_client(QUEUE_DISCOVERY_JOBS).send_message(json.dumps(blob_created_event(blob.url)))
            if hour in (9, 20):
                queue_client(QUEUE_DISCOVERY_JOBS).send_message("not an Event Grid event")
            stats = ctx.host.drain_queues()
            if stats.failed:
                requests_rows.append(
                    {
                        "timestamp": stamp.isoformat(),
                        "name": "discovery_upload",
                        "success": False,
                        "count": stats.failed,
                    }
                )
            custom_metrics.extend(_metric_rows(reader, stamp))
            now = ctx.simulator.counters()
            issued = sum(now.get("tokens", {}).values()) - sum(counters.get("tokens", {}).values())
            failed = now.get("faults", {}).get("entra:error", 0) - counters.get("faults", {}).get(
                "entra:error", 0
            )
            for success, n, code in ((True, issued, "200"), (False, failed, "503")):
                if n:
                    dependencies.append(
                        {
                            "timestamp": stamp.isoformat(),
                            # As Azure would report it: the simulator stands in for login.microsoftonline.com.
                            "target": "login.microsoftonline.com",
                            "data": f"https://login.microsoftonline.com/{simulator.tenant_id}/oauth2/v2.0/token",
                            "success": success,
                            "resultCode": code,
                            "count": n,
                        }
                    )
            counters = now
        alerts = _alert_rows(container_client(CONTAINER_ALERTS))

    print(f"recorded {HOURS} hours into {SAMPLE.relative_to(ROOT)}:")
    _write("MDAAlerts_CL", alerts)
    _write("customMetrics", custom_metrics)
    _write("dependencies", dependencies)
    _write("requests", requests_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
