"""Regression tests for bugs the fuzz and chaos suites found in the queue handlers' message parsing. One test
per bug, in process.

Each names the failure it pins down; the fuzz- and chaos-marked tests keep exploring.
"""

from __future__ import annotations

import pytest

from shared.errors import ValidationError

DEEP = "[" * 5000 + "]" * 5000  # deeper than Python's JSON parser recurses: RecursionError, not ValueError


# -- deeply nested JSON in a queue message escaped as RecursionError (the host retried it to poison) --


def test_deeply_nested_messages_are_invalid_not_crashes() -> None:
    from shared.alerts.adhoc import parse_job
    from shared.deadletters import _correlation_id_of
    from shared.discovery.jobs import StorageAccount, parse_message
    from shared.jobs.worker import _parse

    with pytest.raises(ValidationError, match="not JSON"):
        parse_message(DEEP, container="c", account=StorageAccount("a", "https://a.blob.core.windows.net/"))
    with pytest.raises(ValidationError, match="not JSON"):
        parse_job(DEEP, now_ms=0, default_job_id="j")
    with pytest.raises(ValidationError, match="not JSON"):
        _parse(DEEP)
    assert _correlation_id_of(DEEP) is None  # the dead-letter store keeps such a body as it is
