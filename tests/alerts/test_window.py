"""One window parser for the ad-hoc pull message and the jobs API; each surface's rules say what differs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.alerts.adhoc import QUEUE_WINDOW, parse_job
from shared.alerts.window import parse_window
from shared.errors import ValidationError
from shared.jobs.schema import API_WINDOW

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def test_both_surfaces_use_the_same_parser_with_their_own_field_names() -> None:
    raw = {"since": "2025-12-31T00:00:00Z", "until": "2025-12-31T12:00:00Z"}
    api = parse_window(raw, API_WINDOW, now=NOW, prefix="window")
    queue = parse_window(raw, QUEUE_WINDOW, now=NOW)
    assert (
        (api.since, api.until)
        == (queue.since, queue.until)
        == (
            datetime(2025, 12, 31, tzinfo=UTC),
            datetime(2025, 12, 31, 12, tzinfo=UTC),
        )
    )
    job = parse_job(json.dumps(raw), now_ms=NOW_MS, default_job_id="j")
    assert (job.start_ms, job.end_ms) == (api.since_ms, api.until_ms)
    both = {"since": "2025-12-31T00:00:00Z", "lookback": "1h"}
    assert [(e.path, e.problem) for e in parse_window(both, API_WINDOW, now=NOW, prefix="window").errors] == [
        ("window", "give either since or lookback, not both")
    ]
    assert [str(e) for e in parse_window(both, QUEUE_WINDOW, now=NOW).errors] == [
        "give since or lookback, not both"
    ]


@pytest.mark.parametrize(
    ("raw", "api_error", "queue_ok"),
    [
        ({"lookback": "3600"}, ("window.lookback", "must be a duration such as"), True),  # bare seconds
        ({"lookback": "PT1H"}, None, False),  # ISO durations: the API only
        (
            {"since": 1767139200000},
            ("window.since", "must be an ISO-8601 date-time string"),
            True,
        ),  # epoch ms
        ({"since": "2025-12-31T00:00:00"}, ("window.since", "must include a UTC offset"), True),
        ({"lookback": "181d"}, ("window.lookback", "must be at most 180 days"), True),  # the API caps
        (
            {"until": "2026-02-01T00:00:00Z", "lookback": "1h"},
            ("window.until", "must not be in the future"),
            True,
        ),
        (
            {"since": "2025-12-31T00:00:00Z", "until": "2025-12-31T00:00:00Z"},
            ("window.since", "must be before"),
            True,
        ),
    ],
)
def test_where_the_grammars_differ(raw: dict, api_error: tuple[str, str] | None, queue_ok: bool) -> None:
    api = parse_window(raw, API_WINDOW, now=NOW, prefix="window")
    if api_error is None:
        assert not api.errors
    else:
        assert [e.path for e in api.errors] == [api_error[0]] and api.errors[0].problem.startswith(
            api_error[1]
        )
    assert (not parse_window(raw, QUEUE_WINDOW, now=NOW).errors) is queue_ok


def test_a_queue_lookback_reaches_back_from_now_and_an_api_lookback_from_until() -> None:
    raw = {"lookback": "1h", "until": "2025-12-31T00:00:00Z"}
    assert parse_window(raw, API_WINDOW, now=NOW).since == datetime(2025, 12, 30, 23, tzinfo=UTC)
    with pytest.raises(ValidationError, match="until is before since"):
        parse_job(json.dumps(raw), now_ms=NOW_MS, default_job_id="j")
    assert parse_window({"lookback": "1h"}, QUEUE_WINDOW, now=NOW).since == NOW - timedelta(hours=1)


def test_an_unreadable_time_is_reported_before_bad_filters_and_a_bad_range_after() -> None:
    bad_filters = {"filters": {"severity": 3}}
    with pytest.raises(ValidationError, match="since must be ISO-8601"):
        parse_job(json.dumps({"since": "yesterday", **bad_filters}), now_ms=NOW_MS, default_job_id="j")
    with pytest.raises(ValidationError, match=r"filters\.severity"):
        parse_job(json.dumps({"since": -5, **bad_filters}), now_ms=NOW_MS, default_job_id="j")
    with pytest.raises(ValidationError, match="since must lie between"):
        parse_job(json.dumps({"since": -5}), now_ms=NOW_MS, default_job_id="j")


@pytest.mark.parametrize(
    ("window", "path"),
    [
        ({"until": "0001-01-01T00:00:00+14:00"}, "window.until"),  # year 0 in UTC
        ({"since": "0001-01-01T00:00:00+01:00"}, "window.since"),
        ({"until": "0001-01-01T10:00:00Z", "lookback": "1d"}, "window.since"),  # reaches before year 1
    ],
)
def test_an_api_window_outside_what_a_date_holds_is_a_field_error(window: dict, path: str) -> None:
    """These raised OverflowError (a 500) before; a caller's body never may."""
    from shared.jobs.schema import ValidationContext, validate_job

    with pytest.raises(ValidationError) as caught:
        validate_job({"action": "alerts.fetch", "window": window}, ValidationContext(now=NOW))
    assert "0001-01-01 and 9999-12-31" in caught.value.field_errors[path]
