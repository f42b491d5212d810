"""Every auth test gets its own XDG_CONFIG_HOME (the fixtures themselves live in tests/fixtures/auth.py)."""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_config_dir(isolated_config_dir: Path) -> Path:
    return isolated_config_dir
