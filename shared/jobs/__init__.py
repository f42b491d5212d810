"""SOAR jobs: HTTP intake, the job store and the queue-triggered worker.

Modules, one job each (all cheap to import; storage, Key Vault and HTTP libraries load inside the functions
that use them):
    request_schema - the job request body as JSON Schema (the validator's and the OpenAPI document's)
    schema       - job bodies -> normalised `JobSpec`, with field-level errors and cross-field rules
    config       - the jobs/webhook settings, validated
    principal    - who called (signature caller, application, or user) and in which context jobs run
    signature    - Standard Webhooks request authentication: Key Vault secret, verification, replay refusal
    bearer       - Entra ID bearer-token validation (PyJWT + JWKS)
    sealing      - encryption at rest of a user's assertion between intake and worker
    store        - the job records in Table storage (status, result, ETag-safe transitions)
    claims       - insert-if-not-exists claims: `Idempotency-Key`s (24 h) and seen `webhook-id`s
    http, views  - framework-neutral request/response values; the public shape of a job
    intake       - POST /api/jobs and GET /api/jobs/{id}
    worker       - runs one queued job; actions - the per-action dispatch; callback - signed result POSTs
                   (through the shared sender in shared/outbound)
    openapi      - the OpenAPI 3 document served at /api/openapi.json
"""
