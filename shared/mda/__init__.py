"""The Defender for Cloud Apps REST API: one HTTP client and what is built directly on it.

- `client`: `MdaClient.request`, the only way the app talks to the API: its policy (429 and its wait, error
  bodies, messages) on the request loop it shares with the Graph client (`shared/http_retry.py`).
- `errors`: typed errors callers branch on (throttled, server, auth, not found, bad request).
- `filters`: the API's `filters` grammar.
- `alerts`: typed alert operations (list, get, close, mark read/unread).
"""
