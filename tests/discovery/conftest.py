"""Fixtures for the discovery tests: scaled limits, the simulator's discovery config, unique test content."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shared.caches import reset_all_caches

TENANT = "contoso"
# 30 requests per window, as in production, but a 2 s window on both sides (simulator and the app's
# distributed limiter) so a module of uploads does not wait out real minutes.
RATE_WINDOW_S = 2


@dataclass
class SimDiscovery:
    """The session simulator's discovery side for tenant contoso; configuration restored after the test."""

    simulator: Any

    def configure(self, **spec: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.simulator.mda(TENANT, "POST", "discovery/config", spec)
        return result

    def uploads(self, sha256: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.simulator.mda(TENANT, "GET", "uploads")["uploads"]
        return [u for u in found if sha256 is None or u["sha256"] == sha256]

    def requests(self, service: str, endpoint_part: str) -> int:
        counters = self.simulator.counters()["requests"].get(service, {})
        return sum(n for name, n in counters.items() if endpoint_part in name)


@pytest.fixture
def sim_discovery(simulator: Any) -> Iterator[SimDiscovery]:
    helper = SimDiscovery(simulator)
    simulator.mda(TENANT, "POST", "reset")  # whatever an earlier test configured
    simulator.mda(TENANT, "POST", "throttle", {"limit": 30, "window_s": RATE_WINDOW_S})
    try:
        yield helper
    finally:
        simulator.mda(TENANT, "POST", "reset")  # default discovery config and throttle


@pytest.fixture
def discovery_env(
    app_env: dict[str, str], sim_discovery: SimDiscovery, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., None]:
    """app_env plus fast retries; call it with MCAS_DISCOVERY_* overrides (caches are reset each time)."""

    def apply(**settings: str) -> None:
        defaults = {
            "MCAS_DISCOVERY_RETRY_BASE_SECONDS": "0.01",
            "MCAS_RATE_LIMIT_WINDOW_SECONDS": str(RATE_WINDOW_S),
        }
        for name, value in {**defaults, **settings}.items():
            monkeypatch.setenv(name, value)
        reset_all_caches()

    apply()
    return apply


def log_lines(size: int, *, tag: str | None = None) -> bytes:
    """A unique Palo Alto-like text log of exactly `size` bytes, ending in a line break (numbered lines and a
    random marker keep every file and every part distinct, so tests never share content)."""
    marker = tag or uuid.uuid4().hex
    out = bytearray()
    number = 0
    while len(out) < size:
        number += 1
        out += f"2024-05-01 10:00:00,{marker},{number:08d},TRAFFIC,end,10.0.0.1,52.1.2.3,allow,443\n".encode()
    data = bytes(out[:size])
    return data[:-1] + b"\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
