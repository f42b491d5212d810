"""The root conftest's markers, in an inner pytest session (collection only, nothing starts): `integration`
follows the fixtures a test uses, however indirectly, and `soak` stays out unless the -m expression names
it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

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
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n  integration\n  soak\n")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, "-p", "tests.conftest", *args, str(tmp_path / "test_inner.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
        timeout=120,
        check=False,
    )
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
