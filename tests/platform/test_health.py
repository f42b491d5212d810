"""`GET /api/health` over the simulator (Entra ID, Key Vault) and Azurite: 200 with every check when all is
well, 503 naming the failing check otherwise, each check bounded by the timeout, and no secret in the body.

Each test uses its own tenant profile name, so the health rows it reads are the ones it wrote.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

from functions import health as health_blueprint
from localdev.host.invoke import LocalContext
from shared.alerts.pull import PullResult, record_health
from shared.caches import reset_all_caches
from shared.health import CheckResult, check_health
from shared.settings import Settings, get_settings

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record(tenant: str, *, ended_ago_s: float, error: str | None = None, lag_s: float = 42.0) -> None:
    end = datetime.now(UTC) - timedelta(seconds=ended_ago_s)
    record_health(
        PullResult(
            tenant=tenant,
            stream="scheduled",
            key=tenant,
            run_id=uuid.uuid4().hex[:12],
            started_at=_iso(end - timedelta(seconds=3)),
            ended_at=_iso(end),
            duration_s=3.0,
            alerts=7,
            pages=1,
            lag_s=lag_s,
            error=error,
            stopped="error" if error else "caught_up",
        )
    )


@pytest.fixture
def tenant(app_env, monkeypatch) -> str:
    name = f"health-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("MCAS_TENANT_NAME", name)
    monkeypatch.setenv("MCAS_ALERT_SINKS", "blob")
    reset_all_caches()
    return name


def _call() -> tuple[int, dict[str, Any]]:
    request = func.HttpRequest(method="GET", url="/api/health", body=b"", headers={})
    response = health_blueprint.health(request, context=LocalContext("health", "."))
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body())


def _assert_no_secrets(body: dict[str, Any], simulator: Any) -> None:
    text = json.dumps(body)
    assert not JWT.search(text)
    assert simulator.secret_value("mcas-client-secret") not in text
    assert "AccountKey" not in text and "SharedAccessSignature" not in text


def test_the_route_is_a_get_with_function_key_auth():
    trigger = health_blueprint.health._function.get_trigger()
    assert trigger.route == "health"
    assert [m.value for m in trigger.methods] == ["GET"]
    assert trigger.auth_level == func.AuthLevel.FUNCTION


def test_all_checks_pass_with_the_last_pull_and_its_lag(tenant, simulator):
    _record(tenant, ended_ago_s=600, error="MDA answered 503")  # older failure
    _record(tenant, ended_ago_s=120, lag_s=42.0)  # the last success
    _record(tenant, ended_ago_s=30, error="throttled")  # newest run failed, still within the age limit

    status, body = _call()

    assert status == 200, body
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) == {"keyvault", "token", "storage", "pulls"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["token"]["tenants"] == [tenant]
    pulls = body["checks"]["pulls"]["tenants"][tenant]
    assert pulls["status"] == "ok" and pulls["lag_s"] == 42.0 and pulls["alerts_delivered"] == 7
    assert 100 <= pulls["age_s"] <= 200
    assert "last_error" not in pulls  # raw error text stays in the log
    _assert_no_secrets(body, simulator)


def test_a_tenant_that_never_ran_is_pending_not_failing(tenant):
    status, body = _call()
    assert status == 200, body
    assert body["checks"]["pulls"]["tenants"][tenant]["status"] == "pending"


def test_key_vault_failure_is_a_503_naming_keyvault(tenant, simulator, monkeypatch):
    monkeypatch.setenv("MCAS_AUTH_RETRY_BACKOFF", "0.01")  # the token check retries the vault too
    get_settings.cache_clear()
    _record(tenant, ended_ago_s=10)
    simulator.add_fault(service="keyvault", error_rate=1.0, status=503)

    status, body = _call()

    assert status == 503
    assert body["status"] == "failing" and "keyvault" in body["failing"]
    assert body["checks"]["keyvault"]["detail"] == "Key Vault is unreachable or refused the app"
    assert body["checks"]["storage"]["ok"] and body["checks"]["pulls"]["ok"]
    _assert_no_secrets(body, simulator)


def test_a_hung_dependency_is_cut_off_by_the_timeout(tenant, simulator, monkeypatch):
    monkeypatch.setenv("MCAS_HEALTH_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    _record(tenant, ended_ago_s=10)
    # Only the probe's metadata request hangs, so no background thread outlives the test for long.
    simulator.add_fault(
        service="keyvault", latency_ms=10_000, path_prefix="/secrets/mcas-client-secret/versions"
    )

    started = time.monotonic()
    status, body = _call()
    elapsed = time.monotonic() - started

    assert status == 503 and "keyvault" in body["failing"]
    assert body["checks"]["keyvault"]["detail"] == "timed out after 0.5s"
    assert elapsed < 7.0  # far below the 10 s hang: the check gave up, it did not wait it out


def test_a_token_failure_names_token(tenant, simulator):
    _record(tenant, ended_ago_s=10)
    simulator.expire_client_secret("daemon")

    status, body = _call()

    assert status == 503
    assert body["failing"] == ["token"]
    assert body["checks"]["token"]["detail"] == f"a token could not be obtained for tenant {tenant}"
    assert "7000222" not in json.dumps(body) and "AADSTS" not in json.dumps(body)
    _assert_no_secrets(body, simulator)


def test_stale_or_never_successful_pulls_fail_pulls(tenant):
    _record(tenant, ended_ago_s=2 * 3600)
    status, body = _call()
    assert status == 503 and body["failing"] == ["pulls"]
    info = body["checks"]["pulls"]["tenants"][tenant]
    assert info["status"] == "stale" and info["age_s"] >= 7200

    other = f"health-{uuid.uuid4().hex[:10]}"
    _record(other, ended_ago_s=5, error="CredentialRejectedError: AADSTS7000215")
    report = check_health(Settings.from_env({**os.environ, "MCAS_TENANT_NAME": other}))
    assert report.failing == ["pulls"]
    assert report.checks["pulls"].data["tenants"][other]["status"] == "failing"


def test_unreachable_storage_names_storage(tenant, monkeypatch):
    closed = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
    monkeypatch.setenv("AzureWebJobsStorage", closed)
    monkeypatch.setenv("MCAS_HEALTH_TIMEOUT_SECONDS", "2")
    reset_all_caches()

    status, body = _call()

    assert status == 503
    assert {"storage", "pulls"} <= set(body["failing"])
    assert body["checks"]["keyvault"]["ok"] and body["checks"]["token"]["ok"]
    assert "AccountKey" not in json.dumps(body) and "Eby8vdM02" not in json.dumps(body)


def test_unusable_settings_fail_a_settings_check(app_env, monkeypatch):
    monkeypatch.setenv("MCAS_HEALTH_MAX_PULL_AGE", "soon")
    reset_all_caches()
    status, body = _call()
    assert status == 503 and body["failing"] == ["settings"]
    assert body["checks"]["settings"]["detail"] == "the app settings are invalid"
    assert "MCAS_HEALTH_MAX_PULL_AGE" not in json.dumps(body)


def test_a_check_that_raises_is_reported_not_propagated(app_env):
    def broken(settings, timeout):
        raise RuntimeError("boom")

    def fine(settings, timeout):
        return CheckResult(True, "fine")

    report = check_health(checks={"fine": fine, "broken": broken})
    assert report.status_code == 503 and report.failing == ["broken"]
    assert report.checks["broken"].detail == "RuntimeError: boom"


def test_health_over_http_names_checks_but_no_settings_or_raw_errors(tenant, simulator):
    """GET /api/health with only the function key used to name the authority URL, tenant id, client id,
    secret names and raw storage and token errors; now it names the failing check and a generic reason, and
    the detail goes to the log."""
    import requests

    from localdev.host import LocalHost

    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(health_blueprint.bp)
    simulator.expire_client_secret("daemon")
    host = LocalHost(app, function_key="health-test-key").start(queues=False, timers=False)
    try:
        assert requests.get(f"{host.api_url}/health", timeout=30).status_code == 401
        answer = requests.get(
            f"{host.api_url}/health", headers={"x-functions-key": "health-test-key"}, timeout=30
        )
    finally:
        host.stop()
    body = answer.json()
    assert answer.status_code == 503 and body["failing"] == ["token"], body
    assert body["checks"]["token"]["detail"] == f"a token could not be obtained for tenant {tenant}"
    text = json.dumps(body)
    settings = get_settings()
    profile = settings.default_tenant
    for revealing in (
        settings.authority_host,
        profile.tenant_id,
        profile.client_id,
        profile.client_secret_name,
        settings.key_vault_url,
        "AADSTS",
        "7000222",
    ):
        assert revealing and revealing not in text, revealing
    _assert_no_secrets(body, simulator)
