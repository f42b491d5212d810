"""One duration grammar and one instant grammar; each surface passes its policy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import ConfigurationError
from shared.timeparse import (
    API_DURATION,
    SETTING_DURATION,
    duration_seconds,
    parse_duration,
    parse_instant,
    setting_seconds,
)


@pytest.mark.parametrize(
    ("text", "setting", "api"),
    [
        ("90m", 5400, 5400),
        ("24H", 86400, 86400),
        ("2w", 1209600, 1209600),
        ("3600", 3600, None),  # a bare number: seconds in settings, refused by the API
        ("1.5h", 5400, None),
        (" 90 m ", 5400, None),
        ("PT36H", None, 129600),
        ("P1DT12H", None, 129600),
        ("12345678s", 12345678, None),  # the API allows 7 digits
        ("1y", None, None),
    ],
)
def test_each_grammar_accepts_its_own_forms(text: str, setting: float | None, api: float | None) -> None:
    for grammar, expected in ((SETTING_DURATION, setting), (API_DURATION, api)):
        if expected is None:
            with pytest.raises(ValueError, match="must be a duration such as"):
                duration_seconds(text, grammar)
        else:
            assert duration_seconds(text, grammar) == expected


def test_messages_follow_the_policy() -> None:
    with pytest.raises(ValueError) as api:
        duration_seconds("1y", API_DURATION)
    assert str(api.value) == "must be a duration such as 90m, 24h, 7d or ISO-8601 like PT24H"
    with pytest.raises(ConfigurationError) as setting:
        setting_seconds("1y", name="MCAS_FIRST_FETCH_LOOKBACK")
    assert (
        str(setting.value) == "MCAS_FIRST_FETCH_LOOKBACK must be a duration such as 90m, 24h or 7d, got '1y'"
    )
    for text, grammar in (("0m", API_DURATION), ("PT0S", API_DURATION), ("0", SETTING_DURATION)):
        with pytest.raises(ValueError, match="must be longer than zero"):
            duration_seconds(text, grammar)
    with pytest.raises(ValueError, match="must be a duration"):
        duration_seconds("24", replace(SETTING_DURATION, bare_unit=None))
    assert parse_duration("P7D", API_DURATION) == timedelta(days=7)
    with pytest.raises(ConfigurationError, match="longer than zero"):
        setting_seconds("9" * 400 + "w", name="x")  # overflows to infinity


def test_rfc3339_needs_an_offset_and_iso8601_reads_a_missing_one_as_utc() -> None:
    assert parse_instant("2024-05-01T12:00:00+02:00", "rfc3339") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="must include a UTC offset"):
        parse_instant("2024-05-01T10:00:00", "rfc3339")
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_instant("2024-05-01", "rfc3339")
    with pytest.raises(ValueError, match="not a valid date-time"):
        parse_instant("2024-02-30T10:00:00Z", "rfc3339")
    assert parse_instant("2024-05-01T10:00:00", "iso8601") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_instant("2024-05-01", "iso8601") == datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_instant("last week", "iso8601")
