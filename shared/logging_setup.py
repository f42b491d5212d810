"""Structured logging for the worker and the CLI: JSON lines with context, redacted, set up once.

`configure_logging()` (function_app.py calls it at import; idempotent):
1. starts telemetry if Application Insights is configured (shared/telemetry.py; imports nothing otherwise);
2. attaches the JSON formatter and the context filter (invocation id, correlation id, tenant, job id from
   shared/log_context.py) to the handlers that actually write:
   - under the Functions worker: the worker's own handler on the root logger, which ships each record to the
     host. No handler of ours is added, so nothing is logged twice (the host already captures the root
     logger, and would also capture anything we printed to stdout/stderr);
   - elsewhere (mcasctl, the local host, the demo) only when asked: `configure_logging(console=True)` adds
     one handler writing to the current `sys.stderr`; importing the app in tests changes no handler;
3. installs the auth helper's redaction (`install_redaction()`: root filter, handler filters and the record
   factory), last, so it also covers the handlers set up above. The formatter redacts again on the way out.

Settings (read from the environment directly, since this runs at import, before settings are validated):
`MCAS_LOG_FORMAT` (`json` or `text`, default json) and `MCAS_LOG_LEVEL` (root level; unset keeps the
host's). Stdlib only, apart from the redaction module.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from shared import log_context
from shared.auth.redaction import install_redaction, redact
from shared.settings import DEFAULTS

FORMAT_SETTING = "MCAS_LOG_FORMAT"
LEVEL_SETTING = "MCAS_LOG_LEVEL"
_MARK = "_mcas_logging"
_WORKER_MODULES = ("azure_functions_worker", "azure_functions_runtime", "azure_functions_runtime_v1")
# Loggers that are chatty at INFO; quietened unless someone already chose their level.
_QUIET_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy",)
# LogRecord's own attributes; anything else on a record came from `extra=` (or a filter).
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "_mcas_redacted"}
)
_MAX_EXTRA = 500

LogFormat = Literal["json", "text"]
_lock = threading.Lock()


def under_functions_host() -> bool:
    """True inside the Azure Functions Python worker (it is loaded before the app is imported)."""
    return any(name in sys.modules for name in _WORKER_MODULES)


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ContextFilter(logging.Filter):
    """Stamps the log context onto each record (as attributes, so the OTel exporter sends them as
    dimensions). Values given with `extra=` win. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in log_context.current().items():
            if getattr(record, key, None) in (None, ""):
                setattr(record, key, value)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _RECORD_ATTRIBUTES or key.startswith("_"):
            continue
        if isinstance(value, bool | int | float) or value is None:
            found[key] = value
        elif isinstance(value, str):
            found[key] = redact(value[:_MAX_EXTRA])
        # other types (objects, dicts) are left out rather than stringified: they may hold anything.
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, context fields, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format: keep the template rather than lose the line
            message = str(record.msg)
        doc: dict[str, Any] = {
            "timestamp": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(message),
        }
        context = log_context.current()
        for key in log_context.FIELDS:
            value = getattr(record, key, None) or context.get(key)
            if value:
                doc[key] = redact(str(value))
        for key, value in _extras(record).items():
            doc.setdefault(key, value)
        if record.exc_info and record.exc_info[0] is not None:
            doc["exception_type"] = record.exc_info[0].__name__
            doc["exception"] = redact(record.exc_text or self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exception"] = redact(record.exc_text)
        if record.stack_info:
            doc["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the context fields appended when there are any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        context = log_context.current()
        fields = {k: getattr(record, k, None) or context.get(k) for k in log_context.FIELDS}
        shown = " ".join(f"{k}={v}" for k, v in fields.items() if v)
        return f"{line} [{redact(shown)}]" if shown else line


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at emit time (pytest and the CLI swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it; we always follow sys.stderr
        pass


def _format_from_env() -> LogFormat:
    raw = (os.environ.get(FORMAT_SETTING) or DEFAULTS[FORMAT_SETTING]).strip().lower() or "json"
    if raw not in ("json", "text"):
        # Importing the app must not fail on a logging setting; say so and keep the default.
        logging.getLogger(__name__).warning(
            "%s must be json or text, got %r; using json", FORMAT_SETTING, raw
        )
        return "json"
    return "text" if raw == "text" else "json"


def _formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def _is_otel_handler(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("opentelemetry")


def _adopt(handler: logging.Handler, fmt: LogFormat) -> None:
    """Give an existing handler our context filter and (unless it exports structured records) formatter."""
    if getattr(handler, _MARK, False):
        return
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())
    if not _is_otel_handler(handler):
        handler.setFormatter(_formatter(fmt))
    setattr(handler, _MARK, True)


def configure_logging(
    *,
    console: bool = False,
    level: int | str | None = None,
    fmt: LogFormat | None = None,
    host: bool | None = None,
    telemetry: bool = True,
) -> None:
    """Set up logging for this process (see the module docstring). Safe to call more than once.

    console: add one handler writing to sys.stderr (CLI, local host); ignored under the Functions worker.
    level:   root logger level; default `MCAS_LOG_LEVEL` if set, else unchanged.
    fmt:     `json` or `text`; default `MCAS_LOG_FORMAT` (json).
    host:    force worker (True) or standalone (False) mode; default: detect the worker.
    """
    if telemetry and os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip():
        from shared.telemetry import configure_telemetry  # only then: it is not free to import either

        configure_telemetry()
    fmt = fmt or _format_from_env()
    in_host = under_functions_host() if host is None else host
    root = logging.getLogger()
    with _lock:
        if in_host:
            for handler in list(root.handlers):
                _adopt(handler, fmt)
        else:
            for handler in list(root.handlers):
                if _is_otel_handler(handler):
                    _adopt(handler, fmt)
            ours = [h for h in root.handlers if isinstance(h, _StderrHandler)]
            if console and not ours:
                handler = _StderrHandler()
                _adopt(handler, fmt)
                root.addHandler(handler)
            elif console:
                for handler in ours:
                    handler.setFormatter(_formatter(fmt))
        chosen = (
            level
            if level is not None
            else ((os.environ.get(LEVEL_SETTING) or DEFAULTS[LEVEL_SETTING]).strip().upper() or None)
        )
        if chosen is not None:
            try:
                root.setLevel(chosen)
            except (ValueError, TypeError):
                logging.getLogger(__name__).warning("%s: unknown log level %r ignored", LEVEL_SETTING, chosen)
        for name in _QUIET_LOGGERS:
            quiet = logging.getLogger(name)
            if quiet.level == logging.NOTSET:
                quiet.setLevel(logging.WARNING)
    install_redaction()


def remove_console_handler() -> None:
    """Undo `console=True` (tests and long-lived CLI processes that reconfigure)."""
    root = logging.getLogger()
    with _lock:
        for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
            root.removeHandler(handler)
