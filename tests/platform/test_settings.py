"""Settings are validated once, with errors that name the setting and say what is wrong."""

import json

import pytest

from shared.errors import ConfigurationError
from shared.settings import Settings, is_loopback_host

BASE = {
    "MCAS_API_URL": "https://contoso.us2.portal.cloudappsecurity.com",
    "MCAS_TENANT_ID": "11111111-1111-1111-1111-111111111111",
    "MCAS_CLIENT_ID": "22222222-2222-2222-2222-222222222222",
    "MCAS_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net",
}


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**BASE, **overrides})


def test_defaults_are_production_safe():
    s = settings()
    profile = s.default_tenant
    assert profile.auth_mode == "application"
    assert profile.client_secret_name == "mcas-client-secret"
    assert profile.legacy_token_name == "mcas-api-token"
    assert profile.rate_limit_per_minute == 30
    assert s.authority_host == "https://login.microsoftonline.com"
    assert s.allow_loopback is False
    assert s.verify_key_vault_challenge_resource is True


@pytest.mark.parametrize(
    "url",
    [
        "https://contoso.us2.portal.cloudappsecurity.com",
        "https://contoso.eu.portal.cloudappsecurity.com/",
        "https://contoso.portal.cloudappsecurity.com/api",
        "https://contoso.us1.portal.cloudappsecurity.us",
        "https://contoso.us1.portal.cloudappsecuritygov.com",
    ],
)
def test_documented_api_hosts_are_accepted_and_normalised(url):
    api_url = settings(MCAS_API_URL=url).default_tenant.api_url
    assert api_url.startswith("https://contoso.") and not api_url.endswith(("/", "/api"))


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://contoso.us2.portal.cloudappsecurity.com", "https://"),
        ("https://portal.cloudappsecurity.com", "tenant's own API URL"),
        ("https://evil.example.com", "not a Defender for Cloud Apps API host"),
        ("https://contoso.us2.portal.cloudappsecurity.com.evil.com", "not a Defender"),
        ("https://127.0.0.1:8443", "MCAS_ALLOW_LOOPBACK"),
        ("https://contoso.us2.portal.cloudappsecurity.com/other", "without a path"),
    ],
)
def test_bad_api_urls_name_the_setting(url, fragment):
    with pytest.raises(ConfigurationError) as info:
        settings(MCAS_API_URL=url)
    assert info.value.setting == "MCAS_API_URL"
    assert fragment in str(info.value)


def test_loopback_only_with_explicit_flag():
    s = settings(
        MCAS_ALLOW_LOOPBACK="true",
        MCAS_API_URL="https://127.0.0.1:9443",
        MCAS_AUTHORITY_HOST="https://localhost:9444",
        MCAS_KEY_VAULT_URL="https://127.0.0.1:9445",
    )
    assert s.default_tenant.api_url == "https://127.0.0.1:9443"
    assert s.verify_key_vault_challenge_resource is False
    with pytest.raises(ConfigurationError, match="MCAS_AUTHORITY_HOST"):
        settings(MCAS_AUTHORITY_HOST="https://localhost:9444")


def test_sovereign_authority_and_vault_hosts():
    s = settings(
        MCAS_AUTHORITY_HOST="https://login.microsoftonline.us",
        MCAS_KEY_VAULT_URL="https://kv.vault.usgovcloudapi.net",
    )
    assert s.authority_host == "https://login.microsoftonline.us"
    with pytest.raises(ConfigurationError, match="MCAS_AUTHORITY_HOST"):
        settings(MCAS_AUTHORITY_HOST="https://login.example.com")
    with pytest.raises(ConfigurationError, match="MCAS_KEY_VAULT_URL"):
        settings(MCAS_KEY_VAULT_URL="https://kv.example.com")


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("MCAS_AUTH_MODE", "magic", "must be one of"),
        ("MCAS_RATE_LIMIT_PER_MINUTE", "0", "greater than zero"),
        ("MCAS_RATE_LIMIT_PER_MINUTE", "lots", "whole number"),
        ("MCAS_ALLOW_LOOPBACK", "maybe", "true or false"),
        ("MCAS_TENANT_ID", "", "required"),
        ("MCAS_KEY_VAULT_URL", "", "required"),
    ],
)
def test_invalid_values_are_reported_by_name(name, value, fragment):
    with pytest.raises(ConfigurationError) as info:
        settings(**{name: value})
    assert info.value.setting == name
    assert fragment in str(info.value)


def test_legacy_mode_needs_no_app_registration():
    s = settings(MCAS_AUTH_MODE="legacy", MCAS_TENANT_ID="", MCAS_CLIENT_ID="")
    assert s.default_tenant.auth_mode == "legacy"


def test_tenant_profiles_inherit_and_must_be_unique():
    profiles = [
        {"name": "contoso"},
        {
            "name": "fabrikam",
            "api_url": "https://fabrikam.eu2.portal.cloudappsecurity.com",
            "rate_limit_per_minute": 20,
        },
    ]
    s = settings(MCAS_TENANT_PROFILES=json.dumps(profiles))
    assert [t.name for t in s.tenants] == ["contoso", "fabrikam"]
    assert s.tenant("contoso").api_url == "https://contoso.us2.portal.cloudappsecurity.com"
    assert s.tenant("fabrikam").rate_limit_per_minute == 20
    assert s.tenant("fabrikam").client_id == BASE["MCAS_CLIENT_ID"]
    with pytest.raises(ConfigurationError, match="unique"):
        settings(MCAS_TENANT_PROFILES=json.dumps([{"name": "a"}, {"name": "a"}]))
    with pytest.raises(ConfigurationError, match=r"MCAS_TENANT_PROFILES\[0\].API_URL"):
        settings(MCAS_TENANT_PROFILES=json.dumps([{"name": "a", "api_url": "https://x.example.com"}]))
    with pytest.raises(ConfigurationError, match="valid JSON"):
        settings(MCAS_TENANT_PROFILES="[{")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_detection(host, expected):
    assert is_loopback_host(host) is expected


def test_undocumented_clouds_need_an_explicit_api_host_suffix():
    dod = "https://contoso.portal.cloudappsecurity.example.mil"
    with pytest.raises(ConfigurationError, match="not a Defender for Cloud Apps API host"):
        settings(MCAS_API_URL=dod)
    s = settings(MCAS_API_URL=dod, MCAS_EXTRA_API_HOST_SUFFIXES=".portal.cloudappsecurity.example.mil")
    assert s.default_tenant.api_url == dod
    with pytest.raises(ConfigurationError, match="MCAS_EXTRA_API_HOST_SUFFIXES"):
        settings(MCAS_EXTRA_API_HOST_SUFFIXES="mil")
