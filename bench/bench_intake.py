"""Benchmark: SOAR job intake latency (authenticate, validate, record, enqueue) vs a bare enqueue, same
Azurite.

In one process standing for one Functions worker, against a private in-memory Azurite:
- baseline: `QueueClient.send_message` of a job-sized message (the floor any queue-backed intake pays);
- intake: `JobsApi.submit` of a signed `alerts.close` job - HMAC verification, webhook-id replay insert
  (Table), schema validation, job record insert (Table), enqueue (Queue): three storage round trips;
- intake + Idempotency-Key: one more insert-if-not-exists (Table);
- validation alone (CPU, no I/O), for scale.
Scenarios run interleaved in rounds so drift on a shared machine hits them alike. Reported: p50 / p99 (ms) and
p50 ratio to the baseline.

Run: .venv/bin/python bench/bench_intake.py [--requests 600] [--json]
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import bench_parser

from localdev.azurite import AzuriteHandle
from shared import standard_webhooks as sw
from shared.caches import reset_all_caches
from shared.jobs.http import ApiRequest

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
CLOSE = {
    "action": "alerts.close",
    "kind": "benign",
    "ids": ["5f8d70bfc1ffb25b0a541c7d", "55af7415f8a0a7a29eef2e1f", "603f704aaf7417985bbf3b22"],
    "reasonId": 2,
    "comment": "closed by the SOAR playbook",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def build_api() -> Any:
    """The production JobsApi wiring, except the webhook secret is given instead of read from Key Vault."""
    from shared.jobs.claims import IdempotencyStore, SeenWebhookIds
    from shared.jobs.config import IDEMPOTENCY_TTL_S, SIGNATURE_TOLERANCE_S, JobsConfig
    from shared.jobs.intake import JobsApi
    from shared.jobs.schema import ValidationContext
    from shared.jobs.signature import SignatureAuthenticator, WebhookKeys
    from shared.jobs.store import default_job_store
    from shared.settings import get_settings
    from shared.storage import QUEUE_JOBS, TABLE_JOBS, queue_client, table_client

    settings = get_settings()
    config = JobsConfig.from_settings(settings)
    seen = SeenWebhookIds(table_client(TABLE_JOBS), retention_s=2 * SIGNATURE_TOLERANCE_S + 60)
    queue = queue_client(QUEUE_JOBS)

    def enqueue(text: str) -> None:
        queue.send_message(text)

    return JobsApi(
        config=config,
        jobs=default_job_store(),
        idempotency=IdempotencyStore(table_client(TABLE_JOBS), ttl_s=IDEMPOTENCY_TTL_S),
        enqueue=enqueue,
        signature=SignatureAuthenticator(
            WebhookKeys(lambda bypass: SECRET), lambda msg_id: seen.first_use(msg_id, now=time.time())
        ),
        bearer=None,
        sealing_key=lambda: b"\0" * 32,
        validation=lambda: ValidationContext(now=datetime.now(UTC), tenants=config.tenants),
    )


def signed_request(body: bytes, headers: dict[str, str] | None = None) -> ApiRequest:
    signed = sw.signed_headers(sw.secret_key(SECRET), f"msg_{uuid.uuid4().hex}", body)
    return ApiRequest(
        "POST",
        "https://bench.local/api/jobs",
        {"Content-Type": "application/json", **signed, **(headers or {})},
        body,
    )


def measure(requests: int, rounds: int) -> dict[str, Any]:
    from shared.jobs.schema import ValidationContext, validate_job
    from shared.storage import queue_client

    api = build_api()
    body = json.dumps(CLOSE).encode()
    baseline_queue = queue_client("bench-baseline")
    message = json.dumps(
        {"v": 1, "jobId": str(uuid.uuid4()), "correlationId": str(uuid.uuid4()), "action": "x"}
    )

    def bare() -> None:
        baseline_queue.send_message(message)

    def intake() -> None:
        answer = api.submit(signed_request(body))
        assert answer.status == 202, answer.body

    def intake_idempotent() -> None:
        answer = api.submit(signed_request(body, {"Idempotency-Key": uuid.uuid4().hex}))
        assert answer.status == 202, answer.body

    context = ValidationContext(now=datetime.now(UTC), tenants=("contoso",))

    def validate_only() -> None:
        validate_job(json.loads(body), context)

    scenarios: dict[str, Callable[[], None]] = {
        "bare_enqueue": bare,
        "intake_signed": intake,
        "intake_signed_idempotency_key": intake_idempotent,
        "validate_only": validate_only,
    }
    for fn in scenarios.values():  # warm-up: connections, table/queue creation, imports
        for _ in range(30):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in scenarios}
    per_round = max(1, requests // rounds)
    for _ in range(rounds):
        for name, fn in scenarios.items():
            for _ in range(per_round):
                started = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - started) * 1000)
    base_p50 = statistics.median(samples["bare_enqueue"])
    report: dict[str, Any] = {}
    for name, values in samples.items():
        p50 = statistics.median(values)
        report[name] = {
            "n": len(values),
            "p50_ms": round(p50, 3),
            "p99_ms": round(percentile(values, 99), 3),
            "mean_ms": round(statistics.fmean(values), 3),
            "p50_vs_bare_enqueue": round(p50 / base_p50, 2),
        }
    return report


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--requests", type=int, default=600, help="samples per scenario (default 600)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (default 6)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()

    azurite = AzuriteHandle()
    azurite.start()
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "MCAS_API_URL": "https://bench.portal.cloudappsecurity.com",
        "MCAS_TENANT_ID": "00000000-0000-0000-0000-000000000001",
        "MCAS_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
        "MCAS_KEY_VAULT_URL": "https://bench.vault.azure.net",
        "MCAS_TENANT_NAME": "contoso",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_all_caches()
    try:
        report = measure(args.requests, args.rounds)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_all_caches()
        azurite.stop()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'scenario':34} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50 / bare enqueue':>20}")
    for name, row in report.items():
        print(
            f"{name:34} {row['n']:>5} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} "
            f"{row['p50_vs_bare_enqueue']:>20.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
