"""The public shape of a job (GET /api/jobs/{id}, callback bodies). Never the sealed assertion."""

from __future__ import annotations

from typing import Any

from shared.jobs.store import JobRecord


def job_view(job: JobRecord) -> dict[str, Any]:
    spec = job.spec
    view: dict[str, Any] = {
        "jobId": job.job_id,
        "action": job.action,
        "status": job.status,
        "correlationId": job.correlation_id,
        "context": job.context,
        "requestedBy": job.requested_by,
        "tenant": job.tenant,
        "createdAt": job.created_at,
        "updatedAt": job.updated_at,
        "startedAt": job.started_at,
        "finishedAt": job.finished_at,
        "attempts": job.attempts,
        "request": {"action": spec.get("action", job.action), **dict(spec.get("params") or {})},
        "result": job.result,
        "error": job.error,
    }
    if spec.get("callbackUrl"):
        view["callback"] = {"url": spec["callbackUrl"], **(job.callback or {"status": "pending"})}
    return view
