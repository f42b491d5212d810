"""The root conftest's markers, in an inner pytest session (collection only, nothing starts): `integration`
follows the fixtures a test uses, however indirectly, and `soak` stays out unless the -m expression names
it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.processes import inner_pytest

INNER = """
import pytest


@pytest.fixture
def via_app_env(app_env):
    return app_env


def test_plain():
    pass


def test_simulator(simulator):
    pass


def test_through_app_env(via_app_env):
    pass


def test_test_ca(simulator_pki):
    pass


def test_azurite(azurite):
    pass


@pytest.mark.soak
def test_soak():
    pass
"""
SOCKETS = {"test_simulator", "test_through_app_env", "test_test_ca", "test_azurite"}


def _collected(tmp_path: Path, *args: str) -> set[str]:
    ini = "[pytest]\nmarkers =\n  integration\n  soak\n"
    result = inner_pytest(tmp_path, INNER, "--collect-only", "-p", "tests.conftest", *args, ini=ini)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {line.split("::")[1] for line in result.stdout.splitlines() if "::" in line}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), {"test_plain", *SOCKETS}),
        (("-m", "integration"), SOCKETS),
        (("-m", "not integration"), {"test_plain"}),
        (("-m", "soak"), {"test_soak"}),
    ],
    ids=["default", "integration", "not-integration", "soak"],
)
def test_markers_follow_fixtures_and_keep_soak_out(tmp_path: Path, args: tuple[str, ...], expected: set[str]):
    assert _collected(tmp_path, *args) == expected
