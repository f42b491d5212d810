"""Simulated Key Vault and managed identity over HTTPS/HTTP with azure-keyvault-secrets and azure-identity."""

from __future__ import annotations

import base64

import jwt
import msal
import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12

from localdev.pki import b64url, load_client_certificate

MDA_DEFAULT = ["05a65629-4c1b-48c1-a78b-804c4abdd4af/.default"]


@pytest.fixture(autouse=True)
def _fresh_challenge_cache():
    """The SDK caches Key Vault challenges per host for the whole process (private API, tests only)."""
    from azure.keyvault.secrets._shared import http_challenge_cache

    http_challenge_cache.clear()
    yield
    http_challenge_cache.clear()


def secret_credential(sim, app="daemon", secret_name="mcas-client-secret"):
    return ClientSecretCredential(
        sim.tenant_id,
        sim.client_id(app),
        sim.secret_value(secret_name),
        authority=sim.authority_host,
        disable_instance_discovery=True,
    )


def vault(sim, credential=None):
    return SecretClient(
        sim.key_vault_url, credential or secret_credential(sim), verify_challenge_resource=False
    )


def test_unauthenticated_request_gets_the_bearer_challenge(simulator):
    response = requests.get(
        f"{simulator.key_vault_url}/secrets/mcas-client-secret?api-version=7.5", timeout=10
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{simulator.authority}", resource="https://vault.azure.net"'
    )
    assert response.json()["error"]["code"] == "Unauthorized"


def test_secret_client_reads_latest_and_by_version_and_counts_reads(simulator):
    client = vault(simulator)
    latest = client.get_secret("mcas-api-token")
    assert len(latest.value) >= 64 and latest.value.isalnum()
    by_version = client.get_secret("mcas-api-token", latest.properties.version)
    assert by_version.value == latest.value
    assert latest.id == f"{simulator.key_vault_url}/secrets/mcas-api-token/{latest.properties.version}"
    counters = simulator.counters()
    assert counters["keyvault_reads"] == {"mcas-api-token": 2}
    assert counters["tokens"] == {"client_credentials": 1}  # one token for both reads
    assert counters["requests"]["keyvault"] == {"GET /secrets/{name}": 2, "GET /secrets/{name}/{version}": 1}


def test_missing_secret_is_404_secret_not_found(simulator):
    with pytest.raises(ResourceNotFoundError) as caught:
        vault(simulator).get_secret("no-such-secret")
    assert caught.value.error is not None and caught.value.error.code == "SecretNotFound"


def test_rotation_makes_a_new_version_and_changes_the_app_credential(simulator):
    client = vault(simulator)
    before = client.get_secret("mcas-client-secret")
    rotated = simulator.rotate_secret("mcas-client-secret")
    after = client.get_secret("mcas-client-secret")
    assert after.properties.version == rotated["version"] != before.properties.version
    assert client.get_secret("mcas-client-secret", before.properties.version).value == before.value

    def token_with(secret: str) -> dict:
        app = msal.ConfidentialClientApplication(
            simulator.client_id(),
            client_credential=secret,
            authority=simulator.authority,
            instance_discovery=False,
        )
        return app.acquire_token_for_client(MDA_DEFAULT)

    assert token_with(before.value)["error_codes"] == [7000215]
    assert "access_token" in token_with(after.value)


def test_set_secret_through_the_sdk(simulator):
    client = vault(simulator)
    created = client.set_secret("scratch-secret", "v1", content_type="text/plain")
    assert client.get_secret("scratch-secret").value == "v1"
    assert created.properties.content_type == "text/plain"
    versions = list(client.list_properties_of_secret_versions("scratch-secret"))
    assert [v.version for v in versions] == [created.properties.version]


def test_certificates_are_readable_as_secrets(simulator):
    client = vault(simulator)
    pem = client.get_secret("mcas-client-cert")
    assert pem.properties.content_type == "application/x-pem-file"
    assert "PRIVATE KEY" in pem.value and "BEGIN CERTIFICATE" in pem.value
    pfx = client.get_secret("mcas-client-cert-pfx")
    assert pfx.properties.content_type == "application/x-pkcs12"
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(pfx.value), None)
    assert key is not None and cert is not None
    token = secret_credential(simulator).get_token("https://vault.azure.net/.default").token
    raw = requests.get(
        f"{simulator.key_vault_url}/certificates/mcas-client-cert?api-version=7.5",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    assert raw["x5t"] == b64url(cert.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1
    pem_cert = load_client_certificate(pem.value.encode())
    assert raw["x5t"] == pem_cert.x5t  # the PEM and PFX secrets hold the same certificate


def test_wrong_audience_revoked_and_denied_callers(simulator):
    def get(token: str) -> requests.Response:
        return requests.get(
            f"{simulator.key_vault_url}/secrets/mcas-client-secret?api-version=7.5",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

    mda_token = simulator.mint_token(app="daemon", audience="05a65629-4c1b-48c1-a78b-804c4abdd4af")
    assert get(mda_token).status_code == 401 and "AKV10022" in get(mda_token).text
    token = secret_credential(simulator).get_token("https://vault.azure.net/.default").token
    assert get(token).status_code == 200
    simulator.admin("POST", "/keyvault/deny", {"principal": "daemon"})
    denied = get(token)
    assert denied.status_code == 403 and denied.json()["error"]["innererror"]["code"] == "ForbiddenByRbac"
    simulator.admin("POST", "/keyvault/allow", {"principal": "daemon"})
    simulator.revoke_tokens(simulator.client_id())
    assert get(token).status_code == 401


def test_key_vault_through_managed_identity(simulator, msi_env):
    client = vault(simulator, ManagedIdentityCredential())
    assert client.get_secret("mcas-user-name").value == simulator.info["users"]["analyst"]["username"]
    assert simulator.counters()["tokens"] == {"managed_identity": 1}


def test_msi_protocol_and_header_check(simulator):
    url = simulator.info["msi_endpoint"]
    params = {"api-version": "2019-08-01", "resource": "https://vault.azure.net"}
    header = {"X-IDENTITY-HEADER": simulator.info["msi_header"]}
    ok = requests.get(url, params=params, headers=header, timeout=10)
    assert ok.status_code == 200
    body = ok.json()
    assert body["resource"] == "https://vault.azure.net" and body["token_type"] == "Bearer"
    assert body["expires_on"].isdigit()
    assert (
        requests.get(url, params=params, headers={"X-IDENTITY-HEADER": "wrong"}, timeout=10).status_code
        == 400
    )
    assert requests.get(url, params=params, timeout=10).status_code == 400
    no_version = {"resource": "https://vault.azure.net"}
    header = {"X-IDENTITY-HEADER": simulator.info["msi_header"]}
    assert requests.get(url, params=no_version, headers=header, timeout=10).status_code == 400


def test_user_assigned_identity_and_token_exchange_subject(simulator, msi_env):
    user_mi = simulator.info["managed_identities"]["user"]
    credential = ManagedIdentityCredential(client_id=user_mi["client_id"])
    claims = jwt.decode(
        credential.get_token("api://AzureADTokenExchange/.default").token, options={"verify_signature": False}
    )
    assert claims["sub"] == user_mi["principal_id"] and claims["aud"] == "api://AzureADTokenExchange"
    with pytest.raises(HttpResponseError):
        ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000000").get_token(
            "https://vault.azure.net/.default"
        )
