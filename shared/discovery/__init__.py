"""Cloud Discovery log uploads: `upload_url` -> streamed PUT -> `done_upload`, idempotent and large-file safe.

Modules, one job each (all import cheaply; SDKs are imported inside the functions that need them):
    sources    - the documented `source` ids, legacy ids and the operator's override list
    config     - the discovery settings, validated
    jobs       - queue messages (explicit jobs, Event Grid BlobCreated events) -> upload jobs
    urlguard   - SSRF guard for the upload URL returned by the API
    api        - upload_url / done_upload through shared.mda.client, with specific terminal errors
    content    - readable sources (blob, local file), BOM/compression sniffing, line-boundary split plan
    transfer   - the PUT itself: Azure single PUT or staged blocks, AWS presigned PUT
    ledger     - the idempotency/record table (sha256 + source + stream)
    uploader   - one file end to end, with retries and fresh upload URLs
    handler    - the queue entry point (dead-letters terminal failures)
"""
