"""The redaction filter: secret-shaped strings and registered secret values never reach a log record."""

from __future__ import annotations

import logging

import pytest

from shared.auth.redaction import (
    REDACTED,
    RedactionFilter,
    install_redaction,
    redact,
    register_secret,
    uninstall_redaction,
)

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiIwNWE2NTYyOSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        (f"token={JWT}&x=1", JWT),
        ("Authorization: Token AbCdEf0123456789AbCdEf0123456789", "AbCdEf0123456789AbCdEf0123456789"),
        ("grant_type=client_credentials&client_secret=Zx8~Q.abc-DEF&scope=x", "Zx8~Q.abc-DEF"),
        ("client_assertion=abc.def.ghi&client_assertion_type=jwt", "abc.def.ghi"),
        ('{"access_token": "opaque-token-value", "expires_in": 3599}', "opaque-token-value"),
        (
            "webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
            "K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN",
        ),
        ("https://blob/x?sv=2026&sig=AbCd%2Fef%3D&se=1", "AbCd%2Fef%3D"),
        ("Basic Y2xpZW50LWlkOnN1cGVyLXNlY3JldC12YWx1ZQ==", "Y2xpZW50LWlkOnN1cGVyLXNlY3JldC12YWx1ZQ=="),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\n-----END PRIVATE KEY-----", "MIIEvQIBADAN"),
    ],
)
def test_patterns(text: str, leak: str) -> None:
    out = redact(text)
    assert leak not in out
    assert REDACTED in out


def test_registered_secret_values_and_their_url_encodings() -> None:
    register_secret("pl41n~secret/with+chars")
    out = redact("value pl41n~secret/with+chars and pl41n~secret%2Fwith%2Bchars")
    assert "pl41n" not in out


def test_ordinary_text_is_kept() -> None:
    text = "Token acquisition for client 1234 took 12 ms; token cache hit; Basic auth disabled"
    assert redact(text) == text


@pytest.mark.leakcheck_exempt("logs a token on purpose; the filter under test sits only on caplog's handler")
def test_filter_rewrites_message_args_and_exception(caplog: pytest.LogCaptureFixture) -> None:
    register_secret("exc-secret-1234")
    logger = logging.getLogger("tests.auth.redaction.child")
    handler_filter = RedactionFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO):
            logger.info("sending %s", f"Bearer {JWT}")
            try:
                raise ValueError("boom exc-secret-1234")
            except ValueError:
                logger.exception("failed")
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert JWT not in caplog.text
    assert "exc-secret-1234" not in caplog.text
    assert "boom" in caplog.text


def test_install_covers_records_from_child_loggers(caplog: pytest.LogCaptureFixture) -> None:
    """Filters on the root logger do not see propagated records; the record factory does."""
    install_redaction()
    install_redaction()  # idempotent
    try:
        register_secret("child-logger-secret")
        with caplog.at_level(logging.INFO):
            logging.getLogger("some.library").info("got %s", "child-logger-secret")
        assert "child-logger-secret" not in caplog.text
        assert any(isinstance(f, RedactionFilter) for f in logging.getLogger().filters)
    finally:
        uninstall_redaction()
    assert not any(isinstance(f, RedactionFilter) for f in logging.getLogger().filters)
