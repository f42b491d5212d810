"""Recovery paths, each proven by injecting the fault in the simulator: revoked tokens, rotated and expired
credentials, Key Vault and the token endpoint down then up."""

from __future__ import annotations

import pytest
import requests

from shared.auth import (
    CredentialRejectedError,
    IdentityProviderUnavailableError,
    KeyVaultUnavailableError,
    SecretAccessDeniedError,
    api_credential,
)
from shared.errors import TerminalError, TransientError


@pytest.fixture(scope="module")
def simulator(isolated_simulator):
    """This module rotates credentials / revokes tokens: a private simulator (tests/fixtures/auth.py)."""
    return isolated_simulator


def _api_status(simulator, header: str) -> int:
    response = requests.get(
        f"{simulator.api_url('contoso')}/api/v1/alerts/", headers={"Authorization": header}, timeout=10
    )
    return response.status_code


def _call_api_like_the_client(simulator, credential) -> int:
    """What the API client does: send, and on a 401 invalidate and retry once."""
    status = _api_status(simulator, credential.authorization_header())
    if status == 401:
        credential.invalidate()
        status = _api_status(simulator, credential.authorization_header())
    return status


def test_revoked_token_401_then_invalidate_then_fresh_token(auth_settings, simulator) -> None:
    settings = auth_settings()
    credential = api_credential(settings.default_tenant)
    old = credential.authorization_header()
    assert _api_status(simulator, old) == 200
    simulator.revoke_tokens(simulator.client_id("daemon"))
    assert _api_status(simulator, old) == 401
    assert _call_api_like_the_client(simulator, credential) == 200
    assert credential.authorization_header() != old
    counters = simulator.counters()
    assert counters["tokens"]["client_credentials"] == 2  # MSAL's cached copy was dropped too
    assert counters["keyvault_reads"] == {"mcas-client-secret": 1}  # the secret itself was fine


def test_secret_rotated_mid_run_is_reread_from_key_vault(auth_settings, simulator) -> None:
    settings = auth_settings()
    credential = api_credential(settings.default_tenant)
    old = credential.authorization_header()
    simulator.rotate_secret("mcas-client-secret")  # Entra and Key Vault get a new secret
    simulator.revoke_tokens(simulator.client_id("daemon"))  # ...and the old token stops working
    assert _call_api_like_the_client(simulator, credential) == 200
    assert credential.authorization_header() != old
    counters = simulator.counters()
    assert counters["keyvault_reads"] == {"mcas-client-secret": 2}
    assert counters["token_errors"] == {"AADSTS7000215": 1}
    assert counters["tokens"]["client_credentials"] == 2


def test_rotated_certificate_is_reread(auth_settings, simulator) -> None:
    settings = auth_settings(MCAS_CLIENT_CERTIFICATE_NAME="mcas-client-cert")
    credential = api_credential(settings.default_tenant)
    credential.authorization_header()
    simulator.rotate_secret("mcas-client-cert")
    credential.invalidate()
    assert _api_status(simulator, credential.authorization_header()) == 200
    assert simulator.counters()["keyvault_reads"] == {"mcas-client-cert": 2}


def test_expired_secret_gives_a_clear_terminal_error(auth_settings, simulator) -> None:
    settings = auth_settings()
    simulator.expire_client_secret("daemon")
    with pytest.raises(CredentialRejectedError) as caught:
        api_credential(settings.default_tenant).authorization_header()
    message = str(caught.value)
    assert "AADSTS7000222" in message
    assert "'mcas-client-secret'" in message and simulator.client_id("daemon") in message
    assert simulator.secret_value("mcas-client-secret") not in message
    assert isinstance(caught.value, TerminalError)
    # One re-read bypassing the cache, one retry - no more.
    counters = simulator.counters()
    assert counters["keyvault_reads"] == {"mcas-client-secret": 2}
    assert counters["token_errors"] == {"AADSTS7000222": 2}


def test_key_vault_briefly_down_is_absorbed_by_the_retries(auth_settings, simulator) -> None:
    settings = auth_settings()
    simulator.add_fault(service="keyvault", error_rate=1.0, status=503, count=2)
    header = api_credential(settings.default_tenant).authorization_header()
    assert _api_status(simulator, header) == 200
    assert simulator.counters()["keyvault_reads"] == {"mcas-client-secret": 1}


def test_key_vault_down_then_up(auth_settings, simulator) -> None:
    settings = auth_settings(MCAS_AUTH_RETRY_ATTEMPTS="3")
    simulator.add_fault(service="keyvault", error_rate=1.0, status=503)
    credential = api_credential(settings.default_tenant)
    with pytest.raises(KeyVaultUnavailableError) as caught:
        credential.authorization_header()
    assert "'mcas-client-secret'" in str(caught.value) and "3 attempts" in str(caught.value)
    assert isinstance(caught.value, TransientError)
    assert simulator.counters()["faults"]["keyvault:error"] == 3
    simulator.clear_faults()
    assert _api_status(simulator, credential.authorization_header()) == 200


def test_key_vault_connection_resets_are_retried(auth_settings, simulator) -> None:
    settings = auth_settings()
    simulator.add_fault(service="keyvault", reset_rate=1.0, count=2)
    assert api_credential(settings.default_tenant).authorization_header().startswith("Bearer ")


def test_token_endpoint_down_then_up(auth_settings, simulator) -> None:
    settings = auth_settings(MCAS_AUTH_RETRY_ATTEMPTS="3")
    simulator.add_fault(
        service="entra", error_rate=1.0, status=503, path_prefix=f"/{simulator.tenant_id}/oauth2"
    )
    credential = api_credential(settings.default_tenant)
    with pytest.raises(IdentityProviderUnavailableError, match="3 attempts"):
        credential.authorization_header()
    simulator.clear_faults()
    assert _api_status(simulator, credential.authorization_header()) == 200


def test_token_endpoint_flaky_is_absorbed(auth_settings, simulator) -> None:
    settings = auth_settings()
    simulator.add_fault(
        service="entra", error_rate=1.0, status=500, count=2, path_prefix=f"/{simulator.tenant_id}/oauth2"
    )
    assert api_credential(settings.default_tenant).authorization_header().startswith("Bearer ")
    assert simulator.counters()["requests"]["entra"]["token"] == 3


def test_key_vault_access_denied_is_terminal_and_says_which_role(auth_settings, simulator) -> None:
    settings = auth_settings()
    identity = simulator.info["managed_identities"]["system"]["client_id"]
    simulator.admin("POST", "/keyvault/deny", {"principal": identity})
    with pytest.raises(SecretAccessDeniedError) as caught:
        api_credential(settings.default_tenant).authorization_header()
    assert "'mcas-client-secret'" in str(caught.value) and "Key Vault Secrets User" in str(caught.value)
    assert isinstance(caught.value, TerminalError)
    assert simulator.counters()["requests"]["keyvault"]["GET /secrets/{name}"] <= 2  # no retry loop
