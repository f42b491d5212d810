"""Errors the CLI maps to its documented exit codes (0 ok, 1 failed, 2 usage, 130 interrupted)."""

from __future__ import annotations

from shared.errors import ConfigurationError, McasError


class UsageError(ConfigurationError):
    """The command line asks for something refused before anything happens (exit status 2)."""


class Interrupted(McasError):
    """The operator pressed Ctrl-C; the run stopped at the next safe point (exit status 130)."""

    def __init__(self) -> None:
        super().__init__("interrupted (Ctrl-C)")
