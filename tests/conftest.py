"""Run-wide fixtures: the local tenant simulator and Azurite, started once per test session, and the fixtures
more than one test folder uses (alerts, auth, discovery, chaos, fuzz).

Each lives in its own plugin module under tests/fixtures/ so the pieces stay small.
"""

import pytest

pytest_plugins = [
    "tests.fixtures.simulator",
    "tests.fixtures.azurite",
    "tests.fixtures.app_env",
    "tests.fixtures.leakcheck",
    "tests.fixtures.alerts",
    "tests.fixtures.auth",
    "tests.fixtures.discovery",
    "tests.fixtures.chaos",
    "tests.fixtures.fuzz",
    "tests.fixtures.receiver",
]


# A test that uses one of these (directly or through another fixture) opens real sockets: the session
# simulator or a private one (all share the session's test CA), Azurite, or the local Functions host.
INTEGRATION_FIXTURES = frozenset({"simulator", "simulator_pki", "azurite", "host"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks `integration` tests by the fixtures they use, so the marker cannot drift from what a test does;
    `soak` tests (minutes long) run only when the -m expression names them (`-m soak`)."""
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
    if "soak" in config.getoption("-m"):
        return
    kept = [item for item in items if item.get_closest_marker("soak") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
