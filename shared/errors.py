"""Typed errors shared by every module. Callers branch on these types, never on message text."""

from __future__ import annotations


class McasError(Exception):
    """Base of every error this app raises on purpose."""


class ConfigurationError(McasError, ValueError):
    """A setting is missing or invalid; the message names the setting and what is wrong."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting} {problem}")


class ValidationError(McasError, ValueError):
    """Bad input (a queue message, a job, a webhook body). Terminal: dead-letter it, never retry."""

    def __init__(self, reason: str, *, field_errors: dict[str, str] | None = None) -> None:
        self.reason = reason
        self.field_errors = dict(field_errors or {})
        super().__init__(reason)


class TransientError(McasError):
    """Worth retrying later (network, 5xx, throttling, storage hiccups)."""


class TerminalError(McasError):
    """Retrying cannot help (e.g. unknown data source, permission denied); dead-letter with the reason."""
