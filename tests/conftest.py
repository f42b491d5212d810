"""Run-wide fixtures: the local tenant simulator and Azurite, started once per test session, and the fixtures
more than one test folder uses (alerts, auth, discovery, chaos, fuzz).

Each lives in its own plugin module under tests/fixtures/ so the pieces stay small.
"""

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
]


def pytest_collection_modifyitems(config, items):
    """`soak` tests (minutes long) run only when asked for with `-m soak` (or any -m expression)."""
    if config.getoption("-m"):
        return
    kept = [item for item in items if item.get_closest_marker("soak") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
