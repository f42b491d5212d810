"""Fixtures for the alert tests that run against the simulator and Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def alerts_env(
    app_env: dict[str, str], simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A fresh tenant profile name against contoso, compressed rate-limit window, no settle delay."""
    name = f"it{uuid.uuid4().hex[:10]}"
    settings = {
        "MCAS_TENANT_NAME": name,
        "MCAS_ALERTS_SETTLE_SECONDS": "0",
        "MCAS_RATE_LIMIT_WINDOW_SECONDS": "2",
        "MCAS_ALERTS_SCHEDULE": "0 */5 * * * *",
        "MCAS_ALERTS_FANOUT": "false",  # these tests pull in the timer itself (test_fanout.py fans out)
        "MCAS_ALERT_SINKS": "blob",
        "MCAS_ALERTS_LEASE_SECONDS": "30",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    from shared.caches import reset_all_caches

    reset_all_caches()
    previous = simulator.mda("contoso", "GET", "throttle")
    simulator.mda("contoso", "POST", "throttle", {"limit": 30, "window_s": 2})
    simulator.mda("contoso", "POST", "throttle/reset")
    simulator.mda("contoso", "DELETE", "alerts")
    try:
        yield {"tenant": name, "sim": simulator}
    finally:
        simulator.mda(
            "contoso", "POST", "throttle", {"limit": previous["limit"], "window_s": previous["window_s"]}
        )
        simulator.mda("contoso", "DELETE", "alerts")
        reset_all_caches()
