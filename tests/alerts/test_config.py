"""The alert settings: defaults, sinks, durations and the webhook URL rules."""

from __future__ import annotations

import pytest

from shared.alerts.config import AlertConfig, parse_sinks, validate_webhook_url
from shared.errors import ConfigurationError
from shared.settings import Settings
from shared.timeparse import setting_seconds


def _settings(**extra: str) -> Settings:
    env = {
        "MCAS_API_URL": "https://contoso.us2.portal.cloudappsecurity.com",
        "MCAS_TENANT_ID": "tid",
        "MCAS_CLIENT_ID": "cid",
        "MCAS_KEY_VAULT_URL": "https://kv.vault.azure.net",
        **extra,
    }
    return Settings.from_env(env)


def test_alert_settings_defaults_and_validation():
    config = AlertConfig.from_settings(_settings())
    assert (config.sinks, config.first_fetch_lookback_s, config.max_pages_per_run) == ((), 86400, 100)
    assert (config.time_budget_s, config.settle_s, config.lease_s) == (480, 60, 120)
    assert parse_sinks("queue, blob,queue") == ("queue", "blob") and parse_sinks("none") == ()
    assert setting_seconds("90m", name="x") == 5400 and setting_seconds("7d", name="x") == 604800
    with pytest.raises(ConfigurationError, match="MCAS_ALERT_SINKS"):
        AlertConfig.from_settings(_settings(MCAS_ALERT_SINKS="queue,kafka"))
    with pytest.raises(ConfigurationError, match="MCAS_ALERT_WEBHOOK_URL"):
        AlertConfig.from_settings(_settings(MCAS_ALERT_SINKS="webhook"))
    with pytest.raises(ConfigurationError, match="https"):
        validate_webhook_url("http://soar.example/hook", allow_loopback=True)
    with pytest.raises(ConfigurationError, match="loopback"):
        validate_webhook_url("https://127.0.0.1:8443/hook", allow_loopback=False)
    assert validate_webhook_url("https://127.0.0.1:8443/hook", allow_loopback=True)
    with pytest.raises(ConfigurationError, match="MCAS_FIRST_FETCH_LOOKBACK"):
        AlertConfig.from_settings(_settings(MCAS_FIRST_FETCH_LOOKBACK="yesterday"))
    with pytest.raises(ConfigurationError, match="MCAS_ALERTS_MAX_PAGES_PER_RUN"):
        AlertConfig.from_settings(_settings(MCAS_ALERTS_MAX_PAGES_PER_RUN="0"))
