"""Standard Webhooks signing and verification (https://www.standardwebhooks.com), with hmac/hashlib only.

One code path for both directions: `verify()` recomputes the expected signature through `sign()`, so what we
send (job callbacks, the alert webhook sink) and what we accept (SOAR job intake) cannot drift apart. Compared
with the reference library (https://github.com/standard-webhooks/standard-webhooks) the tolerance and the
clock are parameters, every failure is a
`WebhookVerificationError` with a stable `reason` code, several secrets may be given (rotation), and a
malformed signature entry is skipped rather than escaping as a bare ValueError.

Signed content: `{webhook-id}.{webhook-timestamp}.{raw body}`; signature: `v1,` + base64(HMAC-SHA256(key,
content)); the `webhook-signature` header holds one or more space-separated signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 5 * 60
MAX_ID_LENGTH = 256
MAX_SIGNATURE_HEADER_LENGTH = 4096

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class WebhookSecretError(ValueError):
    """The configured secret is empty or not valid base64 (a configuration problem, not a caller's)."""


class WebhookVerificationError(Exception):
    """A request failed verification. `reason` is a stable code; the message is safe to return to callers."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class VerifiedWebhook:
    """What a successful verification established."""

    msg_id: str
    timestamp: int
    key: bytes = field(default=b"", repr=False, compare=False)  # the key that matched (names the signer)


def secret_key(secret: str | bytes) -> bytes:
    """Normalise a secret once: drop the `whsec_` prefix and base64-decode; raw bytes pass through."""
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret.strip()
        text = text.removeprefix(SECRET_PREFIX)
        text += "=" * (-len(text) % 4)  # unpadded base64, as the official libraries accept it
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise WebhookSecretError(
                "the webhook secret is not valid base64 (expected whsec_<base64>)"
            ) from None
    if not key:
        raise WebhookSecretError("the webhook secret is empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, payload: bytes) -> str:
    """The `v1,<base64>` signature of one message."""
    content = f"{msg_id}.{timestamp}.".encode() + payload
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signed_headers(
    key: bytes,
    msg_id: str,
    payload: bytes,
    *,
    timestamp: int | None = None,
    now: Callable[[], float] = time.time,
) -> dict[str, str]:
    """The three headers for an outgoing message (job callbacks, webhook sinks)."""
    ts = int(now()) if timestamp is None else timestamp
    return {HEADER_ID: msg_id, HEADER_TIMESTAMP: str(ts), HEADER_SIGNATURE: sign(key, msg_id, ts, payload)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def has_signature_headers(headers: Mapping[str, str]) -> bool:
    """True when a request claims Standard Webhooks authentication (any of the three headers present)."""
    return any(_header(headers, name) is not None for name in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE))


def verify(
    payload: bytes,
    headers: Mapping[str, str],
    keys: Iterable[bytes],
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: Callable[[], float] = time.time,
) -> VerifiedWebhook:
    """Check id, timestamp window (both directions) and that one `v1` signature matches one of `keys`.

    Replay protection (refusing an id already seen) needs storage and is the caller's job, after this passes.
    """
    msg_id = _header(headers, HEADER_ID)
    raw_ts = _header(headers, HEADER_TIMESTAMP)
    raw_sig = _header(headers, HEADER_SIGNATURE)
    if not msg_id or not raw_ts or not raw_sig:
        raise WebhookVerificationError(
            "missing_headers", "webhook-id, webhook-timestamp and webhook-signature are all required"
        )
    if len(msg_id) > MAX_ID_LENGTH or not msg_id.isprintable() or not msg_id.isascii():
        raise WebhookVerificationError(
            "invalid_id", f"webhook-id must be 1-{MAX_ID_LENGTH} printable ASCII chars"
        )
    if len(raw_sig) > MAX_SIGNATURE_HEADER_LENGTH:
        raise WebhookVerificationError("invalid_signature", "webhook-signature is too long")
    text_ts = raw_ts.strip()
    if not text_ts.isdigit() or len(text_ts) > 12:
        raise WebhookVerificationError("invalid_timestamp", "webhook-timestamp must be integer Unix seconds")
    timestamp = int(text_ts)
    current = int(now())
    if timestamp < current - tolerance_s:
        raise WebhookVerificationError("timestamp_too_old", "webhook-timestamp is outside the allowed window")
    if timestamp > current + tolerance_s:
        raise WebhookVerificationError("timestamp_too_new", "webhook-timestamp is outside the allowed window")

    offered: list[bytes] = []
    for entry in raw_sig.split(" "):
        version, sep, value = entry.partition(",")
        if not sep or version != SIGNATURE_VERSION:
            continue  # unknown versions and malformed entries are skipped, per the spec
        offered.append(value.encode("ascii", errors="replace"))
    if not offered:
        raise WebhookVerificationError("invalid_signature", "webhook-signature carries no v1 signature")
    for key in keys:
        expected = sign(key, msg_id, timestamp, payload).partition(",")[2].encode("ascii")
        # Compare against every offered value (no early exit on a match position) in constant time.
        if any(hmac.compare_digest(expected, value) for value in offered):
            return VerifiedWebhook(msg_id=msg_id, timestamp=timestamp, key=key)
    raise WebhookVerificationError("no_matching_signature", "no webhook-signature matched")
