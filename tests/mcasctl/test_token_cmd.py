"""`mcasctl token` / `login` / `logout`: what they print (never the token) and their exit codes."""

from __future__ import annotations

import json
import threading
import time

from mcasctl import cli
from shared.caches import reset_all_caches
from shared.settings import reset_settings_cache


def test_token_json_describes_the_token_without_printing_it(auth_settings, simulator, capsys) -> None:
    auth_settings()
    assert cli.main(["token", "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["mode"] == "application"
    assert data["tenant"] == "contoso" and data["tenant_id"] == simulator.tenant_id
    assert data["client_id"] == simulator.client_id("daemon")
    assert data["audience"] == "05a65629-4c1b-48c1-a78b-804c4abdd4af"
    assert data["roles"] == ["Discovery.manage", "Investigation.manage", "Investigation.read"]
    assert data["source"] == "identity_provider"
    assert data["expires_on"]
    assert "eyJ" not in out


def test_token_human_output_and_cache_source(auth_settings, capsys) -> None:
    auth_settings()
    assert cli.main(["token"]) == 0
    assert cli.main(["token"]) == 0  # same process: the cached token
    out = capsys.readouterr().out
    assert "mode:" in out and "roles:" in out and "expires:" in out
    assert "source:     identity_provider" in out and "source:     cache" in out
    assert "eyJ" not in out


def test_token_failure_is_one_line_on_stderr(auth_settings, simulator, capsys) -> None:
    auth_settings(MCAS_AUTH_RETRY_ATTEMPTS="1")
    simulator.add_fault(service="keyvault", error_rate=1.0, status=503)
    assert cli.main(["token"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("mcasctl token: error: could not read secret 'mcas-client-secret'")


def test_token_unknown_tenant_profile(auth_settings, capsys) -> None:
    auth_settings()
    assert cli.main(["token", "--tenant", "nope"]) == 1
    assert "no tenant profile named 'nope'" in capsys.readouterr().err


def test_token_legacy_mode(auth_settings, capsys) -> None:
    auth_settings("legacy")
    assert cli.main(["token", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["mode"], data["scheme"], data["source"], data["expires_on"]) == (
        "legacy",
        "Token",
        "key_vault",
        None,
    )


def test_login_with_device_code_then_token_then_logout(simulator_factory, monkeypatch, capsys) -> None:
    sim = simulator_factory(device_code_interval=1, mda_tenants=["contoso"])
    for name, value in sim.app_env("contoso", auth_mode="user", MCAS_AUTH_RETRY_BACKOFF="0.01").items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    reset_all_caches()

    def approve_when_pending() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            flows = sim.admin("GET", "/devicecode")["flows"]
            if flows:
                sim.approve_device_code(flows[0]["user_code"], "analyst")
                return
            time.sleep(0.05)

    approver = threading.Thread(target=approve_when_pending)
    approver.start()
    try:
        assert cli.main(["login", "--json", "--timeout", "30"]) == 0
    finally:
        approver.join()
    captured = capsys.readouterr()
    assert "enter the code" in captured.err
    assert json.loads(captured.out)["user"] == sim.info["users"]["analyst"]["username"]

    reset_all_caches()  # `mcasctl token` in a new process uses the signed-in operator
    assert cli.main(["token", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "user" and "device code" in data["credential"]
    assert sim.counters()["tokens"].get("password", 0) == 0

    assert cli.main(["logout"]) == 0
    assert "signed out" in capsys.readouterr().out
    reset_settings_cache()
    reset_all_caches()
