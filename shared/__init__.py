"""All of the app's logic; `functions/` only binds triggers and calls one entry point here.

Packages, one concern each (each package's docstring maps its modules):
    alerts     - alert retrieval: one engine over the MDA and Graph sources, checkpoints, sinks, fan-out
    mda        - the Defender for Cloud Apps REST API client and typed alert operations
    graph      - the Microsoft Graph security API client (`alerts_v2`)
    discovery  - Cloud Discovery log uploads
    jobs       - the SOAR jobs API: intake, store, worker, callbacks, OpenAPI document
    auth       - credentials: application, user and legacy contexts, Key Vault, one cached helper
    outbound   - signed deliveries to public receivers over pinned connections
    tenants    - the tenant registry (`mcasTenants`)

Modules every package uses:
    settings      - the typed settings object (tenant profiles included)
    storage       - Azure Storage clients; deadletters - the dead-letter store
    ratelimit     - the tenant-wide request budget across instances
    http_retry    - the one request loop of the REST clients; backoff - the one wait rule
    timeparse     - the one grammar for durations and instants; headers - case-insensitive header lookup
    errors        - typed errors callers branch on; netreason - why a host could not be reached
    standard_webhooks - signing and verification
    health, telemetry, logging_setup, log_context - what operators see
    caches, version - process-wide singletons to reset; the app's version
"""
