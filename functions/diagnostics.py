"""Diagnostics blueprint: `GET /api/ping`, an anonymous liveness probe.

It answers without touching settings, Key Vault or the API, so it works (and proves the app indexed) before
anything is configured; it returns only a status and the app version, never settings or secrets.
"""

from __future__ import annotations

import json

import azure.functions as func

from shared.version import APP_VERSION

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated


@bp.function_name(name="ping")
@bp.route(route="ping", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def ping(req: func.HttpRequest) -> func.HttpResponse:
    body = {"status": "ok", "version": APP_VERSION}
    return func.HttpResponse(json.dumps(body), status_code=200, mimetype="application/json")
