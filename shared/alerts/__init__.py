"""Alert retrieval: one engine for every alert source, delivering each page to the sinks before committing it.

- `config`: settings owned by alert retrieval (sinks, schedule, budgets).
- `model`: the normalised record every sink receives, and its JSON schema.
- `checkpoints`: per-tenant cursor and delivery lease in Table storage (ETag-conditional).
- `sinks`: queue, blob, signed webhook and file sinks, each idempotent on redelivery.
- `pull`: the page-by-page pull engine (timer and CLI).
- `adhoc`: ad-hoc window pulls from the `mcas-alert-pull-jobs` queue.
- `window`: since/lookback/until made absolute, one parser with a policy per surface (ad-hoc pulls, jobs API).
"""
