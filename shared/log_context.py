"""Who a log line is about: invocation id, correlation id, tenant and job, carried in context variables.

A function handler opens a context once; everything it calls logs with those fields without passing them
around, and the JSON formatter (shared/logging_setup.py) and the OpenTelemetry log exporter pick them up:

    with log_context(invocation_id=context.invocation_id, correlation_id=body.get("correlationId")):
        ...
        bind(tenant=profile.name)        # narrow it further once known, until the context closes

Context variables follow the call into `await`s, but not into threads a pool started earlier: wrap work
handed to an executor with `propagate(fn)` so its log lines keep the invocation's fields.

Stdlib only and import-cheap: function_app imports this.
"""

from __future__ import annotations

import contextvars
import functools
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

FIELDS: tuple[str, ...] = ("invocation_id", "correlation_id", "tenant", "job_id")
_MAX_VALUE = 200  # a context value is an id, not a payload

_current: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "mcas_log_context", default=None
)


def _fields() -> Mapping[str, str]:
    return _current.get() or {}


def _clean(fields: Mapping[str, object | None]) -> dict[str, str]:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown log context field(s): {', '.join(sorted(unknown))}")
    return {k: " ".join(str(v).split())[:_MAX_VALUE] for k, v in fields.items() if v not in (None, "")}


@contextmanager
def log_context(
    *,
    invocation_id: str | None = None,
    correlation_id: str | None = None,
    tenant: str | None = None,
    job_id: str | None = None,
) -> Iterator[Mapping[str, str]]:
    """Add fields for the duration of the block (nested blocks inherit and may override); yields the
    fields in force."""
    given = {
        "invocation_id": invocation_id,
        "correlation_id": correlation_id,
        "tenant": tenant,
        "job_id": job_id,
    }
    merged = {**_fields(), **_clean(given)}
    token = _current.set(merged)
    try:
        yield dict(merged)
    finally:
        _current.reset(token)


def bind(**fields: str | None) -> None:
    """Add fields to the current context until the enclosing `log_context` block ends.

    Outside any block this changes the calling context itself (a thread or task keeps it), so prefer it
    inside a `log_context`.
    """
    _current.set({**_fields(), **_clean(fields)})


def current() -> dict[str, str]:
    """The fields in force, plus the Functions worker's own invocation id when no handler set one."""
    fields = dict(_fields())
    if "invocation_id" not in fields:
        worker_id = _worker_invocation_id()
        if worker_id:
            fields["invocation_id"] = worker_id
    return fields


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` bound to a copy of the caller's context, for `executor.submit(propagate(fn), ...)`."""
    snapshot = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return snapshot.copy().run(fn, *args, **kwargs)

    return run


def _worker_invocation_id() -> str | None:
    """The Python worker tracks the running invocation itself; read it only if the worker is loaded.

    Private API of azure-functions-worker, so any failure just means "unknown".
    """
    dispatcher = sys.modules.get("azure_functions_worker.dispatcher")
    getter = getattr(dispatcher, "get_current_invocation_id", None) if dispatcher else None
    if getter is None:
        return None
    try:
        value = getter()
    except Exception:
        return None
    return str(value) if value else None
