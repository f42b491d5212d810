"""Demo step for the Microsoft Graph alert source, for localdev/demo.py's STEPS.

The same simulated tenant's alerts are pulled through Graph `alerts_v2` (schema-2 records, one per version),
then a signed SOAR job closes one of them as benign on the Graph tenant (a PATCH of status, classification and
determination, plus a comment), and the next pull delivers exactly that alert's new version.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import uuid
from typing import Any

from shared.errors import McasError
from shared.jobs.signature import status_payload
from shared.standard_webhooks import secret_key, signed_headers

DAY_MS = 86_400_000


class _ListSink:
    name = "demo"
    order = 10

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def deliver(self, batch: Any, *, deadline: float | None) -> None:
        self.records += [dict(a) for a in batch.alerts]


def _pull() -> tuple[list[dict[str, Any]], Any]:
    from shared.alerts.config import AlertConfig
    from shared.alerts.pull import default_environment, run_scheduled
    from shared.settings import get_settings

    sink = _ListSink()
    env = default_environment(
        AlertConfig.from_settings(get_settings()), extra_sinks=[sink], require_sink=False
    )
    [result] = run_scheduled(env=env, start_ms=int(time.time() * 1000) - 2 * DAY_MS)
    if not result.ok:
        raise McasError(f"Graph pull failed: {result.error}")
    return sink.records, result


def step_graph(ctx: Any) -> str:
    from shared.caches import reset_all_caches

    os.environ.update({"MCAS_ALERT_SOURCE": "graph", "MCAS_ALERT_SINKS": "blob"})
    reset_all_caches()
    try:
        first, run = _pull()
        target = next((r for r in first if r["status"] != "resolved"), None)
        if target is None:
            raise McasError("no open alert in the Graph feed")
        webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        ctx.simulator.set_secret("mcas-webhook-secret", webhook_secret)
        job = {
            "action": "alerts.close",
            "kind": "benign",
            "reasonId": 6,
            "ids": [target["id"]],
            "comment": "demo",
        }
        body = json.dumps(job).encode()
        headers = {
            "Content-Type": "application/json",
            "x-functions-key": ctx.host.function_key,
            **signed_headers(secret_key(webhook_secret), f"msg_{uuid.uuid4().hex}", body),
        }
        submitted = ctx.http.post(f"{ctx.host.api_url}/jobs", data=body, headers=headers, timeout=30)
        if submitted.status_code != 202:
            raise McasError(f"POST /api/jobs answered {submitted.status_code}: {submitted.text[:200]}")
        ctx.host.drain_queues()
        job_id = submitted.json()["jobId"]
        # Status reads are signed over the request itself (`GET\n/api/jobs/{id}\n`).
        status_headers = signed_headers(
            secret_key(webhook_secret), f"msg_{uuid.uuid4().hex}", status_payload(job_id)
        )
        status = ctx.get(f"jobs/{job_id}", headers=status_headers).json()
        if status.get("status") != "succeeded":
            raise McasError(f"the Graph close job ended {status.get('status')}: {status.get('error')}")
        second, _ = _pull()
        if [r["id"] for r in second] != [target["id"]]:
            raise McasError(f"expected one new version of {target['id']}, got {[r['id'] for r in second]}")
        new = second[0]
    finally:
        os.environ["MCAS_ALERT_SOURCE"] = "mda"
        reset_all_caches()
    return "\n".join(
        [
            f"Graph pull: {len(first)} alert versions in {run.pages} pages, {run.requests} requests, "
            f"429s {run.throttled} (source=graph, schema {first[0]['schema_version']})",
            f"SOAR alerts.close benign on {target['id']} -> PATCH {json.dumps(status['result']['changes'])} "
            f"+ comment",
            f"next pull: 1 new version {target['version']} -> {new['version']}: status={new['status']} "
            f"classification={new['classification']} determination={new['determination']}",
        ]
    )
