"""Every CLI test gets its own XDG_CONFIG_HOME: `mcasctl login` and `token` keep a token cache there."""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_config_dir(isolated_config_dir: Path) -> Path:
    return isolated_config_dir
