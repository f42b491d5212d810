"""Regression tests for bugs the fuzz and chaos suites found in the MDA API client. One test per bug, in
process.

Each names the failure it pins down; the fuzz- and chaos-marked tests keep exploring.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from shared.errors import TransientError
from shared.mda.client import _retry_after
from shared.mda.errors import MalformedResponseError
from tests.mda.fakes import answering_client

DEEP = "[" * 5000 + "]" * 5000  # deeper than Python's JSON parser recurses: RecursionError, not ValueError


# -- the API client: invalid JSON in a 2xx escaped as JSONDecodeError; no size cap; Retry-After: inf ----


def test_invalid_json_in_a_success_answer_is_a_malformed_response_error() -> None:
    with pytest.raises(MalformedResponseError, match="claims to be JSON"):
        answering_client(200, b'{"data": [').request("GET", "/api/v1/alerts/", idempotent=True)
    with pytest.raises(MalformedResponseError, match="claims to be JSON"):
        answering_client(200, DEEP.encode()).request("GET", "/api/v1/alerts/", idempotent=True)


def test_an_answer_above_the_size_cap_is_refused() -> None:
    with pytest.raises(MalformedResponseError, match="larger than 1000 bytes"):
        client = answering_client(200, b"[" + b"1," * 600 + b"1]", cap=1000)
        client.request("GET", "/api/v1/alerts/", idempotent=True)
    assert isinstance(MalformedResponseError("x"), TransientError)  # a bounded retry, then dead letter


@pytest.mark.parametrize("header", ["inf", "nan", "1e400", "99999999"])
def test_retry_after_is_finite_and_capped(header: str) -> None:
    r = requests.Response()
    r.headers["Retry-After"] = header
    wait = _retry_after(r, "")
    assert wait is None or 0 <= wait <= 3600
    assert _retry_after(requests.Response(), "Expected available in " + "9" * 400 + " seconds.") == 3600


# -- the alert list: hasNext "false" read as True (endless paging); non-object items dropped silently ---


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ({"data": [], "hasNext": "false"}, "hasNext is not a boolean"),
        ({"data": [{"_id": "a"}, "not an alert"], "hasNext": False}, "not an object"),
    ],
)
def test_odd_alert_lists_are_refused_not_guessed(answer: dict[str, Any], match: str) -> None:
    from shared.mda.alerts import AlertsApi

    with pytest.raises(MalformedResponseError, match=match):
        AlertsApi(answering_client(200, json.dumps(answer).encode())).query({})
