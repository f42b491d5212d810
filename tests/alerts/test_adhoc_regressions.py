"""Regression tests for bugs the fuzz and chaos suites found in the ad-hoc alert pull. One test per bug, in
process.

Each names the failure it pins down; the fuzz- and chaos-marked tests keep exploring.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.errors import McasError, ValidationError

# -- an ad-hoc pull window outside 1970..9999 crashed the checkpoint write ("year 0 is out of range") ---


@pytest.mark.parametrize(
    "window",
    [
        {"since": -62135596800001, "until": 0},
        {"since": 0, "until": 2**70},
        {"since": "0001-01-01T00:00:00+14:00"},
        {"lookback": "99999999999999999999w"},
    ],
)
def test_pull_job_windows_outside_what_a_date_holds_are_invalid(window: dict[str, Any]) -> None:
    from shared.alerts.adhoc import parse_job

    with pytest.raises(ValidationError, match="between 1970-01-01 and 9999-12-31"):
        parse_job(json.dumps(window), now_ms=1_767_225_600_000, default_job_id="j")


# -- a terminal API error in an ad-hoc pull job was raised (retried to poison) instead of dead-lettered --


def test_a_pull_job_that_the_api_refuses_for_good_is_dead_lettered(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import deadletters
    from shared.alerts import adhoc as alert_pull
    from shared.alerts.pull import PullResult

    letters: list[dict[str, Any]] = []
    monkeypatch.setattr(deadletters, "dead_letter", lambda **kw: letters.append(kw))
    refused = PullResult("t", "alerts-adhoc", "t.j", "r", "2026-01-01T00:00:00.000Z")
    refused.stopped, refused.error, refused.terminal = "error", "BadRequestError: HTTP 400: bad filter", True
    monkeypatch.setattr(alert_pull, "run_job", lambda job: refused)
    assert alert_pull.handle_job_message('{"lookback": "1h"}', message_id="m") is refused
    assert "bad filter" in letters[0]["reason"]

    transient = PullResult("t", "alerts-adhoc", "t.j", "r", "2026-01-01T00:00:00.000Z")
    transient.stopped, transient.error = "error", "ServerError: HTTP 503"
    monkeypatch.setattr(alert_pull, "run_job", lambda job: transient)
    with pytest.raises(McasError):  # raised: the host retries a transient failure
        alert_pull.handle_job_message('{"lookback": "1h"}', message_id="m2")
    assert len(letters) == 1
