"""Run every auth flow - including failures - with DEBUG logging everywhere and `mcasctl token` output, then
assert that no secret value, token, assertion, refresh token or signature appears in any log record or output.

Secret values come from the simulated Key Vault itself (admin API), tokens from what the flows returned and
from the persisted MSAL cache; any JWT-shaped string at all counts as a leak."""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Iterator

import pytest

from mcasctl import cli
from shared.auth import AuthenticationError, api_credential
from shared.auth.factory import device_code_login
from shared.auth.redaction import install_redaction, uninstall_redaction
from shared.caches import reset_all_caches


@pytest.fixture(scope="module")
def simulator(isolated_simulator):
    """This module rotates credentials / revokes tokens: a private simulator (tests/fixtures/auth.py)."""
    return isolated_simulator


JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}")


@pytest.fixture
def redaction_installed() -> Iterator[None]:
    install_redaction()
    try:
        yield
    finally:
        uninstall_redaction()


def mcasctl(argv: list[str]) -> int:
    """`mcasctl ...` as a fresh process would run it (no credentials cached from earlier steps)."""
    reset_all_caches()
    return cli.main(argv)


def _vault_values(simulator) -> set[str]:
    values = set()
    for name in simulator.info["secrets"].values():
        value = simulator.secret_value(name)
        if name == "mcas-user-name":
            continue  # a UPN: shown on purpose by `mcasctl token` (user:), not a secret
        values.add(value)
        if "PRIVATE KEY" in value:  # also each line of the key body
            values.update(
                line for line in value.splitlines() if len(line) > 20 and not line.startswith("-----")
            )
        elif len(value) > 200:  # base64 PFX: any 40-char window would do; check a few
            values.update(value[i : i + 40] for i in range(0, len(value) - 40, 400))
    return values


def test_no_secret_token_or_assertion_in_logs_or_output(
    auth_settings, simulator, caplog, capsys, redaction_installed, _isolated_config_dir
) -> None:

    secrets: set[str] = set(_vault_values(simulator))
    errors: list[str] = []

    def run(fn) -> None:
        try:
            header = fn()
            if isinstance(header, str):
                secrets.add(header.split(" ", 1)[1])
        except AuthenticationError as exc:
            errors.append("".join(traceback.format_exception(exc)))

    with caplog.at_level(logging.DEBUG):
        # Application context: secret, certificate (PEM, PFX), managed identity federated credential.
        for overrides in (
            {},
            {"MCAS_CLIENT_CERTIFICATE_NAME": "mcas-client-cert"},
            {
                "MCAS_CLIENT_CERTIFICATE_NAME": "mcas-client-cert-pfx",
                "MCAS_CLIENT_CERTIFICATE_SEND_X5C": "true",
            },
            {"MCAS_CLIENT_CREDENTIAL_MODE": "managed_identity"},
        ):
            settings = auth_settings(**overrides)
            credential = api_credential(settings.default_tenant)
            run(credential.authorization_header)
            credential.invalidate()
            run(credential.authorization_header)
            assert mcasctl(["token", "--json"]) == 0
            assert mcasctl(["token"]) == 0

        # Rotation mid-run (invalid_client, then recovery) and an expired secret (terminal failure).
        settings = auth_settings()
        credential = api_credential(settings.default_tenant)
        run(credential.authorization_header)
        simulator.rotate_secret("mcas-client-secret")
        secrets.add(simulator.secret_value("mcas-client-secret"))
        credential.invalidate()
        run(credential.authorization_header)
        simulator.expire_client_secret("daemon")
        credential.invalidate()
        run(credential.authorization_header)
        assert mcasctl(["token"]) == 1
        simulator.expire_client_secret("daemon", expired=False)

        # Key Vault down (failure), token endpoint flaky (recovered).
        settings = auth_settings(MCAS_AUTH_RETRY_ATTEMPTS="2")
        simulator.add_fault(service="keyvault", error_rate=1.0, status=503)
        run(api_credential(settings.default_tenant).authorization_header)
        assert mcasctl(["token", "--json"]) == 1
        simulator.clear_faults()
        simulator.add_fault(
            service="entra", error_rate=1.0, count=1, path_prefix=f"/{simulator.tenant_id}/oauth2"
        )
        run(api_credential(settings.default_tenant).authorization_header)

        # User context: ROPC (and a rotated password), device code, on-behalf-of.
        settings = auth_settings("user")
        credential = api_credential(settings.default_tenant)
        run(credential.authorization_header)
        simulator.rotate_secret("mcas-user-password")
        secrets.add(simulator.secret_value("mcas-user-password"))
        simulator.revoke_tokens("public")
        credential.invalidate()
        run(credential.authorization_header)
        assert mcasctl(["token", "--json"]) == 0

        def approve(prompt) -> None:
            simulator.approve_device_code(prompt.user_code, "analyst")

        device_code_login(settings, settings.default_tenant, approve)
        reset_all_caches()
        run(api_credential(settings.default_tenant, settings=settings).authorization_header)

        settings = auth_settings("application")
        assertion = simulator.mint_token(
            app="public", audience=simulator.client_id("daemon"), user="analyst", scp="access_as_user"
        )
        secrets.add(assertion)
        run(api_credential(settings.default_tenant, user_assertion=assertion).authorization_header)
        expired = simulator.mint_token(
            app="public", audience=simulator.client_id("daemon"), user="analyst", expired=True
        )
        secrets.add(expired)
        run(api_credential(settings.default_tenant, user_assertion=expired).authorization_header)

        # Legacy token, including after rotation.
        settings = auth_settings("legacy")
        credential = api_credential(settings.default_tenant)
        run(credential.authorization_header)
        simulator.rotate_secret("mcas-api-token")
        secrets.add(simulator.secret_value("mcas-api-token"))
        credential.invalidate()
        run(credential.authorization_header)
        assert mcasctl(["token"]) == 0

    # Refresh and access tokens from the persisted device code cache.
    cache = json.loads((_isolated_config_dir / "mcasctl" / "msal_token_cache.json").read_text())
    for kind in ("RefreshToken", "AccessToken", "IdToken"):
        secrets.update(entry["secret"] for entry in cache.get(kind, {}).values())

    captured = capsys.readouterr()
    records = [
        record.getMessage() + (record.exc_text or "") + (record.stack_info or "") for record in caplog.records
    ]
    haystacks = {
        "log records": "\n".join(records),
        "formatted log": caplog.text,
        "stdout": captured.out,
        "stderr": captured.err,
        "exception messages": "\n".join(errors),
    }
    secrets = {s for s in secrets if s and len(s) >= 8}
    assert len(secrets) > 20
    assert len(errors) >= 3 and len(records) > 50  # the flows really ran, failures included
    for where, text in haystacks.items():
        leaked = [s[:6] + "..." for s in secrets if s in text]
        assert not leaked, f"secret values in {where}: {leaked}"
        assert not JWT_SHAPE.search(text), f"a JWT in {where}"
        assert "client_secret=" not in text.replace("client_secret=[REDACTED]", "")
