"""The OpenAPI 3 document of the jobs API, served at GET /api/openapi.json.

The request-body schemas are the validator's own (shared/jobs/request_schema.py `SCHEMAS`), so fields, limits
and enums cannot drift; rules that JSON Schema cannot say (reasonId per close kind, private and loopback
callback hosts, the window's clock) are in the descriptions and enforced by `validate_job`. This module adds
the paths, responses and security. Schemathesis runs against this document in tests/jobs.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from shared.jobs.http import ApiRequest, ApiResponse
from shared.jobs.request_schema import SCHEMAS, ref
from shared.jobs.store import STATUSES
from shared.version import APP_VERSION


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


_CORRELATION_HEADER = {
    "X-Correlation-ID": {"description": "The request's correlation id", "schema": {"type": "string"}}
}


def _schemas() -> dict[str, Any]:
    return {
        **SCHEMAS,  # the request bodies, as the validator reads them
        "JobAccepted": {
            "type": "object",
            "required": ["jobId", "action", "status", "statusUrl", "correlationId", "idempotentReplay"],
            "properties": {
                "jobId": {"type": "string", "format": "uuid"},
                "action": {"type": "string"},
                "status": {"type": "string", "enum": list(STATUSES)},
                "statusUrl": {"type": "string"},
                "correlationId": {"type": "string"},
                "idempotentReplay": {"type": "boolean"},
            },
        },
        "Job": {
            "type": "object",
            "required": ["jobId", "action", "status", "correlationId", "context", "createdAt", "attempts"],
            "properties": {
                "jobId": {"type": "string", "format": "uuid"},
                "action": {"type": "string"},
                "status": {"type": "string", "enum": list(STATUSES)},
                "correlationId": {"type": "string"},
                "context": {"type": "string", "enum": ["application", "user"]},
                "requestedBy": {"type": "object"},
                "tenant": {"type": "string", "nullable": True},
                "createdAt": {"type": "string"},
                "updatedAt": {"type": "string"},
                "startedAt": {"type": "string", "nullable": True},
                "finishedAt": {"type": "string", "nullable": True},
                "attempts": {"type": "integer", "minimum": 0},
                "request": {"type": "object"},
                "result": {
                    "type": "object",
                    "nullable": True,
                    "description": "alerts.close: closed_<kind>, alertsNotFound, alreadyClosed; "
                    "alerts.mark_*: marked_read|marked_unread, unchanged, alertsNotFound; "
                    "alerts.update: updated (Graph) or closed_<kind> (MDA), alertsNotFound; "
                    "alerts.fetch: count, truncated, "
                    "alerts (normalised); discovery.upload: outcome, size, sha256, parts.",
                },
                "error": {"type": "object", "nullable": True},
                "callback": {"type": "object"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string"},
                "message": {"type": "string"},
                "fieldErrors": {"type": "object", "additionalProperties": {"type": "string"}},
                "correlationId": {"type": "string"},
            },
        },
    }


def _header(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "description": description, "schema": schema}


@functools.lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The document as a dict (cached; it only depends on constants)."""
    signature_headers = [
        _header(
            "webhook-id", "Standard Webhooks message id (unique per request, <= 256 chars).", type="string"
        ),
        _header("webhook-timestamp", "Unix seconds; refused if more than 5 minutes off.", type="string"),
        _header("webhook-signature", "`v1,<base64 HMAC-SHA256>` (space-separated list).", type="string"),
    ]
    correlation = _header(
        "X-Correlation-ID",
        "Your correlation id (1-128 of A-Z a-z 0-9 . _ : / + = -; anything else is replaced by a new id); "
        "echoed, logged and stored with the job.",
        type="string",
    )
    common_errors = {
        # No content: the host's 401 (function key) has an empty body, the API's own a JSON `Error`.
        "401": {
            "description": "Not authenticated: a missing or wrong function key (from the host, empty body), "
            "or a missing/invalid signature or token, a replayed webhook-id (a JSON Error)"
        },
        "403": _error("Authenticated but not allowed (scope, role, tenant, context)"),
        "503": _error("A dependency (storage, Key Vault, the token keys) is unavailable; retry"),
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "MCAS SOAR jobs API",
            "version": APP_VERSION,
            "description": "Submit Defender for Cloud Apps jobs (alert fetch, close, mark read/unread, Cloud "
            "Discovery upload), poll their status, receive a signed callback. Every call needs the function "
            "key and either a Standard Webhooks signature (shared secret) or an Entra ID bearer token "
            "for this API; "
            "a user's delegated token makes the job run on behalf of that user.",
        },
        "servers": [{"url": "/api"}],
        # The Functions host checks the function key (x-functions-key or ?code=) on every operation before
        # this API runs, so every requirement names it; the API itself then wants a token or a signature.
        "security": [{"functionKey": [], "bearer": []}, {"functionKey": [], "webhookSignature": []}],
        "paths": {
            "/jobs": {
                "post": {
                    "operationId": "submitJob",
                    "summary": "Submit a job (202 + status URL)",
                    "parameters": [
                        _header(
                            "Idempotency-Key",
                            "Same key (per caller) within 24 h: the same job, not enqueued again; "
                            "another body: 422.",
                            type="string",
                            minLength=1,
                            maxLength=255,
                        ),
                        correlation,
                        *signature_headers,
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ref("JobRequest")}},
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted and queued (or the job an Idempotency-Key stands for)",
                            "headers": {
                                "Location": {"description": "The status URL", "schema": {"type": "string"}},
                                **_CORRELATION_HEADER,
                            },
                            "content": {"application/json": {"schema": ref("JobAccepted")}},
                        },
                        "400": _error("Invalid JSON or job; `fieldErrors` names each bad field"),
                        **common_errors,
                        "413": _error("Body larger than 1 MiB"),
                        "415": _error("Content-Type is not application/json"),
                        "422": _error("Idempotency-Key reused with a different body"),
                    },
                }
            },
            "/jobs/{jobId}": {
                "get": {
                    "operationId": "getJob",
                    "summary": "Job status and result",
                    "description": "Only the job's submitter reads it (the same signing key, the same "
                    "application in its tenant, or the same user); anyone else gets 404. A signed read "
                    "signs the payload `GET\\n/api/jobs/{jobId}\\n` (no body) with a fresh webhook-id, "
                    "which is consumed like a submission's.",
                    "parameters": [
                        {
                            "name": "jobId",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        },
                        correlation,
                        *signature_headers,
                    ],
                    "responses": {
                        "200": {
                            "description": "The job",
                            "headers": _CORRELATION_HEADER,
                            "content": {"application/json": {"schema": ref("Job")}},
                        },
                        **common_errors,
                        "404": _error("No such job (for this caller)"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "security": [{"functionKey": []}],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "401": {"description": "Missing or wrong function key (empty body, from the host)"},
                    },
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "functionKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-functions-key",
                    "description": "Checked by the Functions host on every operation (also as ?code=); "
                    "a missing or wrong key gets a 401 with an empty body.",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Entra ID access token for this API (audience = its client id or app id "
                    "URI); delegated tokens need the Jobs.Submit scope, app tokens the Jobs.Submit role "
                    "(configurable).",
                },
                "webhookSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "webhook-signature",
                    "description": "Standard Webhooks: HMAC-SHA256 over "
                    "`{webhook-id}.{webhook-timestamp}.{body}` with the shared whsec_ secret; the webhook-id "
                    "and webhook-timestamp headers are required too.",
                },
            },
        },
    }


def document_json() -> bytes:
    return json.dumps(document(), indent=2).encode("utf-8")


def openapi_response(request: ApiRequest) -> ApiResponse:
    """GET /api/openapi.json (the function key is the only check: the document holds no secrets)."""
    return ApiResponse(200, document_json(), {"Content-Type": "application/json"})
