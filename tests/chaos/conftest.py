"""Chaos suite fixtures: a private simulator (faults, revoked tokens and rotated secrets stay out of the
session's), the app's environment pointed at it, and a sink that records deliveries and acts mid-run.

Timing is compressed, never skipped: the simulator's and the app's rate windows are 2 s (30 requests each, as
in production), and the API client's backoff base is 0.1 s instead of 1 s - every retry still happens.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from localdev.pki import TestPki
from localdev.simulator.client import SimulatorHandle, start_simulator
from shared.alerts.sinks import AlertBatch
from shared.caches import reset_all_caches
from shared.settings import reset_settings_cache

TENANTS = ("contoso", "fabrikam")
RATE_WINDOW_S = 2
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def chaos_sim(tmp_path_factory: pytest.TempPathFactory, simulator_pki: TestPki) -> Iterator[SimulatorHandle]:
    proc = start_simulator(
        tmp_path_factory.mktemp("chaos-simulator"),
        mda_tenants=list(TENANTS),
        rate_limit=30,
        rate_window=RATE_WINDOW_S,
        pki_dir=simulator_pki.directory,
    )
    try:
        yield proc.handle
    finally:
        proc.stop()


@dataclass
class ChaosEnv:
    sim: SimulatorHandle
    names: dict[str, str]  # MDA tenant -> this test's tenant profile name
    storage: str  # AzureWebJobsStorage

    def profile(self, tenant: str = "contoso") -> str:
        return self.names[tenant]

    def seed(self, tenant: str, count: int, *, seed: int, days: float = 2) -> list[str]:
        now = int(time.time() * 1000)
        spec = {"count": count, "seed": seed, "start_ms": now - int(days * DAY_MS), "end_ms": now - 2000}
        self.sim.mda(tenant, "POST", "alerts/seed", spec)
        return [a["_id"] for a in self.sim.mda(tenant, "GET", "alerts")["alerts"]]

    def add_now(self, tenant: str, count: int) -> list[str]:
        """Alerts arriving while a run is under way (a second in the past: settle delay 0)."""
        stamp = int(time.time() * 1000) - 1000
        ids: list[str] = self.sim.mda(tenant, "POST", "alerts/add", {"count": count, "timestamp": stamp})[
            "ids"
        ]
        return ids


def apply_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("MCAS_", "AzureWebJobsStorage")) and name not in env:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    reset_all_caches()


@pytest.fixture
def chaos_env(
    chaos_sim: SimulatorHandle, azurite: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ChaosEnv]:
    """Both MDA tenants as two tenant profiles (fresh names: own checkpoints, blobs, health rows), a blob
    sink, no settle delay, compressed rate windows and backoff; the private simulator is reset afterwards."""
    import json

    from shared.mda import client as mda_client

    suffix = uuid.uuid4().hex[:8]
    names = {tenant: f"{tenant}-{suffix}" for tenant in TENANTS}
    profiles = [{"name": names[t], "api_url": chaos_sim.api_url(t)} for t in TENANTS]
    env = {
        **chaos_sim.app_env("contoso"),
        "AzureWebJobsStorage": azurite.connection_string,
        "MCAS_TENANT_NAME": names["contoso"],
        "MCAS_TENANT_PROFILES": json.dumps(profiles),
        "MCAS_ALERT_SINKS": "blob",
        "MCAS_ALERTS_SETTLE_SECONDS": "0",
        "MCAS_FIRST_FETCH_LOOKBACK": "3d",
        "MCAS_ALERTS_LEASE_SECONDS": "30",
        "MCAS_RATE_LIMIT_WINDOW_SECONDS": str(RATE_WINDOW_S),
        "MCAS_AUTH_RETRY_BACKOFF": "0.05",
        "MCAS_DISCOVERY_RETRY_BASE_SECONDS": "0.05",
    }
    apply_env(monkeypatch, env)
    monkeypatch.setattr(mda_client, "RetryPolicy", _FastRetry)
    for tenant in TENANTS:
        chaos_sim.mda(tenant, "POST", "reset")
        chaos_sim.mda(tenant, "DELETE", "alerts")
    try:
        yield ChaosEnv(chaos_sim, names, azurite.connection_string)
    finally:
        chaos_sim.reset()
        reset_all_caches()


def _fast_retry_factory() -> Any:
    from dataclasses import dataclass as _dc

    from shared.mda.client import RetryPolicy

    @_dc(frozen=True)
    class FastRetry(RetryPolicy):
        backoff_base_s: float = 0.1
        backoff_cap_s: float = 1.0

    return FastRetry


_FastRetry = _fast_retry_factory()


@dataclass
class ChaosSink:
    """Records every delivered page (before the checkpoint commits) and runs `actions[n]` at the n-th page.

    It runs after the real sinks (order 50: after blob, before queue), so an action that breaks something
    (a storage outage) hits the page's commit, the worst moment.
    """

    actions: dict[int, Callable[[], None]] = field(default_factory=dict)
    name: str = "chaos"
    order: int = 50
    pages: int = 0
    batches: list[AlertBatch] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, batch: AlertBatch, *, deadline: float | None) -> None:
        with self._lock:
            self.pages += 1
            self.batches.append(batch)
            action = self.actions.pop(self.pages, None)
        if action is not None:
            action()

    def ids(self, tenant: str) -> list[str]:
        with self._lock:
            return [a["id"] for b in self.batches if b.tenant == tenant for a in b.alerts]


def duplicates(ids: list[str]) -> dict[str, int]:
    """Extra copies per id (an id delivered twice counts 1): what a redelivered page adds."""
    return {i: n - 1 for i, n in Counter(ids).items() if n > 1}


def blob_ids(tenant: str) -> list[str]:
    import json

    from shared.storage import CONTAINER_ALERTS, container_client

    container = container_client(CONTAINER_ALERTS)
    found: list[str] = []
    for blob in container.list_blobs(name_starts_with=f"{tenant}/"):
        for line in container.download_blob(blob.name).readall().decode().splitlines():
            found.append(json.loads(line)["id"])
    return found
