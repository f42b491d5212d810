"""How an analyst's token travels from intake to the worker: sealed at rest, never on the queue.

The worker (not the intake) performs the on-behalf-of exchange, because it is the one that calls the API,
maybe minutes later and on another instance. It needs the analyst's inbound assertion for that. Choices,
safest first:
- the queue message carries only the job id and correlation id - nothing secret;
- the assertion is stored with the job record, encrypted with AES-256-GCM under a key kept in Key Vault
  (`MCAS_JOB_SEALING_KEY_NAME`), with the job id as associated data, so a sealed value copied to another job
  does not open;
- it is erased from the record as soon as the job finishes (succeeded, failed or dead-lettered);
- the worker refuses an assertion that expired while queued (the job fails with `user_assertion_expired`
  rather than silently falling back to application context).
Storing the OBO result instead would keep a token for the Defender for Cloud Apps API itself at rest; the
inbound assertion only works against this app (and only together with its client credential).
"""

from __future__ import annotations

import base64
import binascii
import os

from shared.errors import ConfigurationError

VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32


class SealError(Exception):
    """A sealed value could not be opened (wrong key, wrong job, tampered)."""


def key_from_secret(value: str, *, setting: str = "MCAS_JOB_SEALING_KEY_NAME") -> bytes:
    """The Key Vault secret holds 32 random bytes, base64 (`openssl rand -base64 32`)."""
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            setting, "names a secret that is not base64 (expected 32 random bytes)"
        ) from None
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            setting, f"names a secret of {len(key)} bytes; it must hold {KEY_BYTES} random bytes"
        )
    return key


def _aad(job_id: str) -> bytes:
    return f"mcas-job-assertion:{job_id}".encode()


def seal(key: bytes, job_id: str, plaintext: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), _aad(job_id))
    return f"{VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"


def unseal(key: bytes, job_id: str, sealed: str) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    version, _, payload = sealed.partition(".")
    if version != VERSION or not payload:
        raise SealError("unknown sealed format")
    try:
        raw = base64.urlsafe_b64decode(payload.encode("ascii"))
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(job_id))
    except (InvalidTag, ValueError, binascii.Error):
        raise SealError("the sealed assertion does not open with this key for this job") from None
    return plain.decode("utf-8")
