"""The Azurite runner: free ports, explicit-endpoint connection string, restart on the same ports."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueServiceClient

from localdev import azurite as azurite_module
from localdev.azurite import ACCOUNT_NAME, AzuriteHandle
from shared.errors import ConfigurationError


def test_session_azurite_serves_all_three_services(azurite):
    ports = {azurite.ports.blob, azurite.ports.queue, azurite.ports.table}
    assert len(ports) == 3
    assert 10000 not in ports  # never the fixed default ports
    for endpoint in (azurite.blob_endpoint, azurite.queue_endpoint, azurite.table_endpoint):
        assert endpoint.startswith("http://127.0.0.1:") and endpoint.endswith(f"/{ACCOUNT_NAME}")
        assert f"Endpoint={endpoint};" in azurite.connection_string


@pytest.mark.integration  # starts a private Azurite
def test_restart_keeps_ports_and_loses_data():
    with AzuriteHandle(extent_memory_limit_mb=16) as private:
        ports = private.ports
        service = QueueServiceClient.from_connection_string(private.connection_string)
        name = f"q-{uuid.uuid4().hex[:8]}"
        service.create_queue(name).send_message("x")

        private.restart()

        assert private.ports == ports
        with pytest.raises(ResourceNotFoundError):
            service.get_queue_client(name).get_queue_properties()  # same client, new empty store
        service.create_queue(name)
    assert not private.running


def test_missing_install_says_how_to_fix_it(monkeypatch, tmp_path):
    monkeypatch.setattr(azurite_module, "AZURITE_BIN", tmp_path / "node_modules" / ".bin" / "azurite")
    with pytest.raises(ConfigurationError, match="make setup"):
        AzuriteHandle().start()
