"""Secrets from Key Vault: one `SecretClient` per vault per worker, values cached in memory with a TTL.

- Values are never written to disk or logged; each one is registered with the redaction filter as it is read.
- Concurrent readers of one name share one read (single flight), so a cold worker reads each secret once.
- `get(name, bypass_cache=True)` re-reads after the token endpoint rejected a credential: rotation is picked
  up without a restart or redeploy.
- Unreachable vault: bounded retries with backoff (azure-core's own retries are off), then
  `KeyVaultUnavailableError`. When a cached value exists but has only aged past its TTL, it is served (with a
  warning) rather than failing the invocation on a vault hiccup.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.auth.errors import (
    AuthenticationError,
    KeyVaultUnavailableError,
    SecretAccessDeniedError,
    SecretNotFoundError,
)
from shared.auth.redaction import redact, register_secret
from shared.auth.retry import RetryableError, with_retries
from shared.auth.singleflight import SingleFlight
from shared.caches import KeptObjects
from shared.errors import ConfigurationError
from shared.netreason import is_tls_failure_text, os_reason
from shared.settings import Settings

_log = logging.getLogger(__name__)
_STALE_GRACE = 60.0
_CERTIFICATE_TYPES = frozenset({"application/x-pem-file", "application/x-pkcs12"})
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")


@dataclass(frozen=True)
class SecretValue:
    """A secret as read from the vault. `value` never appears in repr()."""

    name: str
    value: str = field(repr=False)
    content_type: str | None = None
    version: str | None = None


class SecretReader(Protocol):
    """One uncached read; raises `RetryableError` when transient, `AuthenticationError` when terminal."""

    def read(self, name: str) -> SecretValue: ...


class AzureSecretReader:
    """Reads through `azure.keyvault.secrets.SecretClient`, built once, authenticated as the worker."""

    def __init__(self, vault_url: str, *, verify_challenge_resource: bool) -> None:
        self.vault_url = vault_url
        self._verify_challenge_resource = verify_challenge_resource
        self._client: Any = None
        self._lock = threading.Lock()

    def _secret_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from azure.keyvault.secrets import SecretClient

                from shared.auth.identity import default_credential

                self._client = SecretClient(
                    self.vault_url,
                    default_credential(),
                    verify_challenge_resource=self._verify_challenge_resource,
                    retry_total=0,  # shared.auth.retry owns the retry budget
                    connection_timeout=10,
                    read_timeout=30,
                )
            return self._client

    def _forget_client(self) -> None:
        from shared.auth.identity import forget_default_credential

        with self._lock:
            self._client = None
        forget_default_credential()

    def read(self, name: str) -> SecretValue:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )
        from azure.identity import CredentialUnavailableError

        if not _SECRET_NAME.match(name):
            # Key Vault answers a bare 400 for these; say what is wrong and where the name comes from.
            raise SecretNotFoundError(
                f"{name!r} is not a valid Key Vault secret name: names hold only letters, digits and dashes "
                "(1-127 characters), e.g. mcas-client-secret; check the *_NAME / *_SECRET settings "
                "(MCAS_CLIENT_SECRET_NAME, MCAS_WEBHOOK_SECRET_NAME, ...)"
            )
        try:
            secret = self._secret_client().get_secret(name)
        except ResourceNotFoundError:
            raise SecretNotFoundError(
                f"Key Vault secret {name!r} does not exist in {self.vault_url}; check the secret name "
                "setting and that the secret (or certificate) was created in this vault"
            ) from None
        except CredentialUnavailableError:
            raise KeyVaultUnavailableError(
                f"no Azure identity is available to read Key Vault {self.vault_url} (DefaultAzureCredential "
                "found no managed identity, environment credential or developer sign-in)"
            ) from None
        except ClientAuthenticationError as exc:
            # The SecretClient's policy and the identity credential both cache the token the vault just
            # refused (revoked before its expiry): asking them again sends the same token. Start the next
            # attempt from a fresh credential instead.
            self._forget_client()
            raise RetryableError(f"could not authenticate to Key Vault ({_status(exc)})") from None
        except HttpResponseError as exc:
            status = getattr(exc, "status_code", None)
            if status == 403:
                raise SecretAccessDeniedError(
                    f"the app's identity may not read secret {name!r} in {self.vault_url} (403); grant it "
                    "the 'Key Vault Secrets User' role on the vault"
                ) from None
            if status is None or status in (408, 429) or status >= 500:
                raise RetryableError(f"Key Vault answered {_status(exc)}") from None
            raise SecretNotFoundError(f"Key Vault refused to read secret {name!r} ({_status(exc)})") from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            reason = os_reason(exc) or type(exc).__name__
            if is_tls_failure_text(exc):  # a certificate problem does not go away by retrying
                raise KeyVaultUnavailableError(
                    f"TLS with Key Vault {self.vault_url} failed ({reason}): is its certificate trusted? "
                    "Check REQUESTS_CA_BUNDLE"
                ) from None
            raise RetryableError(f"Key Vault {self.vault_url} unreachable ({reason})") from None
        value = secret.value or ""
        if secret.properties.content_type not in _CERTIFICATE_TYPES:  # PEM ends with a newline by design
            value = _without_trailing_newline(name, value)
        register_secret(value)
        return SecretValue(
            name=name,
            value=value,
            content_type=secret.properties.content_type,
            version=secret.properties.version,
        )


def _without_trailing_newline(name: str, value: str) -> str:
    """`... -o tsv | az keyvault secret set --file /dev/stdin` stores the newline too, and Entra then refuses
    the secret. No credential this app reads ends in a line break, so one is dropped (with a warning)."""
    stripped = value.rstrip("\r\n")
    if stripped != value and stripped:
        _log.warning(
            "Key Vault secret %r ends with a line break; ignoring it. Store the value without one "
            "(az keyvault secret set --value \"$(...)\", or printf '%%s' ... | ... --file /dev/stdin)",
            name,
        )
        return stripped
    return value


def _status(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}" if status else type(exc).__name__


@dataclass
class _Entry:
    secret: SecretValue
    expires_at: float


class SecretStore:
    """TTL cache + single flight + bounded retries in front of a `SecretReader`."""

    def __init__(
        self,
        reader: SecretReader,
        *,
        vault_url: str,
        ttl: float,
        attempts: int,
        backoff: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.vault_url = vault_url
        self._reader = reader
        self._ttl = ttl
        self._attempts = attempts
        self._backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._entries: dict[str, _Entry] = {}
        self._flight: SingleFlight[SecretValue] = SingleFlight()
        self.reads = 0  # successful vault reads, for diagnostics and benchmarks

    def get(self, name: str, *, bypass_cache: bool = False) -> SecretValue:
        """The secret `name`; cached for the TTL unless `bypass_cache` (after the value was rejected)."""
        if not bypass_cache:
            entry = self._entries.get(name)
            if entry is not None and self._clock() < entry.expires_at:
                return entry.secret
        requested_at = self._clock()
        return self._flight.do(name, lambda: self._load(name, bypass_cache, requested_at))

    def _load(self, name: str, bypass_cache: bool, requested_at: float) -> SecretValue:
        entry = self._entries.get(name)
        if entry is not None and not bypass_cache and self._clock() < entry.expires_at:
            return entry.secret  # another flight refreshed it while this caller queued
        try:
            secret = with_retries(
                lambda: self._reader.read(name),
                attempts=self._attempts,
                backoff=self._backoff,
                what=f"Key Vault read of {name!r}",
                sleep=self._sleep,
            )
        except RetryableError as exc:
            if entry is not None and not bypass_cache:
                _log.warning(
                    "Key Vault unreachable (%s); using the cached value of %r for another %.0fs",
                    exc.reason,
                    name,
                    _STALE_GRACE,
                )
                entry.expires_at = self._clock() + _STALE_GRACE
                return entry.secret
            raise KeyVaultUnavailableError(
                f"could not read secret {name!r} from Key Vault {self.vault_url} after {self._attempts} "
                f"attempts ({redact(exc.reason)}); check that the vault is reachable from the app and that "
                "its identity can get a token"
            ) from None
        except AuthenticationError:
            raise
        self.reads += 1
        self._entries[name] = _Entry(secret, requested_at + self._ttl)
        return secret

    def forget(self, name: str) -> None:
        self._entries.pop(name, None)


_stores: KeptObjects[tuple[str, bool], SecretStore] = KeptObjects()


def secret_store(settings: Settings) -> SecretStore:
    """The worker's store for `settings.key_vault_url` (one `SecretClient` per vault)."""
    from shared.auth.config import AuthConfig

    vault = settings.key_vault_url
    if not vault:
        raise ConfigurationError(
            "MCAS_KEY_VAULT_URL", "is required: the app reads its API credentials from Key Vault"
        )
    key = (vault, bool(settings.verify_key_vault_challenge_resource))

    def build() -> SecretStore:
        config = AuthConfig.from_settings(settings)
        return SecretStore(
            AzureSecretReader(vault, verify_challenge_resource=key[1]),
            vault_url=vault,
            ttl=config.secret_cache_ttl,
            attempts=config.retry_attempts,
            backoff=config.retry_backoff,
        )

    return _stores.get(key, build)
