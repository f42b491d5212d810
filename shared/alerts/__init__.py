"""Alert retrieval: one engine for every alert source, delivering each page to the sinks before committing it.

- `config`: settings owned by alert retrieval (sinks, schedule, budgets, the logs sink).
- `model`: the normalised record (schema 1), the enums and close reasons, and its JSON schema.
- `record_v2`: the schema-2 record (one version of an alert) built from MDA or Graph alerts.
- `source`: what an alert source offers the engine (pages for a checkpoint, a one-item probe);
  `mda_source` (creation and closures feeds) and `graph_source` (the `lastUpdateDateTime` change feed).
- `checkpoints`: per-tenant cursor and delivery lease in Table storage (ETag-conditional).
- `sinks`: queue, blob, signed webhook and file sinks, each idempotent on redelivery; `logs_sink` and
  `logs_records`: the Azure Monitor Logs Ingestion sink (Microsoft Sentinel) and its rows.
- `pull`: the page-by-page pull engine (`TenantRun`, used by the timer, the fan-out and the CLI).
- `fanout`: the timer's one message per due tenant, and the per-tenant pull it triggers; `probe`: the
  one-item requests that decide whether a tenant has anything to pull.
- `adhoc`: ad-hoc window pulls from the `mcas-alert-pull-jobs` queue.
- `window`: since/lookback/until made absolute, one parser with a policy per surface (ad-hoc pulls, jobs API).
"""
