"""The job request body is described once: the OpenAPI document publishes the validator's own schemas, and the
rules Schemathesis once found missing (since xor lookback, the callback host) are in them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import ValidationError
from shared.jobs import openapi, request_schema
from shared.jobs.schema import ValidationContext, callback_url_problem, validate_job

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _document_validator(name: str) -> jsonschema.Draft7Validator:
    """Validate against a component of the served document, `$ref`s resolved inside the document."""
    document = openapi.document()
    return jsonschema.Draft7Validator({"$ref": f"#/components/schemas/{name}", **document})


def test_the_documents_request_body_schemas_are_the_validators_own():
    published = openapi.document()["components"]["schemas"]
    for name, schema in request_schema.SCHEMAS.items():
        assert published[name] is schema
    body = openapi.document()["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/JobRequest"}


def test_the_validator_allows_exactly_the_schemas_fields():
    for action, name in request_schema.SCHEMA_BY_ACTION.items():
        for field in request_schema.fields(name):
            try:
                validate_job({"action": action, field: object()}, ValidationContext(now=NOW))
            except ValidationError as exc:
                assert "is not a field" not in exc.field_errors.get(field, ""), (action, field)
        with pytest.raises(ValidationError) as caught:
            validate_job({"action": action, "notAField": 1}, ValidationContext(now=NOW))
        assert caught.value.field_errors["notAField"] == f"is not a field of {action} jobs"


def test_the_document_refuses_a_window_with_both_since_and_lookback():
    validator = _document_validator("JobRequest")
    both = {"action": "alerts.fetch", "window": {"since": "2025-12-31T00:00:00Z", "lookback": "24h"}}
    assert not validator.is_valid(both)
    with pytest.raises(ValidationError) as caught:
        validate_job(both, ValidationContext(now=NOW))
    assert caught.value.field_errors == {"window": "give either since or lookback, not both"}
    for window in ({"since": "2025-12-31T00:00:00Z"}, {"lookback": "24h"}, {}):
        body = {"action": "alerts.fetch", "window": window}
        assert validator.is_valid(body), window
        validate_job(body, ValidationContext(now=NOW))


@pytest.mark.parametrize(
    ("url", "documented"),
    [
        ("https://soar.example.com/hooks/1", True),
        ("HTTPS://SOAR.EXAMPLE.COM/hooks/1", True),
        ("https://203.0.113.9:8443/cb", True),  # a pattern cannot tell public from private addresses
        ("https://[2606:4700::1111]/cb", True),
        ("https://intranet/cb", False),  # not fully qualified
        ("https://intranet/a.b", False),  # the dot is in the path, not the host
        ("http://soar.example.com/cb", False),
        ("https:///cb", False),
        ("https://soar.example.com/a b", False),
    ],
)
def test_the_documented_callback_pattern_says_https_and_a_qualified_host(url: str, documented: bool) -> None:
    validator = _document_validator("MarkJob")
    body = {"action": "alerts.mark_read", "ids": ["a" * 24], "callbackUrl": url}
    assert validator.is_valid(body) is documented
    if not documented:  # what the document refuses the validator refuses too
        assert callback_url_problem(url, allow_loopback=False)


_URL_PARTS = st.sampled_from(
    [
        "https",
        "HTTPS",
        "http",
        "https:",
        "//",
        "/",
        ":",
        "@",
        ".",
        "[",
        "]",
        "::1",
        "?",
        "#",
        "%",
        " ",
        "\t",
        "a",
        "example",
        "com",
        "10",
        "127.0.0.1",
        "203.0.113.9",
        "2606:4700::1111",
        "8443",
        "99999",
        "localhost",
        "é",
        "-",
        "_",
    ]
)


@settings(max_examples=800, deadline=None, derandomize=True, database=None)
@given(st.lists(_URL_PARTS, min_size=1, max_size=12).map("".join))
def test_every_callback_the_validator_accepts_matches_the_documented_pattern(text: str) -> None:
    """The document may only be wider than the validator (Schemathesis checks invalid data is refused)."""
    pattern = re.compile(request_schema.CALLBACK_URL_PATTERN)
    for candidate in (text, f"https://{text}", f"https://{text}.example/x"):
        if callback_url_problem(candidate, allow_loopback=False) is None:
            assert pattern.match(candidate), candidate


def test_document_lookback_pattern_is_wider_than_the_api_grammar() -> None:
    from shared.timeparse import API_DURATION, duration_seconds

    pattern = re.compile(request_schema.LOOKBACK_PATTERN)
    for text in ("90m", "24H", "7d", "2w", "PT36H", "P7D", "pt1h", "P1DT12H", "9999999s"):
        duration_seconds(text, API_DURATION)
        assert pattern.match(text), text
