"""The worker's own Azure identity, built once: `DefaultAzureCredential` for Key Vault and a
`ManagedIdentityCredential` for federated client assertions.

In Azure, DefaultAzureCredential resolves to the Function App's managed identity (a user-assigned one when
`AZURE_CLIENT_ID` is set); locally, to environment or developer credentials - or to the simulator's managed
identity endpoint via `IDENTITY_ENDPOINT` / `IDENTITY_HEADER`. Nothing is excluded, so the same code runs
everywhere.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from shared.caches import register_cache_reset

_lock = threading.Lock()
_credentials: dict[str, Any] = {}


def default_credential() -> Any:
    """The worker's `azure.identity.DefaultAzureCredential` (created on first use; it caches its tokens)."""
    with _lock:
        credential = _credentials.get("default")
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = _credentials["default"] = DefaultAzureCredential()
        return credential


def forget_default_credential() -> None:
    """Drop the default credential (and its token cache): the next caller builds a new one, which fetches a
    new token. For a token the resource refused before its expiry (revoked)."""
    with _lock:
        _credentials.pop("default", None)


def managed_identity_credential() -> Any:
    """The worker's managed identity (`AZURE_CLIENT_ID` picks a user-assigned one), for FIC assertions."""
    with _lock:
        credential = _credentials.get("managed")
        if credential is None:
            from azure.identity import ManagedIdentityCredential

            client_id = os.environ.get("AZURE_CLIENT_ID") or None
            credential = _credentials["managed"] = (
                ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
            )
        return credential


def reset_identity() -> None:
    with _lock:
        _credentials.clear()


register_cache_reset(reset_identity)
