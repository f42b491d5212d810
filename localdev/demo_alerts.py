"""Demo step for alert retrieval, for localdev/demo.py's STEPS:

    from localdev.demo_alerts import step_alerts
    STEPS.append(("alerts", step_alerts))

Seeds alerts in the simulated tenant, runs the `alerts_pull_timer` function on the local host with the queue
and blob sinks, runs it again (nothing new: the checkpoint holds), then closes one alert as benign - and
prints what the sinks received, the health record and the request/429 counts. It stays within one minute's
30-request budget of the simulated tenant, so it never waits for the rate limit.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

DAY_MS = 86_400_000
DEMO_ALERTS = 1_000  # 10 pages


def step_alerts(ctx: Any) -> str:
    from shared.caches import reset_all_caches
    from shared.errors import McasError
    from shared.mda.alerts import AlertsApi
    from shared.mda.client import client_for
    from shared.settings import get_settings
    from shared.storage import (
        CONTAINER_ALERTS,
        QUEUE_ALERTS,
        TABLE_HEALTH,
        container_client,
        queue_client,
        table_client,
    )

    now = int(time.time() * 1000)
    ctx.simulator.mda(
        "contoso",
        "POST",
        "alerts/seed",
        {"count": DEMO_ALERTS, "seed": 42, "start_ms": now - DAY_MS, "end_ms": now - 120_000},
    )
    os.environ.update(
        {
            "MCAS_ALERT_SINKS": "queue,blob",
            "MCAS_ALERTS_SCHEDULE": os.environ.get("MCAS_ALERTS_SCHEDULE") or "0 */5 * * * *",
            "MCAS_FIRST_FETCH_LOOKBACK": "2d",
            "MCAS_ALERTS_FANOUT": "false",  # the timer pulls itself here; the fan-out has its own tests
        }
    )
    reset_all_caches()
    tenant = get_settings().default_tenant.name

    started = time.monotonic()
    ctx.host.run_timer("alerts_pull_timer")
    first_s = time.monotonic() - started
    ctx.host.run_timer("alerts_pull_timer")  # again: nothing new, nothing repeated

    queue = queue_client(QUEUE_ALERTS)
    queued = queue.get_queue_properties().approximate_message_count
    sample = next(iter(queue.peek_messages(max_messages=1)), None)
    blobs = list(container_client(CONTAINER_ALERTS).list_blobs(name_starts_with=f"{tenant}/"))
    rows = sorted(
        (
            row
            for row in table_client(TABLE_HEALTH).query_entities(f"PartitionKey eq 'alerts.{tenant}'")
            if row.get("stream") == "alerts"  # the new-alerts feed (the closures feed has its own rows)
        ),
        key=lambda r: r["RowKey"],
    )
    # RowKeys sort newest first: this demo's two runs are the two newest rows, whatever ran before.
    if len(rows) < 2 or rows[1]["alerts_delivered"] != DEMO_ALERTS:
        raise McasError(f"expected {DEMO_ALERTS} alerts from the first run, health says {rows[:2]}")
    second, first = rows[0], rows[1]

    alert = json.loads(sample.content) if sample else {}
    api = AlertsApi(client_for(get_settings().default_tenant))
    closed = api.close("benign", [alert["id"]], reason_id=6, comment="demo") if alert else None
    stats = ctx.simulator.mda("contoso", "GET", "throttle/stats")
    return "\n".join(
        [
            f"{first['alerts_delivered']} alerts in {first['pages']} pages in {first_s:.1f} s "
            f"(lag {first['lag_s']:.0f} s, 429s {first['throttled_429']}); second run: "
            f"{second['alerts_delivered']} new",
            f"queue {QUEUE_ALERTS}: {queued} messages; blob {CONTAINER_ALERTS}: {len(blobs)} NDJSON pages "
            f"(e.g. {blobs[0].name if blobs else '-'})",
            f"sample: {alert.get('id')} severity={alert.get('severity')} "
            f"status={alert.get('status')} classification={alert.get('classification')} "
            f"version={alert.get('version')} title={alert.get('title')!r}",
            f"closed as benign: {closed.closed if closed else 0}; API requests {stats['allowed']}, "
            f"429s {stats['throttled']}",
        ]
    )
