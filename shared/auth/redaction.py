"""Redaction of secrets, tokens, assertions and signatures from log records and messages.

Two layers, because neither alone is enough:
- patterns for things that look secret wherever they come from (JWTs, `Bearer`/`Token`/`Basic` credentials,
  `client_secret=` and friends in form bodies and URLs, JSON token fields, PEM private keys, webhook
  signatures);
- the literal values the auth helper has seen (Key Vault secrets, legacy tokens, passwords), registered with
  `register_secret()`, since a client secret has no recognisable shape.

`install_redaction()` puts a filter on the root logger and its handlers *and* wraps the log record factory: a
filter on a logger does not run for records that propagate from child loggers, so the factory is what
guarantees coverage for handlers added later (the Functions worker's, pytest's caplog).
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
_MARK = "_mcas_redacted"
_MIN_SECRET_LENGTH = 6
_MAX_REGISTERED = 2048

_FORM_KEYS = "|".join(
    (
        "client_secret",
        "client_assertion",
        "assertion",
        "user_assertion",
        "password",
        "refresh_token",
        "access_token",
        "id_token",
        "device_code",
        "code",
        "sig",
        "signature",
        "secret",
        "token",
    )
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys (certificate credentials).
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL
        ),
        f"-----{REDACTED} PRIVATE KEY-----",
    ),
    # JWTs (access tokens, id tokens, client assertions, managed identity tokens).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Authorization header schemes.
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{20,}", re.IGNORECASE), rf"\1 {REDACTED}"),
    (re.compile(r"\b(Token)\s+[A-Za-z0-9=+/_-]{16,}"), rf"\1 {REDACTED}"),
    # Form bodies and query strings: client_secret=..., sig=..., password=...
    (re.compile(rf"(?i)\b({_FORM_KEYS})=([^&\s\"',;]+)"), rf"\1={REDACTED}"),
    # JSON fields holding secrets (token responses, Key Vault secret bodies).
    (
        re.compile(
            rf"(?i)([\"'](?:{_FORM_KEYS}|value|private_key|passphrase)[\"']\s*:\s*[\"'])([^\"']*)([\"'])"
        ),
        rf"\1{REDACTED}\3",
    ),
    # Standard Webhooks signatures (`v1,<base64>`) and signature headers.
    (re.compile(r"\bv1a?,[A-Za-z0-9+/=_-]{16,}"), f"v1,{REDACTED}"),
    (re.compile(r"(?i)\b(webhook-signature|x-[a-z-]*signature)(\s*[:=]\s*)([^\s,;]+)"), rf"\1\2{REDACTED}"),
)


class _SecretRegistry:
    """Literal secret values seen by this worker, bounded so per-request values cannot grow it without end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        variants = {value, quote_plus(value), quote(value, safe="")}
        with self._lock:
            changed = False
            for variant in variants:
                if len(variant) < _MIN_SECRET_LENGTH:
                    continue
                if variant in self._values:
                    self._values.move_to_end(variant)
                    continue
                self._values[variant] = None
                changed = True
            while len(self._values) > _MAX_REGISTERED:
                self._values.popitem(last=False)
                changed = True
            if changed:
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def pattern(self) -> re.Pattern[str] | None:
        return self._pattern

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None


_registry = _SecretRegistry()


def register_secret(value: str | None) -> None:
    """Remember a secret value (and its URL-encoded forms) so it is redacted wherever it shows up."""
    if value:
        _registry.add(value)


def redact(text: str) -> str:
    """Return `text` with every known secret and secret-shaped substring replaced by [REDACTED]."""
    if not text:
        return text
    literal = _registry.pattern()
    if literal is not None:
        text = literal.sub(REDACTED, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep the raw template, still redacted
        message = str(record.msg)
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters reuse exc_text when set, so the redacted traceback is what gets written.
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactionFilter(logging.Filter):
    """A logging filter that rewrites each record's message, exception text and stack in place; never
    drops."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, _MARK, False):
            _redact_record(record)
            setattr(record, _MARK, True)
        return True


_install_lock = threading.Lock()
# (our factory, the factory it wraps) while installed.
_installed: list[tuple[Callable[..., logging.LogRecord], Callable[..., logging.LogRecord]]] = []


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Redact every log record of this process. Idempotent; call once at app (or CLI) start."""
    target = logger or logging.getLogger()
    with _install_lock:
        if not any(isinstance(f, RedactionFilter) for f in target.filters):
            target.addFilter(RedactionFilter())
        for handler in target.handlers:
            if not any(isinstance(f, RedactionFilter) for f in handler.filters):
                handler.addFilter(RedactionFilter())
        current = logging.getLogRecordFactory()
        if _installed and current is _installed[0][0]:
            return
        previous = current

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            setattr(record, _MARK, True)
            return record

        _installed[:] = [(factory, previous)]
        logging.setLogRecordFactory(factory)


def uninstall_redaction(logger: logging.Logger | None = None) -> None:
    """Undo `install_redaction()` (tests that must leave the process as they found it)."""
    target = logger or logging.getLogger()
    with _install_lock:
        for holder in [target, *target.handlers]:
            for existing in [f for f in holder.filters if isinstance(f, RedactionFilter)]:
                holder.removeFilter(existing)
        if _installed and logging.getLogRecordFactory() is _installed[0][0]:
            logging.setLogRecordFactory(_installed[0][1])
        _installed.clear()
