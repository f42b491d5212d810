"""Storage clients come from `AzureWebJobsStorage`: the connection string when one is set (local), else the
service URIs with the managed identity (Azure); queues always carry the host's base64 message policies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localdev.azurite import AzuritePorts, connection_string
from shared.caches import reset_all_caches

APP = {
    "MCAS_API_URL": "https://contoso.us2.portal.cloudappsecurity.com",
    "MCAS_TENANT_ID": "11111111-1111-1111-1111-111111111111",
    "MCAS_CLIENT_ID": "22222222-2222-2222-2222-222222222222",
    "MCAS_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net",
}
IDENTITY = {
    "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
    "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
    "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": "33333333-3333-3333-3333-333333333333",
}
# An Azurite connection string with explicit endpoints (the emulator's development account); never contacted.
AZURITE = connection_string(AzuritePorts(blob=10000, queue=10001, table=10002))


@pytest.fixture
def storage_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name, value in APP.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    for name in IDENTITY:
        monkeypatch.delenv(name, raising=False)
    reset_all_caches()
    try:
        yield monkeypatch
    finally:
        reset_all_caches()


def test_identity_based_clients_use_the_service_uris_and_the_managed_identity(storage_env):
    from azure.identity import ManagedIdentityCredential
    from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy

    from shared.storage import blob_service, queue_client, table_service

    for name, value in IDENTITY.items():
        storage_env.setenv(name, value)
    reset_all_caches()
    blobs, tables, queue = blob_service(), table_service(), queue_client("mcas-jobs", create=False)
    assert blobs.url.startswith(IDENTITY["AzureWebJobsStorage__blobServiceUri"])
    assert tables.url.startswith(IDENTITY["AzureWebJobsStorage__tableServiceUri"])
    assert queue.url == IDENTITY["AzureWebJobsStorage__queueServiceUri"] + "/mcas-jobs"
    assert isinstance(blobs.credential, ManagedIdentityCredential)
    assert isinstance(queue.credential, ManagedIdentityCredential)
    assert isinstance(queue._message_encode_policy, TextBase64EncodePolicy)
    assert isinstance(queue._message_decode_policy, TextBase64DecodePolicy)


def test_a_connection_string_wins_and_queues_keep_the_base64_policies(storage_env):
    from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy

    from shared.storage import blob_service, queue_client, table_service

    storage_env.setenv("AzureWebJobsStorage", AZURITE)
    storage_env.setenv("AzureWebJobsStorage__blobServiceUri", IDENTITY["AzureWebJobsStorage__blobServiceUri"])
    reset_all_caches()
    queue = queue_client("mcas-jobs", create=False)
    assert blob_service().url.startswith("http://127.0.0.1:10000/devstoreaccount1")
    assert table_service().url.startswith("http://127.0.0.1:10002/devstoreaccount1")
    assert queue.url == "http://127.0.0.1:10001/devstoreaccount1/mcas-jobs"
    assert isinstance(queue._message_encode_policy, TextBase64EncodePolicy)
    assert isinstance(queue._message_decode_policy, TextBase64DecodePolicy)


def test_identity_based_storage_without_a_service_uri_names_the_missing_setting(storage_env):
    from shared.errors import ConfigurationError
    from shared.storage import table_service

    queues = "AzureWebJobsStorage__queueServiceUri"
    storage_env.setenv(queues, IDENTITY[queues])
    reset_all_caches()
    with pytest.raises(ConfigurationError) as caught:
        table_service()
    assert caught.value.setting == "AzureWebJobsStorage__tableServiceUri"
