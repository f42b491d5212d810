"""Building an MSAL app runs tenant discovery, with one rule for the confidential and the public client: an
authority MSAL cannot use is a terminal error naming the client, transient failures are retried and end
in one error naming the authority to check."""

from __future__ import annotations

import pytest
import requests

from shared.auth.errors import IdentityProviderUnavailableError, TokenRequestError
from shared.auth.msal_support import IdentityProviderRetry

AUTHORITY = "https://login.example.test/11111111-2222-3333-4444-555555555555"


def _retry(attempts: int = 3) -> IdentityProviderRetry:
    return IdentityProviderRetry(AUTHORITY, attempts, 0.0, sleep=lambda _s: None)


def test_an_unusable_authority_is_terminal_and_names_the_client() -> None:
    calls = []

    def construct() -> object:
        calls.append(1)
        raise ValueError("Unable to get authority configuration for " + AUTHORITY)

    with pytest.raises(TokenRequestError) as caught:
        _retry().build_app(construct, client="public client cid", transient="tenant discovery")
    assert str(caught.value).startswith(f"cannot use authority {AUTHORITY} for public client cid: ")
    assert calls == [1]  # not retried


def test_transient_failures_are_retried_then_name_the_authority() -> None:
    outcomes: list[object] = [requests.ConnectionError("reset"), "app"]

    def construct() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert _retry().build_app(construct, client="client cid", transient="tenant discovery") == "app"

    def always_down() -> object:
        raise requests.ConnectionError("refused")

    with pytest.raises(IdentityProviderUnavailableError) as caught:
        _retry(attempts=2).build_app(
            always_down, client="client cid", transient=f"tenant discovery at {AUTHORITY}"
        )
    assert str(caught.value) == (
        f"tenant discovery at {AUTHORITY} failed after 2 attempts (tenant discovery at {AUTHORITY}: "
        f"ConnectionError); check that {AUTHORITY} is reachable"
    )


def test_the_public_client_names_itself_for_an_unknown_tenant(app_env, simulator) -> None:
    from shared.auth.public import PublicClient

    client = PublicClient(
        authority_host=simulator.authority_host,
        tenant_id="11111111-2222-3333-4444-555555555555",
        client_id="public-cid",
        persisted=None,
        attempts=1,
        backoff=0.0,
    )
    with pytest.raises(TokenRequestError) as caught:
        client.acquire_by_password("user@contoso.test", "not-used", ["api://x/.default"])
    message = str(caught.value)
    assert message.startswith(f"cannot use authority {client.authority} for public client public-cid: ")
    assert "does not know the tenant '11111111-2222-3333-4444-555555555555'" in message
    assert "not-used" not in message
