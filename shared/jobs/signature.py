"""Standard Webhooks authentication of job requests: the shared secret from Key Vault, verification, replay
refusal.

The Key Vault secret (`MCAS_WEBHOOK_SECRET_NAME`) holds one `whsec_<base64>` secret, or several separated by
whitespace while a rotation is in progress (callers may sign with either). When no signature matches, or the
secret read from the vault is malformed, the secret is re-read once bypassing the cache (at most every
`REFRESH_INTERVAL_S`), so a rotation or a fix in the vault is picked up without a restart and a flood of bad
signatures cannot turn into a flood of vault reads.

Status reads are signed too, over a canonical payload that names the request (`GET\\n/api/jobs/{id}\\n`,
see `status_payload`), so one set of headers reads one job once: their `webhook-id` is consumed like a
submission's.

The principal names the key that signed (a fingerprint, never the key): jobs are visible to that key only.

Order matters: the signature is checked before the `webhook-id` is recorded, so unauthenticated traffic cannot
fill the seen-id table or burn ids that a legitimate caller will use.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping

from shared import standard_webhooks as sw
from shared.errors import TerminalError, TransientError
from shared.jobs.principal import AuthFailure, AuthUnavailable, Principal

log = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 30.0


def parse_secrets(value: str) -> list[bytes]:
    """One or more whitespace-separated `whsec_` secrets -> HMAC keys."""
    keys = [sw.secret_key(part) for part in value.split() if part]
    if not keys:
        raise sw.WebhookSecretError("the webhook secret is empty")
    return keys


def status_payload(job_id: str) -> bytes:
    """What a signed `GET /api/jobs/{id}` signs in place of a body: the method and path, one per line."""
    return f"GET\n/api/jobs/{job_id}\n".encode()


def key_fingerprint(key: bytes) -> str:
    """A stable, non-reversible name for an HMAC key (owner of the jobs it signed)."""
    return "key-" + hashlib.sha256(b"mcas-webhook-key\n" + key).hexdigest()[:24]


class SecretUnusable(Exception):
    """The secret in the vault is missing or malformed (a configuration problem)."""


class WebhookKeys:
    """The current HMAC keys, read through `read(bypass_cache)` (the auth helper's Key Vault secret store)."""

    def __init__(self, read: Callable[[bool], str], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._clock = clock
        self._lock = threading.Lock()
        self._last_refresh = float("-inf")

    def current(self) -> list[bytes]:
        """The cached keys; `SecretUnusable` when the secret is malformed (the caller may refresh)."""
        return self._load(bypass_cache=False)

    def refreshed(self) -> list[bytes] | None:
        """Fresh keys from the vault, or None when a refresh happened too recently."""
        with self._lock:
            now = self._clock()
            if now - self._last_refresh < REFRESH_INTERVAL_S:
                return None
            self._last_refresh = now
        return self._load(bypass_cache=True)

    def _load(self, *, bypass_cache: bool) -> list[bytes]:
        try:
            return parse_secrets(self._read(bypass_cache))
        except TransientError as exc:
            raise AuthUnavailable("the webhook secret could not be read from Key Vault") from exc
        except (TerminalError, sw.WebhookSecretError) as exc:
            log.error("webhook signature authentication is not usable: %s", exc)
            raise SecretUnusable(str(exc)) from None


_NOT_CONFIGURED = AuthFailure(
    401, "signature_not_configured", "signature authentication is not available; use a bearer token"
)


class SignatureAuthenticator:
    def __init__(
        self,
        keys: WebhookKeys,
        first_use: Callable[[str], bool],
        *,
        tolerance_s: int = sw.DEFAULT_TOLERANCE_S,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._first_use = first_use
        self._tolerance_s = tolerance_s
        self._now = now

    def authenticate(self, payload: bytes, headers: Mapping[str, str]) -> Principal:
        """Verify the signature over `payload` and consume its webhook-id (AuthFailure/AuthUnavailable)."""
        try:
            keys = self._keys.current()
        except SecretUnusable:
            keys = []  # still check the request's own form, then try a fresh read of the secret
        try:
            verified: sw.VerifiedWebhook | None = self._verify(payload, headers, keys)
        except sw.WebhookVerificationError as exc:
            if exc.reason != "no_matching_signature":
                raise AuthFailure(401, f"signature_{exc.reason}", str(exc)) from None
            verified = None
        if verified is None:
            verified = self._verify_refreshed(payload, headers, had_keys=bool(keys))
        try:
            first = self._first_use(verified.msg_id)
        except TransientError as exc:
            raise AuthUnavailable("the webhook-id could not be recorded") from exc
        if not first:
            raise AuthFailure(
                401, "signature_replayed", "this webhook-id was already used; sign a new message"
            )
        return Principal(kind="signature", subject=key_fingerprint(verified.key))

    def _verify_refreshed(
        self, payload: bytes, headers: Mapping[str, str], *, had_keys: bool
    ) -> sw.VerifiedWebhook:
        mismatch = AuthFailure(401, "signature_mismatch", "the webhook signature does not match")
        try:
            fresh = self._keys.refreshed()
        except SecretUnusable:
            raise _NOT_CONFIGURED from None
        if fresh is None:
            raise mismatch if had_keys else _NOT_CONFIGURED
        try:
            return self._verify(payload, headers, fresh)
        except sw.WebhookVerificationError:
            raise mismatch from None

    def _verify(self, payload: bytes, headers: Mapping[str, str], keys: list[bytes]) -> sw.VerifiedWebhook:
        return sw.verify(payload, headers, keys, tolerance_s=self._tolerance_s, now=self._now)
