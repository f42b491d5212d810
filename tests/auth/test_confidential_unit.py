"""ConfidentialClient recovery logic with a fake MSAL app: invalid_client -> re-read -> retry once."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from shared.auth.confidential import ConfidentialClient, SecretLoader
from shared.auth.errors import CredentialRejectedError, IdentityProviderUnavailableError, TokenRequestError
from shared.auth.keyvault import SecretStore

from .fakes import FakeReader

INVALID = {
    "error": "invalid_client",
    "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret... Trace ID: x",
    "error_codes": [7000215],
}


class FakeApp:
    """Accepts the secret held in `valid`; records the credential it was built with."""

    def __init__(self, world: dict[str, Any], credential: str) -> None:
        self.world = world
        self.credential = credential
        self.token_cache = object()

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        self.world["requests"] += 1
        failure = self.world["failures"].pop(0) if self.world["failures"] else None
        if isinstance(failure, Exception):
            raise failure
        if isinstance(failure, dict):
            return failure
        if self.credential != self.world["valid"]:
            return dict(INVALID)
        return {"access_token": "tok", "expires_in": 3599, "token_source": "identity_provider"}

    def remove_tokens_for_client(self) -> None:
        self.world["removed"] += 1


def _client(world: dict[str, Any], reader: FakeReader) -> ConfidentialClient:
    store = SecretStore(reader, vault_url="https://kv", ttl=900, attempts=2, backoff=0, sleep=lambda _s: None)

    def factory(client_id: str, *, client_credential: Any, **_kw: Any) -> FakeApp:
        world["builds"] += 1
        return FakeApp(world, client_credential)

    return ConfidentialClient(
        authority_host="https://login.example",
        tenant_id="tid",
        client_id="cid",
        loader=SecretLoader(store, "mcas-client-secret"),
        attempts=3,
        backoff=0,
        sleep=lambda _s: None,
        app_factory=factory,
    )


def _world(valid: str = "s1") -> dict[str, Any]:
    return {"valid": valid, "requests": 0, "builds": 0, "removed": 0, "failures": []}


def test_rotated_secret_is_reread_and_the_request_retried_once() -> None:
    world = _world("s1")
    reader = FakeReader({"mcas-client-secret": "s1"})
    client = _client(world, reader)
    assert client.acquire_for_client(["scope"]).value == "tok"
    # Rotation: Entra has a new secret; Key Vault too; our cache still holds the old one.
    world["valid"] = "s2"
    reader.values["mcas-client-secret"] = "s2"
    client.remove_tokens_for_client()
    assert client.acquire_for_client(["scope"]).value == "tok"
    assert world["builds"] == 2
    assert reader.reads == 2


def test_still_rejected_after_reread_names_secret_and_client_never_the_value() -> None:
    world = _world("the-right-one")
    reader = FakeReader({"mcas-client-secret": "wrong-secret-value"})
    with pytest.raises(CredentialRejectedError) as caught:
        _client(world, reader).acquire_for_client(["scope"])
    message = str(caught.value)
    assert "mcas-client-secret" in message and "cid" in message and "AADSTS7000215" in message
    assert "wrong-secret-value" not in message
    assert "Trace ID" not in message
    assert world["requests"] == 2


def test_network_errors_are_retried_then_reported() -> None:
    world = _world()
    world["failures"] = [requests.ConnectionError("refused")] * 2
    reader = FakeReader({"mcas-client-secret": "s1"})
    assert _client(world, reader).acquire_for_client(["scope"]).value == "tok"

    world = _world()
    world["failures"] = [requests.ConnectionError("refused")] * 5
    with pytest.raises(IdentityProviderUnavailableError, match="3 attempts"):
        _client(world, reader).acquire_for_client(["scope"])


def test_transient_oauth_errors_are_retried() -> None:
    world = _world()
    world["failures"] = [{"error": "temporarily_unavailable", "error_description": "AADSTS50001: busy"}]
    assert _client(world, FakeReader({"mcas-client-secret": "s1"})).acquire_for_client(["s"]).value == "tok"
    assert world["requests"] == 2


def test_other_errors_are_terminal_with_a_hint() -> None:
    world = _world()
    world["failures"] = [{"error": "unauthorized_client", "error_codes": [700016], "error_description": "x"}]
    with pytest.raises(TokenRequestError) as caught:
        _client(world, FakeReader({"mcas-client-secret": "s1"})).acquire_for_client(["s"])
    assert caught.value.codes == (700016,)
    assert "MCAS_CLIENT_ID" in str(caught.value)


def test_force_refresh_drops_msal_tokens() -> None:
    world = _world()
    client = _client(world, FakeReader({"mcas-client-secret": "s1"}))
    client.acquire_for_client(["s"])
    client.acquire_for_client(["s"], force_refresh=True)
    assert world["removed"] == 1
