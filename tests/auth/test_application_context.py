"""Application context against the simulator over HTTPS: every client credential kind, and the single
flight."""

from __future__ import annotations

import threading

import pytest
import requests

from shared.auth import api_credential

ROLES = ("Discovery.manage", "Investigation.manage", "Investigation.read")


def _alerts_status(simulator, header: str) -> int:
    """Use the header against the simulated MDA API: 200 proves the token is really accepted."""
    response = requests.get(
        f"{simulator.api_url('contoso')}/api/v1/alerts/", headers={"Authorization": header}, timeout=10
    )
    return response.status_code


@pytest.mark.parametrize(
    ("overrides", "kind", "client_auth"),
    [
        ({}, "client secret", "secret"),
        ({"MCAS_CLIENT_CERTIFICATE_NAME": "mcas-client-cert"}, "certificate", "certificate"),
        ({"MCAS_CLIENT_CERTIFICATE_NAME": "mcas-client-cert-pfx"}, "certificate", "certificate"),
        (
            {"MCAS_CLIENT_CERTIFICATE_NAME": "mcas-client-cert", "MCAS_CLIENT_CERTIFICATE_SEND_X5C": "true"},
            "certificate",
            "certificate",
        ),
        ({"MCAS_CLIENT_CREDENTIAL_MODE": "managed_identity"}, "managed identity", "federated"),
    ],
    ids=["secret", "certificate-pem", "certificate-pfx", "certificate-x5c", "managed-identity-fic"],
)
def test_each_client_credential_kind_gets_an_accepted_token(
    auth_settings, simulator, overrides, kind, client_auth
) -> None:
    settings = auth_settings(**overrides)
    credential = api_credential(settings.default_tenant)
    header = credential.authorization_header()
    assert header.startswith("Bearer ")
    assert _alerts_status(simulator, header) == 200
    description = credential.describe()
    assert description.mode == "application"
    assert kind in description.credential
    assert description.roles == ROLES
    assert description.audience == "05a65629-4c1b-48c1-a78b-804c4abdd4af"
    assert description.client_id == simulator.client_id("daemon")
    counters = simulator.counters()
    assert counters["client_auth"] == {client_auth: 1}
    assert counters["tokens"]["client_credentials"] == 1


def test_user_assigned_managed_identity_as_federated_credential(
    auth_settings, simulator, monkeypatch
) -> None:
    identity = simulator.info["managed_identities"]["user"]["client_id"]
    monkeypatch.setenv("AZURE_CLIENT_ID", identity)
    settings = auth_settings(MCAS_CLIENT_CREDENTIAL_MODE="managed_identity")
    header = api_credential(settings.default_tenant).authorization_header()
    assert _alerts_status(simulator, header) == 200
    assert simulator.counters()["tokens_by_client"].get(identity, 0) >= 1


def test_cold_burst_of_64_callers_makes_one_token_request_and_one_key_vault_read(
    auth_settings, simulator
) -> None:
    settings = auth_settings()
    barrier = threading.Barrier(64)
    headers: list[str] = []
    errors: list[BaseException] = []

    def invocation() -> None:
        barrier.wait()
        try:
            headers.append(api_credential(settings.default_tenant).authorization_header())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=invocation) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(headers) == 64 and len(set(headers)) == 1
    counters = simulator.counters()
    assert counters["tokens"] == {"client_credentials": 1, "managed_identity": 1}
    assert counters["keyvault_reads"] == {"mcas-client-secret": 1}
    assert counters["requests"]["entra"] == {"discovery": 1, "token": 1}


def test_the_same_credential_object_is_shared_per_profile(auth_settings) -> None:
    settings = auth_settings()
    assert api_credential(settings.default_tenant) is api_credential(settings.default_tenant)
