"""Fixtures for the jobs API tests that need the simulator and Azurite: the settings, the local host serving
the jobs functions, a signed client for it, and an HTTPS receiver for callbacks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.caches import reset_all_caches
from tests.jobs.harness import SEALING_KEY, WEBHOOK_SECRET, Client, running_host

TENANT = "contoso"


@pytest.fixture
def jobs_env(
    app_env: dict[str, str], simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """app_env plus the jobs settings: bearer audience (the simulator's webhook_api), OBO through that app,
    the webhook secret and sealing key in Key Vault, a 2 s rate-limit window, and no alerts seeded."""
    webhook = simulator.apps["webhook_api"]
    settings = {
        "MCAS_WEBHOOK_AUDIENCE": f"{webhook['client_id']},{webhook['app_id_uri']}",
        "MCAS_OBO_CLIENT_ID": webhook["client_id"],
        "MCAS_OBO_CLIENT_SECRET_NAME": simulator.secrets["webhook_api_secret_name"],
        "MCAS_RATE_LIMIT_WINDOW_SECONDS": "2",
        "MCAS_TENANT_NAME": TENANT,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    simulator.set_secret("mcas-webhook-secret", WEBHOOK_SECRET)
    simulator.set_secret("mcas-job-sealing-key", SEALING_KEY)
    previous = simulator.mda(TENANT, "GET", "throttle")
    simulator.mda(TENANT, "POST", "throttle", {"limit": 30, "window_s": 2})
    simulator.mda(TENANT, "DELETE", "alerts")
    reset_all_caches()
    try:
        yield {"sim": simulator, "webhook": webhook}
    finally:
        simulator.mda(
            TENANT, "POST", "throttle", {"limit": previous["limit"], "window_s": previous["window_s"]}
        )
        simulator.mda(TENANT, "DELETE", "alerts")
        reset_all_caches()


@pytest.fixture
def host(jobs_env: dict[str, Any]) -> Iterator[Any]:
    with running_host() as running:
        yield running


@pytest.fixture
def client(host: Any) -> Client:
    return Client(host.api_url)
