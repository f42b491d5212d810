"""UserSource decisions that the simulator cannot show (its MFA user's password is not published)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.auth.errors import CredentialRejectedError, InteractionRequiredError
from shared.auth.keyvault import SecretStore
from shared.auth.public import UserSource

from .fakes import FakeReader


class FakePublicClient:
    tenant_id = "tid"
    client_id = "public-cid"
    authority = "https://login.example/tid"
    persisted = None

    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = results
        self.passwords: list[str] = []

    def acquire_silent(self, scopes, *, username, force_refresh):
        return None

    def acquire_by_password(self, username: str, password: str, scopes) -> dict[str, Any]:
        self.passwords.append(password)
        return self.results.pop(0)


def _source(client: FakePublicClient, reader: FakeReader) -> UserSource:
    store = SecretStore(reader, vault_url="https://kv", ttl=900, attempts=1, backoff=0)
    return UserSource(
        client,  # type: ignore[arg-type]
        scopes=["s/.default"],
        store=store,
        username_secret="mcas-user-name",
        password_secret="mcas-user-password",
        tenant_name="contoso",
    )


def _error(code: int, error: str = "invalid_grant") -> dict[str, Any]:
    return {"error": error, "error_codes": [code], "error_description": f"AADSTS{code}: nope. Trace ID: 1"}


def test_mfa_required_explains_ropc_limits() -> None:
    reader = FakeReader({"mcas-user-name": "u@x", "mcas-user-password": "pw-value"})
    with pytest.raises(InteractionRequiredError, match="ROPC cannot satisfy MFA") as caught:
        _source(FakePublicClient([_error(50076)]), reader).fetch(force_refresh=False)
    assert "pw-value" not in str(caught.value)


def test_bad_password_is_reread_once_then_reported_by_secret_names() -> None:
    reader = FakeReader({"mcas-user-name": "u@x", "mcas-user-password": "old-pw"})
    client = FakePublicClient([_error(50126), _error(50126)])
    with pytest.raises(CredentialRejectedError) as caught:
        _source(client, reader).fetch(force_refresh=False)
    message = str(caught.value)
    assert "mcas-user-password" in message and "public-cid" in message and "old-pw" not in message
    assert client.passwords == ["old-pw", "old-pw"]
    assert reader.reads == 4  # username + password, then both again bypassing the cache
