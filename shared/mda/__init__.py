"""The Defender for Cloud Apps REST API: one HTTP client and what is built directly on it.

- `client`: `MdaClient.request`, the only way the app talks to the API (rate budget, 429, retries, 401).
- `errors`: typed errors callers branch on (throttled, server, auth, not found, bad request).
- `filters`: the API's `filters` grammar.
- `alerts`: typed alert operations (list, get, close, mark read/unread).
"""
