"""Health blueprint: `GET /api/health` (function key), the dependency checks of shared/health.py.

200 when Key Vault, a token, storage and every tenant's alert pulls are healthy; 503 naming the failing
checks otherwise. The body holds check names, generic reasons, durations and per-tenant pull times - never
secrets, tokens, setting values or raw errors (those are logged). Not cached: each call probes (each check
bounded by a short timeout).
"""

from __future__ import annotations

import json

import azure.functions as func

from shared.log_context import log_context

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated


@bp.function_name(name="health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    from shared.health import check_health

    with log_context(invocation_id=context.invocation_id):
        report = check_health()
    return func.HttpResponse(
        json.dumps(report.public_dict()),
        status_code=report.status_code,
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )
