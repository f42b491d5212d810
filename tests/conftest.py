"""Run-wide fixtures: the local tenant simulator and Azurite, started once per test session.

Each lives in its own plugin module under tests/fixtures/ so the pieces stay small.
"""

pytest_plugins = [
    "tests.fixtures.simulator",
    "tests.fixtures.azurite",
    "tests.fixtures.app_env",
    "tests.fixtures.leakcheck",
]
