"""Mistakes in the set-up, made on purpose against the simulator: each ends in one line on stderr that names
the setting (or host, or permission) to fix - never a traceback, never MSAL's text cut mid-word."""

from __future__ import annotations

import pytest

from mcasctl.cli import main
from shared.caches import reset_all_caches
from shared.settings import reset_settings_cache

ALERT_ID = "0123456789abcdef01234567"


def _run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], *argv: str
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    reset_all_caches()
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _error_line(err: str) -> str:
    [line] = [x for x in err.splitlines() if ": error: " in x]
    return line


def test_an_unknown_tenant_names_the_setting(app_env, monkeypatch, capsys):
    code, _, err = _run(
        monkeypatch, capsys, {"MCAS_TENANT_ID": "11111111-2222-3333-4444-555555555555"}, "token"
    )
    line = _error_line(err)
    assert code == 1 and "does not know the tenant '11111111-2222-3333-4444-555555555555'" in line
    assert "MCAS_TENANT_ID" in line and line.endswith("for sovereign clouds")


def test_a_secret_name_key_vault_cannot_hold_is_explained(app_env, monkeypatch, capsys):
    code, _, err = _run(monkeypatch, capsys, {"MCAS_CLIENT_SECRET_NAME": "mcas_client_secret"}, "token")
    line = _error_line(err)
    assert code == 1 and "'mcas_client_secret' is not a valid Key Vault secret name" in line
    assert "MCAS_CLIENT_SECRET_NAME" in line and "HTTP 400" not in line


def test_a_missing_ca_bundle_names_the_variable(app_env, monkeypatch, capsys, tmp_path):
    missing = str(tmp_path / "no-such-ca.pem")
    code, _, err = _run(monkeypatch, capsys, {"REQUESTS_CA_BUNDLE": missing}, "-v", "token")
    assert code == 1 and f"REQUESTS_CA_BUNDLE names {missing}, which is not a file" in _error_line(err)


def test_an_untrusted_certificate_shows_the_tls_error(app_env, monkeypatch, capsys):
    import certifi

    code, _, err = _run(monkeypatch, capsys, {"REQUESTS_CA_BUNDLE": certifi.where()}, "token")
    line = _error_line(err)
    assert code == 1 and "TLS with Key Vault https://127.0.0.1:" in line
    assert "certificate" in line and "REQUESTS_CA_BUNDLE" in line


def test_an_unreachable_api_host_is_named(app_env, monkeypatch, capsys):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = _run(
        monkeypatch,
        capsys,
        {"MCAS_API_URL": f"https://127.0.0.1:{port}"},
        "alerts",
        "close",
        "benign",
        ALERT_ID,
    )
    line = _error_line(err)
    assert code == 1 and f"cannot connect to 127.0.0.1:{port} (Connection refused)" in line
    assert "MCAS_API_URL" in line


def test_a_403_names_the_permission_needed(app_env, simulator, monkeypatch, capsys):
    env = {
        "MCAS_CLIENT_ID": simulator.client_id("readonly"),  # granted Investigation.read only
        "MCAS_CLIENT_SECRET_NAME": "mcas-readonly-client-secret",
    }
    code, _, err = _run(monkeypatch, capsys, env, "alerts", "close", "benign", ALERT_ID, "--reason", "2")
    line = _error_line(err)
    assert code == 1 and "HTTP 403" in line and "needs the Investigation.manage" in line


def test_a_secret_stored_with_a_trailing_newline_still_works_with_a_warning(
    app_env, simulator, monkeypatch, capsys
):
    original = simulator.secret_value("mcas-client-secret")
    simulator.set_secret(
        "mcas-client-secret", original + "\n"
    )  # what `... -o tsv | --file /dev/stdin` stores
    try:
        code, out, err = _run(monkeypatch, capsys, {}, "token", "--json")
    finally:
        simulator.set_secret("mcas-client-secret", original)
        reset_all_caches()
    assert code == 0 and '"mode": "application"' in out
    assert "Key Vault secret 'mcas-client-secret' ends with a line break; ignoring it" in err
    assert original not in err
