"""Azure Storage clients built from `AzureWebJobsStorage`, once per worker.

A connection string locally (Azurite); identity-based service URIs in Azure
(`AzureWebJobsStorage__queueServiceUri`
and friends with the managed identity). The SDKs are imported here, on first use, not when the app is indexed.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from shared.caches import register_cache_reset
from shared.errors import ConfigurationError
from shared.settings import StorageSettings, get_settings

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient
    from azure.storage.blob import BlobServiceClient, ContainerClient
    from azure.storage.queue import QueueClient

# Names the app owns; infra/ creates the same ones (tests/infra checks the two agree).
QUEUE_DISCOVERY_JOBS = "mcas-discovery-jobs"
QUEUE_ALERT_PULL_JOBS = "mcas-alert-pull-jobs"
QUEUE_ALERT_TENANT_PULLS = "mcas-alert-tenant-pulls"
QUEUE_JOBS = "mcas-jobs"
QUEUE_ALERTS = "mcas-alerts"
TABLE_CHECKPOINTS = "mcasCheckpoints"
TABLE_RATE_LIMIT = "mcasRateLimit"
TABLE_UPLOADS = "mcasUploads"
TABLE_JOBS = "mcasJobs"
TABLE_HEALTH = "mcasHealth"
TABLE_TENANTS = "mcasTenants"
TABLE_FANOUT = "mcasFanout"
CONTAINER_DEAD_LETTERS = "mcas-deadletters"
CONTAINER_DISCOVERY_LOGS = "mcas-discovery-logs"
CONTAINER_ALERTS = "mcas-alerts"
CONTAINER_ALERT_PAYLOADS = "mcas-alert-payloads"

_lock = threading.Lock()
_created: set[tuple[str, str]] = set()
_Client = TypeVar("_Client")


def _storage() -> StorageSettings:
    storage = get_settings().storage
    if not storage.configured:
        raise ConfigurationError(
            "AzureWebJobsStorage",
            "is not set: give a connection string (local) or AzureWebJobsStorage__queueServiceUri and "
            "friends "
            "with AzureWebJobsStorage__credential=managedidentity (Azure)",
        )
    return storage


@functools.lru_cache(maxsize=1)
def _identity_credential() -> Any:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    storage = _storage()
    if storage.credential == "managedidentity":
        return ManagedIdentityCredential(client_id=storage.client_id)
    return DefaultAzureCredential()


def _service_uri(kind: str) -> str:
    storage = _storage()
    uri = getattr(storage, f"{kind}_service_uri")
    if not uri:
        raise ConfigurationError(
            f"AzureWebJobsStorage__{kind}ServiceUri", "is required for identity-based storage"
        )
    return str(uri)


def _connected(
    kind: str,
    client: Callable[..., _Client],
    from_connection_string: Callable[..., _Client],
    *args: Any,
    **options: Any,
) -> _Client:
    """A client of the `kind` service: through the connection string when there is one (local), else through
    the service URI with the identity credential (Azure)."""
    storage = _storage()
    if storage.connection_string:
        return from_connection_string(storage.connection_string, *args, **options)
    return client(_service_uri(kind), *args, credential=_identity_credential(), **options)


@functools.lru_cache(maxsize=1)
def blob_service() -> BlobServiceClient:
    from azure.storage.blob import BlobServiceClient

    return _connected("blob", BlobServiceClient, BlobServiceClient.from_connection_string)


@functools.lru_cache(maxsize=1)
def table_service() -> TableServiceClient:
    from azure.data.tables import TableServiceClient

    return _connected("table", TableServiceClient, TableServiceClient.from_connection_string)


def queue_client(name: str, *, create: bool = True) -> QueueClient:
    """A queue client with the base64 message policies the Functions host expects."""
    return _queue_client(name, create)


@functools.lru_cache(maxsize=64)
def _queue_client(name: str, create: bool) -> QueueClient:
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    client = _connected(
        "queue",
        QueueClient,
        QueueClient.from_connection_string,
        name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )
    if create:
        _ensure("queue", name, client.create_queue)
    return client


@functools.lru_cache(maxsize=64)
def table_client(name: str) -> TableClient:
    client = table_service().get_table_client(name)
    _ensure("table", name, lambda: table_service().create_table_if_not_exists(name))
    return client


@functools.lru_cache(maxsize=64)
def container_client(name: str) -> ContainerClient:
    client = blob_service().get_container_client(name)
    _ensure("container", name, client.create_container)
    return client


def _ensure(kind: str, name: str, create: Any) -> None:
    """Create a queue/table/container once per worker; in Azure infra/ has already made it."""
    from azure.core.exceptions import ResourceExistsError

    key = (kind, name)
    if key in _created:
        return
    with _lock:
        if key in _created:
            return
        with contextlib.suppress(ResourceExistsError):
            create()
        _created.add(key)


def reset_storage_clients() -> None:
    for cached in (
        _identity_credential,
        blob_service,
        table_service,
        _queue_client,
        table_client,
        container_client,
    ):
        cached.cache_clear()
    _created.clear()


register_cache_reset(reset_storage_clients)
