"""Auth settings: defaults, validation messages naming the setting, sovereign-cloud defaults, cheap import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared.auth.config import AuthConfig
from shared.errors import ConfigurationError
from shared.settings import Settings

BASE = {
    "MCAS_API_URL": "https://contoso.us2.portal.cloudappsecurity.com",
    "MCAS_TENANT_ID": "00000000-0000-0000-0000-000000000001",
    "MCAS_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
    "MCAS_KEY_VAULT_URL": "https://kv-mcas.vault.azure.net",
}


def _config(**env: str) -> AuthConfig:
    return AuthConfig.from_settings(Settings.from_env({**BASE, **env}))


def test_defaults() -> None:
    config = _config()
    assert config.secret_cache_ttl == 900
    assert config.token_refresh_margin == 300
    assert config.retry_attempts == 4
    assert config.federated_audience == "api://AzureADTokenExchange"
    assert config.user_scopes == ("05a65629-4c1b-48c1-a78b-804c4abdd4af/.default",)
    profile = Settings.from_env(BASE).default_tenant
    assert config.credential_mode_for(profile) == "secret"


def test_certificate_name_selects_certificate_auth_automatically() -> None:
    settings = Settings.from_env({**BASE, "MCAS_CLIENT_CERTIFICATE_NAME": "mcas-cert"})
    assert AuthConfig.from_settings(settings).credential_mode_for(settings.default_tenant) == "certificate"


def test_us_government_authority_uses_the_us_gov_exchange_audience() -> None:
    config = _config(MCAS_AUTHORITY_HOST="https://login.microsoftonline.us")
    assert config.federated_audience == "api://AzureADTokenExchangeUSGov"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MCAS_CLIENT_CREDENTIAL_MODE", "password"),
        ("MCAS_SECRET_CACHE_TTL", "soon"),
        ("MCAS_AUTH_RETRY_ATTEMPTS", "0"),
        ("MCAS_TOKEN_REFRESH_MARGIN", "-1"),
        ("MCAS_CLIENT_CERTIFICATE_SEND_X5C", "maybe"),
        ("MCAS_USER_SCOPES", " , "),
    ],
)
def test_invalid_values_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _config(**{name: value})
    assert caught.value.setting == name


def test_certificate_mode_needs_a_certificate_name() -> None:
    settings = Settings.from_env({**BASE, "MCAS_CLIENT_CREDENTIAL_MODE": "certificate"})
    with pytest.raises(ConfigurationError, match="MCAS_CLIENT_CERTIFICATE_NAME"):
        AuthConfig.from_settings(settings).credential_mode_for(settings.default_tenant)


def test_building_a_credential_imports_no_heavy_sdk() -> None:
    """Cold start: MSAL, azure-identity and the Key Vault SDK load on the first token request, not before."""
    code = (
        "import sys\n"
        "from shared.auth import api_credential\n"
        "from shared.settings import Settings\n"
        f"settings = Settings.from_env({BASE!r})\n"
        "api_credential(settings.default_tenant, settings=settings)\n"
        "heavy = [m for m in ('msal', 'azure.identity', 'azure.keyvault.secrets', 'requests', 'cryptography')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
