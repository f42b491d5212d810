"""`local.settings.json` for every command, as `func start` and `mcasctl host` read it: its `Values` fill the
environment for names not already set. Without `--settings-file`, `./local.settings.json` is read if it
exists, else the project's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FILE_NAME = "local.settings.json"


def load_local_settings(path: Path) -> dict[str, str]:
    """`Values` from a local.settings.json, if the file exists."""
    if not path.exists():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise ConfigurationError(
            str(path), f"is not a valid local.settings.json ({type(exc).__name__})"
        ) from None
    return {str(k): str(v) for k, v in values.items()}


def default_path() -> Path:
    here = Path.cwd() / FILE_NAME
    return here if here.exists() else PROJECT_ROOT / FILE_NAME


@contextmanager
def applied(path: Path | None) -> Iterator[list[str]]:
    """Set the file's values that the environment lacks for the duration (names yielded); an explicit path
    that does not exist is an error."""
    if path is not None and not path.exists():
        raise ConfigurationError("--settings-file", f"{path} does not exist")
    values = load_local_settings(path or default_path())
    added = [name for name in values if name not in os.environ]
    for name in added:
        os.environ[name] = values[name]
    if added:
        _reset()  # settings are read once per process: read them again with these values
    try:
        yield added
    finally:
        for name in added:  # in-process callers (tests, embedding) get their environment back
            os.environ.pop(name, None)
        if added:
            _reset()


def _reset() -> None:
    from shared.caches import reset_all_caches
    from shared.settings import reset_settings_cache

    reset_settings_cache()
    reset_all_caches()
