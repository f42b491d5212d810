"""Microsoft Graph security API (`alerts_v2`): the HTTP client with its own request budget, and typed alert
operations.

- `client`: `GraphClient` (token per Graph audience, distributed 150/min budget, 429 + Retry-After, open
  enums via `Prefer: include-unknown-enum-members`) and `graph_client_for(profile)`.
- `alerts`: list by `serviceSource` and `lastUpdateDateTime`, get, PATCH, comments (never blindly retried).
"""
