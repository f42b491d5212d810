"""Fixtures for the auth tests: settings against a simulator, fast retries, an isolated config dir.

Tests that rotate credentials or revoke tokens change simulator state that `reset()` deliberately keeps (the
analyst's password, the client secret, the legacy token). Their modules override the `simulator` fixture with
`isolated_simulator`, a private simulator for the module, so the session simulator other tests use is never
left with credentials that differ from its simulator.json. (`app_env` and the per-test reset then use the
private one too.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localdev.simulator.client import SimulatorHandle, start_simulator
from shared.caches import reset_all_caches
from shared.settings import Settings, get_settings, reset_settings_cache


@pytest.fixture(autouse=True)
def _isolated_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`mcasctl login` writes its token cache under XDG_CONFIG_HOME: never the developer's real one."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


@pytest.fixture(scope="module")
def isolated_simulator(
    tmp_path_factory: pytest.TempPathFactory, simulator_pki: Any
) -> Iterator[SimulatorHandle]:
    """A private simulator for one test module (shares the session's test CA, so the bundle trusts it)."""
    proc = start_simulator(
        tmp_path_factory.mktemp("auth-simulator"), mda_tenants=["contoso"], pki_dir=simulator_pki.directory
    )
    try:
        yield proc.handle
    finally:
        proc.stop()


@pytest.fixture
def auth_settings(
    app_env: dict[str, str], simulator: SimulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Settings]]:
    """`auth_settings(auth_mode="application", **overrides)`: the worker's settings against the simulator,
    with tiny retry backoff so recovery tests take milliseconds; every per-worker cache starts cold."""
    previous: set[str] = set()

    def configure(auth_mode: str = "application", **overrides: str) -> Settings:
        env = simulator.app_env("contoso", auth_mode=auth_mode)
        env.setdefault("MCAS_AUTH_RETRY_BACKOFF", "0.01")
        env.update(overrides)
        for name in previous - set(env):  # overrides of an earlier call in the same test
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        previous.clear()
        previous.update(env)
        reset_settings_cache()
        reset_all_caches()
        return get_settings()

    yield configure
    reset_settings_cache()
    reset_all_caches()
