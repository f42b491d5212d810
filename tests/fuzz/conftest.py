"""Fixtures for the fuzz suite: the app's environment against the session simulator and Azurite, with a
request budget large enough that hypothesis examples never wait for the rate limiter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.caches import reset_all_caches

TENANT = "contoso"


@pytest.fixture
def fuzz_env(app_env: dict[str, str], simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """app_env with a fresh tenant profile name (its own checkpoints), blob sink, no settle delay, and a
    request budget of 6000 per minute on both sides. Yields the profile name."""
    name = f"fz{uuid.uuid4().hex[:10]}"
    for key, value in {
        "MCAS_TENANT_NAME": name,
        "MCAS_RATE_LIMIT_PER_MINUTE": "6000",
        "MCAS_ALERT_SINKS": "blob",
        "MCAS_ALERTS_SETTLE_SECONDS": "0",
        "MCAS_ALERTS_TIME_BUDGET_SECONDS": "20",
        "MCAS_DISCOVERY_RETRY_BASE_SECONDS": "0.01",
        "MCAS_DISCOVERY_TIME_BUDGET_SECONDS": "20",
    }.items():
        monkeypatch.setenv(key, value)
    reset_all_caches()
    previous = simulator.mda(TENANT, "GET", "throttle")
    simulator.mda(TENANT, "POST", "throttle", {"limit": 6000, "window_s": 60})
    try:
        yield name
    finally:
        restore = {"limit": previous["limit"], "window_s": previous["window_s"]}
        simulator.mda(TENANT, "POST", "throttle", restore)
        reset_all_caches()
