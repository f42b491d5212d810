"""The tenant registry (`mcasTenants`) over Azurite, and `mcasctl tenants`: the same validation rules and
messages as the app settings, flat settings still define the default tenant, registry tenants add to it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mcasctl.cli import main
from shared.errors import ConfigurationError, ValidationError
from shared.settings import Settings, get_settings


@pytest.fixture
def reg(app_env: dict[str, str]) -> Iterator[Any]:
    from shared.storage import TABLE_TENANTS, table_client
    from shared.tenants.registry import registry

    table = table_client(TABLE_TENANTS)

    def clear() -> None:
        for row in list(table.list_entities()):
            table.delete_entity(row["PartitionKey"], row["RowKey"])

    clear()
    try:
        yield registry()
    finally:
        clear()


def _settings_error(env: dict[str, str], **overrides: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**env, **overrides})
    return caught.value.problem


def test_registry_rows_are_validated_with_the_settings_own_messages(reg, app_env, simulator):
    bad_url = "https://portal.cloudappsecurity.com"
    with pytest.raises(ConfigurationError) as caught:
        reg.add("acme", {"api_url": bad_url})
    assert caught.value.setting == "tenant acme: MCAS_API_URL"
    assert caught.value.problem == _settings_error(app_env, MCAS_API_URL=bad_url)
    with pytest.raises(ConfigurationError) as caught:
        reg.add("acme", {"api_url": simulator.api_url("fabrikam"), "auth_mode": "magic"})
    assert caught.value.problem == _settings_error(app_env, MCAS_AUTH_MODE="magic")
    with pytest.raises(ConfigurationError, match="MCAS_ALERT_SOURCE"):
        reg.add("acme", {"api_url": simulator.api_url("fabrikam"), "alert_source": "splunk"})
    with pytest.raises(ConfigurationError, match="MCAS_ALERT_SINKS"):
        reg.add("acme", {"api_url": simulator.api_url("fabrikam"), "sinks": "kafka"})
    with pytest.raises(ValidationError, match="unknown tenant fields"):
        reg.add("acme", {"api_url": simulator.api_url("fabrikam"), "password": "x"})
    with pytest.raises(ValidationError, match="already defined by the app settings"):
        reg.add(get_settings().default_tenant.name, {"api_url": simulator.api_url("fabrikam")})
    assert list(reg.entries()) == []  # nothing invalid was stored


def test_add_update_disable_remove_and_the_targets_the_pull_sees(reg, simulator):
    from shared.tenants.registry import all_targets

    default = get_settings().default_tenant.name
    reg.add("fab", {"api_url": simulator.api_url("fabrikam"), "sinks": ["blob"]})
    assert [t.name for t in all_targets()] == [default, "fab"]
    target = all_targets()[1]
    assert target.profile.api_url == simulator.api_url("fabrikam")
    assert target.profile.client_id == get_settings().default_tenant.client_id  # inherited
    assert target.sinks == ("blob",) and target.source == "registry"
    with pytest.raises(ValidationError, match="already in the registry"):
        reg.add("fab", {"api_url": simulator.api_url("fabrikam")})

    reg.update("fab", {"alert_source": "graph", "rate_limit_per_minute": "20"}, unset=["sinks"])
    updated = all_targets()[1]
    assert (updated.profile.alert_source, updated.profile.rate_limit_per_minute) == ("graph", 20)
    assert updated.sinks is None
    with pytest.raises(ConfigurationError, match="MCAS_RATE_LIMIT_PER_MINUTE"):
        reg.update("fab", {"rate_limit_per_minute": "0"})
    assert reg.get("fab").values["rate_limit_per_minute"] == "20"  # the invalid update changed nothing

    reg.set_enabled("fab", False)
    assert [t.name for t in all_targets()] == [default]
    reg.set_enabled("fab", True)
    reg.remove("fab")
    assert [t.name for t in all_targets()] == [default]
    with pytest.raises(ValidationError, match="no tenant named"):
        reg.remove("fab")


def test_mcasctl_tenants_commands_and_import(reg, simulator, monkeypatch, capsys):
    url = simulator.api_url("fabrikam")
    assert main(["tenants", "add", "fab", "--api-url", url, "--sinks", "blob,queue"]) == 0
    assert main(["tenants", "add", "bad", "--api-url", "http://example.com"]) == 1
    assert "tenant bad: MCAS_API_URL must be an https:// URL" in capsys.readouterr().err
    assert main(["tenants", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["source"]) for r in listed] == [
        (get_settings().default_tenant.name, "settings"),
        ("fab", "registry"),
    ]
    assert main(["tenants", "show", "fab", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["stored"]["sinks"] == ["blob", "queue"] and shown["effective"]["api_url"] == url
    assert main(["tenants", "disable", "fab"]) == 0
    assert main(["tenants", "remove", "fab"]) == 0
    capsys.readouterr()

    profiles = [
        {"name": "imp-a", "api_url": url},
        {"name": "imp-b", "api_url": url, "alert_source": "graph"},
    ]
    monkeypatch.setenv("MCAS_TENANT_PROFILES", json.dumps(profiles))
    assert main(["tenants", "import"]) == 0
    assert sorted(e.name for e in reg.entries()) == ["imp-a", "imp-b"]
    assert main(["tenants", "import"]) == 1  # already there; --replace overwrites
    assert main(["tenants", "import", "--replace"]) == 0
    monkeypatch.setenv("MCAS_TENANT_PROFILES", json.dumps([{"name": "x", "api_url": "https://nope.example"}]))
    assert main(["tenants", "import", "--replace"]) == 1
    assert "MCAS_API_URL" in capsys.readouterr().err
    assert sorted(e.name for e in reg.entries()) == ["imp-a", "imp-b"]
