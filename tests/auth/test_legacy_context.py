"""The legacy API token from Key Vault, against the simulator over HTTPS."""

from __future__ import annotations

import logging

import pytest

from shared.auth import api_credential
from shared.auth.legacy import reset_warning
from tests.fixtures.auth import api_status


@pytest.fixture(scope="module")
def simulator(isolated_simulator):
    """This module rotates credentials / revokes tokens: a private simulator (tests/fixtures/auth.py)."""
    return isolated_simulator


def test_legacy_token_from_key_vault_with_one_deprecation_warning(auth_settings, simulator, caplog) -> None:
    reset_warning()
    settings = auth_settings("legacy")
    credential = api_credential(settings.default_tenant)
    with caplog.at_level(logging.WARNING, logger="shared.auth.legacy"):
        header = credential.authorization_header()
        credential.invalidate()
        credential.authorization_header()
    assert header.startswith("Token ")
    assert api_status(simulator, header) == 200
    assert sum("deprecated" in r.getMessage() for r in caplog.records) == 1
    description = credential.describe()
    assert (description.mode, description.scheme, description.expires_on) == ("legacy", "Token", None)


def test_legacy_token_rotation_is_picked_up_after_a_401(auth_settings, simulator) -> None:
    settings = auth_settings("legacy")
    credential = api_credential(settings.default_tenant)
    old = credential.authorization_header()
    simulator.rotate_secret("mcas-api-token")
    assert api_status(simulator, old) == 401
    credential.invalidate()
    new = credential.authorization_header()
    assert new != old and api_status(simulator, new) == 200
