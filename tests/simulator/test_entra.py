"""Simulated Entra ID over real HTTPS with real msal / azure-identity: discovery, grants, Entra's errors."""

from __future__ import annotations

import base64
import ssl
import time

import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    CertificateCredential,
    ClientAssertionCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
)

from localdev.pki import load_client_certificate, make_client_certificate
from localdev.simulator.client import skip_msal_user_realm_discovery

MDA = "05a65629-4c1b-48c1-a78b-804c4abdd4af"
MDA_DEFAULT = [f"{MDA}/.default"]
MDA_READ = [f"{MDA}/Investigation.read"]

# msal deprecates ROPC for public clients; the product still documents it
# (https://learn.microsoft.com/defender-cloud-apps/api-authentication-user), so it is tested.
pytestmark = pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning")


def confidential(sim, app="daemon", credential=None):
    if credential is None:
        credential = sim.secret_value(
            {
                "daemon": "mcas-client-secret",
                "readonly": "mcas-readonly-client-secret",
                "webhook_api": "webhook-api-client-secret",
            }[app]
        )
    return msal.ConfidentialClientApplication(
        sim.client_id(app), client_credential=credential, authority=sim.authority, instance_discovery=False
    )


def public(sim):
    return msal.PublicClientApplication(
        sim.client_id("public"), authority=sim.authority, instance_discovery=False
    )


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def token_post(sim, **form):
    return requests.post(sim.token_endpoint, data=form, timeout=10)


# -- discovery and keys ----------------------------------------------------------------------


def test_discovery_and_jwks_validate_issued_tokens(simulator):
    config = requests.get(f"{simulator.authority}/v2.0/.well-known/openid-configuration", timeout=10).json()
    assert config["issuer"] == f"{simulator.authority}/v2.0"
    assert config["token_endpoint"] == simulator.token_endpoint
    assert config["device_authorization_endpoint"].endswith("/oauth2/v2.0/devicecode")
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    v1 = requests.get(f"{simulator.authority}/.well-known/openid-configuration", timeout=10).json()
    assert v1["token_endpoint"].endswith("/oauth2/token")

    token = confidential(simulator).acquire_token_for_client(MDA_DEFAULT)["access_token"]
    tls = ssl.create_default_context(cafile=simulator.bundle_file)  # PyJWKClient uses urllib, not requests
    key = jwt.PyJWKClient(config["jwks_uri"], ssl_context=tls).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=MDA, issuer=config["issuer"])
    assert claims["tid"] == simulator.tenant_id
    assert claims["appid"] == claims["azp"] == simulator.client_id("daemon")
    assert claims["roles"] == sorted(simulator.info["apps"]["daemon"]["roles"])
    assert claims["ver"] == "2.0" and claims["idtyp"] == "app"
    assert claims["exp"] - claims["iat"] == 3599


def test_unknown_tenant_fails_discovery_like_entra(simulator):
    response = requests.get(
        f"{simulator.authority_host}/not-a-tenant/v2.0/.well-known/openid-configuration", timeout=10
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_tenant" and body["error_codes"] == [90002]
    assert body["error_description"].startswith("AADSTS90002: Tenant 'not-a-tenant' not found")
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal.ConfidentialClientApplication(
            simulator.client_id(),
            client_credential="x",
            authority=f"{simulator.authority_host}/not-a-tenant",
            instance_discovery=False,
        )


# -- client credentials ----------------------------------------------------------------------


def test_client_secret_token_is_cached_by_msal(simulator):
    app = confidential(simulator)
    first = app.acquire_token_for_client(MDA_DEFAULT)
    second = app.acquire_token_for_client(MDA_DEFAULT)
    assert first["token_source"] == "identity_provider" and second["token_source"] == "cache"
    assert first["expires_in"] == 3599
    counters = simulator.counters()
    assert counters["requests"]["entra"] == {"discovery": 1, "token": 1}
    assert counters["tokens"] == {"client_credentials": 1}
    assert counters["client_auth"] == {"secret": 1}


def test_readonly_app_gets_only_its_role(simulator):
    token = confidential(simulator, "readonly").acquire_token_for_client(MDA_DEFAULT)["access_token"]
    assert claims_of(token)["roles"] == ["Investigation.read"]


def test_client_secret_basic_auth(simulator):
    secret = simulator.secret_value("mcas-client-secret")
    response = requests.post(
        simulator.token_endpoint,
        data={"grant_type": "client_credentials", "scope": MDA_DEFAULT[0]},
        auth=(simulator.client_id(), secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


def test_wrong_secret_is_invalid_client_7000215(simulator):
    result = confidential(simulator, credential="not-the-secret").acquire_token_for_client(MDA_DEFAULT)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(result)


def test_expired_secret_is_7000222_until_reset(simulator):
    simulator.expire_client_secret("daemon")
    result = confidential(simulator).acquire_token_for_client(MDA_DEFAULT)
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000222]
    simulator.reset()
    assert "access_token" in confidential(simulator).acquire_token_for_client(MDA_DEFAULT)


def test_unknown_app_is_unauthorized_client_700016(simulator):
    response = token_post(
        simulator,
        grant_type="client_credentials",
        client_id="00000000-1111-2222-3333-444444444444",
        client_secret="x",
        scope=MDA_DEFAULT[0],
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert response.json()["error_codes"] == [700016]


@pytest.mark.parametrize(
    ("form", "status", "error", "code"),
    [
        (
            {"grant_type": "client_credentials", "scope": f"{MDA}/Investigation.read"},
            400,
            "invalid_scope",
            1002012,
        ),
        ({"grant_type": "client_credentials"}, 400, "invalid_request", 900144),
        ({"grant_type": "authorization_code", "scope": MDA_DEFAULT[0]}, 400, "unsupported_grant_type", 70003),
        (
            {"grant_type": "client_credentials", "scope": "api://nothing-here/.default"},
            400,
            "invalid_resource",
            500011,
        ),
    ],
)
def test_request_errors(simulator, form, status, error, code):
    secret = simulator.secret_value("mcas-client-secret")
    response = token_post(simulator, client_id=simulator.client_id(), client_secret=secret, **form)
    assert response.status_code == status
    assert response.json()["error"] == error and response.json()["error_codes"] == [code]


def test_key_vault_scope_gives_a_vault_audience(simulator):
    token = confidential(simulator).acquire_token_for_client(["https://vault.azure.net/.default"])[
        "access_token"
    ]
    assert claims_of(token)["aud"] == "https://vault.azure.net"
    assert "roles" not in claims_of(token)


def test_v1_endpoint_with_resource(simulator):
    form = {
        "grant_type": "client_credentials",
        "client_id": simulator.client_id(),
        "client_secret": simulator.secret_value("mcas-client-secret"),
        "resource": MDA,
    }
    response = requests.post(f"{simulator.authority}/oauth2/token", data=form, timeout=10)
    body = response.json()
    assert response.status_code == 200, body
    assert body["resource"] == MDA
    assert body["expires_in"] == "3599" and int(body["expires_on"]) > time.time()


# -- certificate and federated credentials ---------------------------------------------------------------


def test_certificate_assertion_from_the_vault_pem(simulator):
    cert = load_client_certificate(simulator.secret_value("mcas-client-cert").encode())
    credential = {
        "private_key": cert.private_key_pem.decode(),
        "public_certificate": cert.certificate_pem.decode(),
    }
    result = confidential(simulator, credential=credential).acquire_token_for_client(
        MDA_DEFAULT
    )  # PS256, x5t#S256
    assert "access_token" in result, result
    assert claims_of(result["access_token"])["azpacr"] == "2"
    legacy = {"private_key": cert.private_key_pem.decode(), "thumbprint": cert.thumbprint_sha1}  # RS256, x5t
    assert "access_token" in confidential(simulator, credential=legacy).acquire_token_for_client(MDA_DEFAULT)
    assert simulator.counters()["client_auth"] == {"certificate": 2}


def test_certificate_credential_from_pfx(simulator, tmp_path):
    pfx = base64.b64decode(simulator.secret_value("mcas-client-cert-pfx"))
    credential = CertificateCredential(
        simulator.tenant_id,
        simulator.client_id(),
        certificate_data=pfx,
        authority=simulator.authority_host,
        disable_instance_discovery=True,
    )
    assert credential.get_token(MDA_DEFAULT[0]).token


def test_unregistered_certificate_is_rejected(simulator):
    stranger = make_client_certificate("stranger")
    credential = {"private_key": stranger.private_key_pem.decode(), "thumbprint": stranger.thumbprint_sha1}
    result = confidential(simulator, credential=credential).acquire_token_for_client(MDA_DEFAULT)
    assert result["error"] == "invalid_client" and result["error_codes"] == [700027]


def test_rotated_certificate_replaces_the_registered_one(simulator):
    old = load_client_certificate(simulator.secret_value("mcas-client-cert").encode())
    simulator.rotate_secret("mcas-client-cert")
    new = load_client_certificate(simulator.secret_value("mcas-client-cert").encode())
    assert new.thumbprint_sha1 != old.thumbprint_sha1
    stale = {"private_key": old.private_key_pem.decode(), "thumbprint": old.thumbprint_sha1}
    assert confidential(simulator, credential=stale).acquire_token_for_client(MDA_DEFAULT)["error_codes"] == [
        700027
    ]
    fresh = {"private_key": new.private_key_pem.decode(), "thumbprint": new.thumbprint_sha1}
    assert "access_token" in confidential(simulator, credential=fresh).acquire_token_for_client(MDA_DEFAULT)


def test_managed_identity_as_federated_credential(simulator, msi_env):
    mi = ManagedIdentityCredential()

    def assertion() -> str:
        return mi.get_token("api://AzureADTokenExchange/.default").token

    app = confidential(simulator, credential={"client_assertion": assertion})
    result = app.acquire_token_for_client(MDA_DEFAULT)
    assert "access_token" in result, result
    assert claims_of(result["access_token"])["roles"] == sorted(simulator.info["apps"]["daemon"]["roles"])
    azure_identity = ClientAssertionCredential(
        simulator.tenant_id,
        simulator.client_id(),
        assertion,
        authority=simulator.authority_host,
        disable_instance_discovery=True,
    )
    assert azure_identity.get_token(MDA_DEFAULT[0]).token
    assert simulator.counters()["client_auth"] == {"federated": 2}


def test_federated_assertion_for_another_subject_or_audience_is_refused(simulator):
    other_subject = simulator.mint_token(app="readonly", audience="api://AzureADTokenExchange")
    result = confidential(
        simulator, credential={"client_assertion": lambda: other_subject}
    ).acquire_token_for_client(MDA_DEFAULT)
    assert result["error"] == "invalid_client" and result["error_codes"] == [700213]
    wrong_audience = simulator.mint_token(app="daemon", audience=MDA)
    result = confidential(
        simulator, credential={"client_assertion": lambda: wrong_audience}
    ).acquire_token_for_client(MDA_DEFAULT)
    assert result["error_codes"] == [700212]


def test_client_secret_credential_for_key_vault(simulator):
    credential = ClientSecretCredential(
        simulator.tenant_id,
        simulator.client_id(),
        simulator.secret_value("mcas-client-secret"),
        authority=simulator.authority_host,
        disable_instance_discovery=True,
    )
    assert claims_of(credential.get_token("https://vault.azure.net/.default").token)["aud"] == (
        "https://vault.azure.net"
    )
    wrong = ClientSecretCredential(
        simulator.tenant_id,
        simulator.client_id(),
        "wrong",
        authority=simulator.authority_host,
        disable_instance_discovery=True,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        wrong.get_token("https://vault.azure.net/.default")


# -- user context ----------------------------------------------------------------------


@pytest.fixture
def ropc(simulator):
    skip_msal_user_realm_discovery()
    return public(simulator)


def test_ropc_user_token_then_silent_and_refresh(simulator, ropc):
    user = simulator.info["users"]["analyst"]
    result = ropc.acquire_token_by_username_password(user["username"], user["password"], scopes=MDA_READ)
    assert "access_token" in result, result
    claims = claims_of(result["access_token"])
    assert claims["scp"] == "Investigation.read" and claims["upn"] == user["username"]
    assert claims["idtyp"] == "user" and "roles" not in claims
    account = ropc.get_accounts(username=user["username"])[0]
    assert ropc.acquire_token_silent(MDA_READ, account=account)["token_source"] == "cache"
    manage = ropc.acquire_token_silent([f"{MDA}/Investigation.manage"], account=account)  # via refresh token
    assert claims_of(manage["access_token"])["scp"] == "Investigation.manage"
    assert simulator.counters()["tokens"] == {"password": 1, "refresh_token": 1}


def test_ropc_bad_password_and_mfa_user(simulator, ropc):
    user = simulator.info["users"]["analyst"]
    bad = ropc.acquire_token_by_username_password(user["username"], "wrong-password", scopes=MDA_READ)
    assert bad["error"] == "invalid_grant" and bad["error_codes"] == [50126]
    assert bad["error_description"].startswith("AADSTS50126: Error validating credentials")
    mfa_user = simulator.info["users"]["mfa_analyst"]
    mfa = ropc.acquire_token_by_username_password(mfa_user["username"], mfa_user["password"], scopes=MDA_READ)
    assert mfa["error"] == "invalid_grant" and mfa["error_codes"] == [50076]
    assert "multi-factor authentication" in mfa["error_description"]


def test_device_code_pending_slow_down_then_approved(simulator):
    app = public(simulator)
    flow = app.initiate_device_flow(scopes=MDA_READ)
    assert flow["user_code"] in flow["message"] and flow["interval"] == 5

    def poll() -> dict:
        return app.acquire_token_by_device_flow(dict(flow), exit_condition=lambda _: True)

    assert poll()["error"] == "authorization_pending"
    assert poll()["error"] == "slow_down"
    pending = simulator.admin("GET", "/devicecode")["flows"]
    assert [f["user_code"] for f in pending] == [flow["user_code"]]
    simulator.approve_device_code(flow["user_code"], "analyst")
    result = poll()
    assert "access_token" in result, result
    assert claims_of(result["access_token"])["upn"] == simulator.info["users"]["analyst"]["username"]
    assert poll()["error"] == "invalid_grant"  # a device code is single use


def test_device_code_expired(simulator):
    app = public(simulator)
    flow = app.initiate_device_flow(scopes=MDA_READ)
    simulator.admin("POST", "/devicecode/expire", {"user_code": flow["user_code"]})
    result = app.acquire_token_by_device_flow(dict(flow), exit_condition=lambda _: True)
    assert result["error"] == "expired_token" and result["error_codes"] == [70020]


def test_on_behalf_of_turns_a_webhook_token_into_an_mda_user_token(simulator):
    user = simulator.mint_token(
        app="public", audience=simulator.client_id("webhook_api"), scp="access_as_user", user="analyst"
    )
    api = confidential(simulator, "webhook_api")
    result = api.acquire_token_on_behalf_of(user, scopes=[f"{MDA}/Investigation.manage"])
    assert "access_token" in result, result
    claims = claims_of(result["access_token"])
    assert claims["aud"] == MDA and claims["scp"] == "Investigation.manage"
    assert claims["upn"] == simulator.info["users"]["analyst"]["username"]
    assert claims["appid"] == simulator.client_id("webhook_api")

    not_for_this_api = simulator.mint_token(
        app="public", audience=MDA, scp="Investigation.read", user="analyst"
    )
    refused = api.acquire_token_on_behalf_of(not_for_this_api, scopes=MDA_READ)
    assert refused["error"] == "invalid_grant" and refused["error_codes"] == [500131]
    expired = simulator.mint_token(
        app="public",
        audience=simulator.client_id("webhook_api"),
        scp="access_as_user",
        user="analyst",
        expired=True,
    )
    assert api.acquire_token_on_behalf_of(expired, scopes=MDA_READ)["error_codes"] == [500133]


def test_public_client_gets_a_token_for_the_webhook_api(simulator, ropc):
    user = simulator.info["users"]["analyst"]
    scope = f"{simulator.info['apps']['webhook_api']['app_id_uri']}/access_as_user"
    result = ropc.acquire_token_by_username_password(user["username"], user["password"], scopes=[scope])
    assert claims_of(result["access_token"])["aud"] == simulator.client_id("webhook_api")


def test_injected_5xx_on_the_token_endpoint_then_recovery(simulator):
    """retry_after=0: MSAL would otherwise replay the 5xx from its throttle cache for Retry-After seconds."""
    simulator.add_fault(
        service="entra", error_rate=1.0, count=1, retry_after=0, path_prefix=f"/{simulator.tenant_id}/oauth2"
    )
    app = confidential(simulator)
    with pytest.raises(msal.exceptions.MsalServiceError, match="503"):  # MSAL raises on 5xx
        app.acquire_token_for_client(MDA_DEFAULT)
    assert "access_token" in app.acquire_token_for_client(MDA_DEFAULT)
    assert simulator.counters()["requests"]["entra"]["token"] == 2
