"""Graph source settings: loopback Graph URLs only with MCAS_ALLOW_LOOPBACK; record schema version 1 or 2."""

import pytest

from shared.alerts.config import AlertConfig
from shared.errors import ConfigurationError
from shared.settings import Settings

BASE = {
    "MCAS_API_URL": "https://contoso.us2.portal.cloudappsecurity.com",
    "MCAS_TENANT_ID": "11111111-1111-1111-1111-111111111111",
    "MCAS_CLIENT_ID": "22222222-2222-2222-2222-222222222222",
    "MCAS_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net",
}


def test_a_loopback_graph_url_needs_allow_loopback() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**BASE, "MCAS_ALERT_SOURCE": "graph", "MCAS_GRAPH_URL": "https://127.0.0.1:8443"})
    assert caught.value.setting == "MCAS_GRAPH_URL"
    allowed = Settings.from_env(
        {**BASE, "MCAS_GRAPH_URL": "https://127.0.0.1:8443", "MCAS_ALLOW_LOOPBACK": "true"}
    )
    profile = allowed.default_tenant
    assert profile.graph_url == "https://127.0.0.1:8443"
    assert profile.graph_token_scope == "https://127.0.0.1:8443/.default"
    with pytest.raises(ConfigurationError):
        Settings.from_env({**BASE, "MCAS_GRAPH_URL": "http://graph.microsoft.com"})


def test_schema_version_defaults_to_2_and_accepts_only_1_or_2() -> None:
    assert AlertConfig.from_settings(Settings.from_env(BASE)).schema_version == 2
    assert (
        AlertConfig.from_settings(
            Settings.from_env({**BASE, "MCAS_ALERT_SCHEMA_VERSION": "1"})
        ).schema_version
        == 1
    )
    with pytest.raises(ConfigurationError) as caught:
        AlertConfig.from_settings(Settings.from_env({**BASE, "MCAS_ALERT_SCHEMA_VERSION": "3"}))
    assert caught.value.setting == "MCAS_ALERT_SCHEMA_VERSION"
