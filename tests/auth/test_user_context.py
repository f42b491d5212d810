"""User context (ROPC, device code, on-behalf-of), against the simulator over HTTPS."""

from __future__ import annotations

import stat

import pytest

from shared.auth import TokenRequestError, api_credential
from shared.auth.factory import device_code_login, device_code_logout
from shared.caches import reset_all_caches
from shared.errors import ConfigurationError
from tests.fixtures.auth import api_status


@pytest.fixture(scope="module")
def simulator(isolated_simulator):
    """This module rotates credentials / revokes tokens: a private simulator (tests/fixtures/auth.py)."""
    return isolated_simulator


DELEGATED = ("Discovery.manage", "Discovery.read", "Investigation.manage", "Investigation.read")


def test_ropc_with_username_and_password_from_key_vault(auth_settings, simulator) -> None:
    settings = auth_settings("user")
    credential = api_credential(settings.default_tenant)
    assert api_status(simulator, credential.authorization_header()) == 200
    description = credential.describe()
    assert description.mode == "user"
    assert description.scopes == DELEGATED
    assert description.user == simulator.info["users"]["analyst"]["username"]
    assert "ROPC" in description.credential
    counters = simulator.counters()
    assert counters["tokens"]["password"] == 1
    assert counters["keyvault_reads"] == {"mcas-user-name": 1, "mcas-user-password": 1}


def test_ropc_refreshes_silently_after_invalidate(auth_settings, simulator) -> None:
    settings = auth_settings("user")
    credential = api_credential(settings.default_tenant)
    first = credential.authorization_header()
    credential.invalidate()
    second = credential.authorization_header()
    assert second != first
    tokens = simulator.counters()["tokens"]
    assert tokens["password"] == 1 and tokens["refresh_token"] == 1


def test_ropc_rotated_password_is_reread(auth_settings, simulator) -> None:
    settings = auth_settings("user")
    credential = api_credential(settings.default_tenant)
    credential.authorization_header()
    simulator.rotate_secret("mcas-user-password")
    simulator.revoke_tokens("public")  # access and refresh tokens gone: ROPC again, with the old password
    credential.invalidate()
    assert api_status(simulator, credential.authorization_header()) == 200
    assert simulator.counters()["keyvault_reads"]["mcas-user-password"] == 2


def test_device_code_login_persists_a_private_cache_used_by_later_workers(
    auth_settings, simulator, _isolated_config_dir
) -> None:

    settings = auth_settings("user")
    prompts = []

    def approve(prompt) -> None:
        prompts.append(prompt)
        simulator.approve_device_code(prompt.user_code, "analyst")

    description = device_code_login(settings, settings.default_tenant, approve)
    assert prompts and prompts[0].user_code in prompts[0].message
    assert description.user == simulator.info["users"]["analyst"]["username"]
    cache = _isolated_config_dir / "mcasctl" / "msal_token_cache.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700

    reset_all_caches()  # a new worker / a new mcasctl process
    fresh = api_credential(settings.default_tenant, settings=settings)
    assert api_status(simulator, fresh.authorization_header()) == 200
    assert "device code" in fresh.describe().credential
    counters = simulator.counters()
    assert counters["tokens"] == {"device_code": 1}  # the signed-in operator, no ROPC
    assert "keyvault_reads" not in counters

    assert device_code_logout(settings, settings.default_tenant) == cache
    assert not cache.exists()
    after = api_credential(settings.default_tenant, settings=settings)
    assert api_status(simulator, after.authorization_header()) == 200
    assert simulator.counters()["tokens"]["password"] == 1  # back to ROPC from Key Vault


def test_device_code_login_requires_user_mode(auth_settings) -> None:
    settings = auth_settings("application")
    with pytest.raises(ConfigurationError, match="MCAS_AUTH_MODE"):
        device_code_login(settings, settings.default_tenant, lambda prompt: None)


def _user_token_for(simulator, app_key: str) -> str:
    app = simulator.info["apps"][app_key]
    return str(
        simulator.mint_token(app="public", audience=app["client_id"], user="analyst", scp="access_as_user")
    )


def test_on_behalf_of_the_calling_analyst(auth_settings, simulator) -> None:
    settings = auth_settings("application")
    assertion = _user_token_for(simulator, "daemon")
    credential = api_credential(settings.default_tenant, user_assertion=assertion)
    assert api_status(simulator, credential.authorization_header()) == 200
    description = credential.describe()
    assert description.mode == "on_behalf_of"
    assert description.user == simulator.info["users"]["analyst"]["username"]
    assert description.scopes == DELEGATED
    # The same bearer token again: cached, no second OBO request; another analyst token: its own credential.
    assert api_credential(settings.default_tenant, user_assertion=assertion) is credential
    credential.authorization_header()
    assert simulator.counters()["tokens"]["on_behalf_of"] == 1


def test_on_behalf_of_through_a_separate_webhook_api_app(auth_settings, simulator) -> None:
    settings = auth_settings(
        "application",
        MCAS_OBO_CLIENT_ID=simulator.client_id("webhook_api"),
        MCAS_OBO_CLIENT_SECRET_NAME="webhook-api-client-secret",
    )
    credential = api_credential(
        settings.default_tenant, user_assertion=_user_token_for(simulator, "webhook_api")
    )
    assert api_status(simulator, credential.authorization_header()) == 200
    assert credential.describe().client_id == simulator.client_id("webhook_api")


def test_on_behalf_of_rejects_an_expired_assertion(auth_settings, simulator) -> None:
    settings = auth_settings("application")
    expired = simulator.mint_token(
        app="public",
        audience=simulator.client_id("daemon"),
        user="analyst",
        scp="access_as_user",
        expired=True,
    )
    with pytest.raises(TokenRequestError) as caught:
        api_credential(settings.default_tenant, user_assertion=expired).authorization_header()
    assert caught.value.error == "invalid_grant" and 500133 in caught.value.codes


def test_on_behalf_of_needs_a_confidential_client_in_user_mode(auth_settings, simulator) -> None:
    settings = auth_settings("user")
    with pytest.raises(ConfigurationError, match="MCAS_OBO_CLIENT_ID"):
        api_credential(settings.default_tenant, user_assertion=_user_token_for(simulator, "daemon"))
