"""Outbound signed deliveries (job callbacks, the alert webhook sink): where they may connect, how the
connection is pinned to the checked address, and the one Standard Webhooks sender both use.

- `addresses`: resolve a host once and decide whether every address it resolves to is acceptable;
- `pinned`: an HTTPS POST over a connection to one already-checked address, with the URL's host name kept
  for TLS SNI and certificate verification;
- `sender`: sign, POST, retry (backoff, `Retry-After`, deadline), re-read the secret after a 401.
"""
