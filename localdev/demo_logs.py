"""Demo step for the `logs` sink: alerts landing in the simulated Log Analytics workspace (Sentinel).

Seeds a few hundred fresh alerts in the simulated tenant, runs the `alerts_pull_timer` function on the local
host with `MCAS_ALERT_SINKS=logs` under its own tenant profile name (so its own checkpoint), then reads the
rows the simulated Logs Ingestion endpoint accepted and summarises them the way the README's KQL would: rows
per severity, the latest version of each alert, calls and bytes on the wire.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

DEMO_ALERTS = 300  # 3 pages: a few requests of the tenant's budget
DEMO_TENANT = "contoso-sentinel"


def step_logs(ctx: Any) -> str:
    from shared.caches import reset_all_caches
    from shared.errors import McasError
    from shared.storage import TABLE_HEALTH, table_client

    sim = ctx.simulator
    now = int(time.time() * 1000)
    sim.mda(
        "contoso",
        "POST",
        "alerts/seed",
        {
            "count": DEMO_ALERTS,
            "seed": 43,
            "start_ms": now - 9 * 60_000,
            "end_ms": now - 120_000,
            "replace": False,
        },
    )
    sim.logs("DELETE", "records")
    os.environ.update(
        {
            **sim.logs_env(),
            "MCAS_ALERT_SINKS": "logs",
            "MCAS_TENANT_NAME": DEMO_TENANT,
            "MCAS_FIRST_FETCH_LOOKBACK": "10m",
        }
    )
    reset_all_caches()
    started = time.monotonic()
    ctx.host.run_timer("alerts_pull_timer")
    took = time.monotonic() - started

    rows = sim.logs_records()
    stats = sim.logs_stats()
    health = sorted(
        table_client(TABLE_HEALTH).query_entities(f"PartitionKey eq 'alerts.{DEMO_TENANT}'"),
        key=lambda r: r["RowKey"],
    )
    pulled = int(health[0]["alerts_delivered"]) if health else -1
    ids = {r["AlertId"] for r in rows}
    if pulled < DEMO_ALERTS or len(rows) != pulled or len(ids) != pulled:
        raise McasError(f"pulled {pulled} alerts, the workspace has {len(rows)} rows for {len(ids)} alerts")
    # MDAAlerts_CL | summarize arg_max(AlertVersion, *) by AlertId | summarize count() by Severity
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["AlertId"] not in latest or row["AlertVersion"] > latest[row["AlertId"]]["AlertVersion"]:
            latest[row["AlertId"]] = row
    by_severity = Counter(r["Severity"] for r in latest.values())
    sample = rows[0]
    info = sim.info["logs_ingestion"]
    return "\n".join(
        [
            f"{len(rows)} rows in MDAAlerts_CL (stream {info['stream']}, rule {info['dcr_immutable_id']}) "
            f"in {took:.1f} s: {stats['accepted']} calls, gzip {stats['bytes'] / len(rows):.0f} bytes/row, "
            f"largest call {stats['max_request_bytes']} bytes",
            "latest version per alert by severity: "
            + ", ".join(f"{k} {v}" for k, v in sorted(by_severity.items())),
            f"sample: AlertId={sample['AlertId']} AlertVersion={sample['AlertVersion']} "
            f"Severity={sample['Severity']} Status={sample['Status']} AlertTitle={sample['AlertTitle']!r}",
        ]
    )
