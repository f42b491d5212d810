"""Legacy context (`MCAS_AUTH_MODE=legacy`): `Authorization: Token <key>` with the key from Key Vault.

Deprecated by Microsoft ("on a deprecation path"); kept for the Files API, which application tokens cannot
use. A warning is logged once per worker. The key has no expiry, so it is re-read from Key Vault when its
cache TTL ends, and immediately (bypassing the cache) after the API rejects it - a rotated key is picked up
without a restart.
"""

from __future__ import annotations

import logging
import math
import threading

from shared.auth.keyvault import SecretStore
from shared.auth.redaction import register_secret
from shared.auth.tokens import AccessToken, SourceInfo

_log = logging.getLogger(__name__)
_warned = threading.Event()


def _warn_once() -> None:
    if not _warned.is_set():
        _warned.set()
        _log.warning(
            "MCAS_AUTH_MODE=legacy: API tokens are deprecated by Microsoft; move to application context "
            "(MCAS_AUTH_MODE=application) unless you need the Files API"
        )


class LegacySource:
    def __init__(
        self, store: SecretStore, *, secret_name: str, tenant_name: str, api_url: str, ttl: float
    ) -> None:
        self._store = store
        self._name = secret_name
        self._tenant_name = tenant_name
        self._api_url = api_url
        self._ttl = ttl

    def info(self) -> SourceInfo:
        return SourceInfo(
            mode="legacy",
            tenant_name=self._tenant_name,
            tenant_id="",
            client_id="",
            credential=f"legacy API token (Key Vault secret {self._name!r} in {self._store.vault_url})",
            authority=self._api_url,
        )

    def fetch(self, *, force_refresh: bool) -> AccessToken:
        _warn_once()
        secret = self._store.get(self._name, bypass_cache=force_refresh)
        value = secret.value.strip()
        register_secret(value)
        return AccessToken(
            value=value,
            scheme="Token",
            expires_on=math.inf,
            source="key_vault",
            refresh_in=self._ttl,
        )


def reset_warning() -> None:
    """For tests: make the next legacy credential warn again."""
    _warned.clear()
