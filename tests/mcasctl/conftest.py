"""Every CLI test gets its own XDG_CONFIG_HOME, as every auth test does: `mcasctl login` and `token` keep a
token cache there."""

from tests.auth.conftest import _isolated_config_dir

__all__ = ["_isolated_config_dir"]
