"""The public shape of a job (GET /api/jobs/{id}, callback bodies). Never the sealed assertion, and never the
callback URL's query (it may carry the receiver's own token)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
        view["callback"] = {
            "url": without_query(str(spec["callbackUrl"])),
            **(job.callback or {"status": "pending"}),
        }
    return view


def without_query(url: str) -> str:
    """`https://host/path` of a URL: the query and fragment dropped."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
