"""Fixtures shared by the simulator's tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def msi_env(simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The managed identity endpoint of App Service / Functions, served by the simulator."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", simulator.info["msi_endpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", simulator.info["msi_header"])
    for name in ("AZURE_CLIENT_ID", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT"):
        monkeypatch.delenv(name, raising=False)
