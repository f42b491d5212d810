"""Demo step for the SOAR jobs API, for `localdev/demo.py`'s STEPS.

A SOAR platform signs a job with the shared Standard Webhooks secret, POSTs it to `/api/jobs` (202 with a
job id and a status URL), the queue-triggered worker runs it, and the platform polls the status URL for the
result.
Here the job marks one alert as read; the simulator then shows it read.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from typing import Any

from shared.errors import McasError
from shared.jobs.signature import status_payload
from shared.standard_webhooks import secret_key, signed_headers

TENANT = "contoso"


def step_soar_job(ctx: Any) -> str:
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    ctx.simulator.set_secret("mcas-webhook-secret", webhook_secret)
    alerts = ctx.simulator.mda(TENANT, "GET", "alerts")
    unread = [a for a in alerts["alerts"] if a.get("statusValue") == 0]
    if not unread:
        raise McasError("the simulator has no unread alert to mark")
    alert_id = unread[0]["_id"]

    body = json.dumps({"action": "alerts.mark_read", "tenant": TENANT, "ids": [alert_id]}).encode()
    headers = {
        "Content-Type": "application/json",
        "x-functions-key": ctx.host.function_key,
        "Idempotency-Key": f"demo-{uuid.uuid4().hex}",
        **signed_headers(secret_key(webhook_secret), f"msg_{uuid.uuid4().hex}", body),
    }
    submitted = ctx.http.post(f"{ctx.host.api_url}/jobs", data=body, headers=headers, timeout=30)
    if submitted.status_code != 202:
        raise McasError(f"POST /api/jobs answered {submitted.status_code}: {submitted.text[:200]}")
    accepted = submitted.json()
    replay = ctx.http.post(f"{ctx.host.api_url}/jobs", data=body, headers=headers, timeout=30)

    drained = ctx.host.drain_queues()
    # Status reads are signed too, over the request itself (`GET\n/api/jobs/{id}\n`), and only the key that
    # submitted the job may read it.
    status_headers = signed_headers(
        secret_key(webhook_secret), f"msg_{uuid.uuid4().hex}", status_payload(accepted["jobId"])
    )
    status = ctx.get(f"jobs/{accepted['jobId']}", headers=status_headers).json()
    now_read = ctx.simulator.mda(TENANT, "GET", f"alerts?id={alert_id}")
    read_flag = [a.get("statusValue") for a in now_read["alerts"]]
    if status.get("status") != "succeeded":
        raise McasError(f"job ended {status.get('status')}: {status.get('error')}")
    return "\n".join(
        [
            f"POST /api/jobs (signed) -> 202 job {accepted['jobId']} "
            f"(correlation {accepted['correlationId']})",
            f"same request again -> {replay.status_code} (webhook-id replay refused; nothing queued twice)",
            f"worker ran {drained.succeeded} message(s); GET /api/jobs/{{id}} -> {status['status']} "
            f"result {json.dumps(status.get('result'), sort_keys=True)}",
            f"alert {alert_id} statusValue now {read_flag[0] if read_flag else '?'} (1 = read)",
        ]
    )
