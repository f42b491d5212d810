"""The local host's NCRONTAB matcher (six fields, seconds first) and schedule expressions."""

from __future__ import annotations

import datetime as dt

import pytest

from localdev.host.cron import Schedule
from localdev.host.index import resolve_setting_expressions
from shared.errors import ConfigurationError

T0 = dt.datetime(2026, 11, 28, 12, 3, 7, 500_000, tzinfo=dt.UTC)  # a Saturday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/1 * * * * *", dt.datetime(2026, 11, 28, 12, 3, 8, tzinfo=dt.UTC)),
        ("0 */5 * * * *", dt.datetime(2026, 11, 28, 12, 5, 0, tzinfo=dt.UTC)),
        ("30 0 * * * *", dt.datetime(2026, 11, 28, 13, 0, 30, tzinfo=dt.UTC)),
        ("0 0 9-17 * * 1-5", dt.datetime(2026, 11, 30, 9, 0, 0, tzinfo=dt.UTC)),  # next weekday: Monday
        ("0 15,45 * * * *", dt.datetime(2026, 11, 28, 12, 15, 0, tzinfo=dt.UTC)),
        ("0 0 0 1 1 *", dt.datetime(2027, 1, 1, 0, 0, 0, tzinfo=dt.UTC)),
        ("0 0 0 * * 0", dt.datetime(2026, 11, 29, 0, 0, 0, tzinfo=dt.UTC)),  # Sunday = 0
        ("0 0 0 * * 7", dt.datetime(2026, 11, 29, 0, 0, 0, tzinfo=dt.UTC)),  # ... or 7
        ("0 0 0 29 2 *", dt.datetime(2028, 2, 29, 0, 0, 0, tzinfo=dt.UTC)),
        ("00:10:00", T0 + dt.timedelta(minutes=10)),
    ],
)
def test_next_occurrence(expression, expected):
    assert Schedule.parse(expression).next_after(T0) == expected


def test_day_and_weekday_must_both_match():
    # The 13th that is a Friday (NCrontab ANDs the two fields).
    assert Schedule.parse("0 0 0 13 * 5").next_after(T0) == dt.datetime(2027, 8, 13, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "expression", ["* * * * *", "61 * * * * *", "x * * * * *", "*/0 * * * * *", "00:00:00"]
)
def test_invalid_schedules_name_the_setting(expression):
    with pytest.raises(ConfigurationError, match="MCAS_ALERTS_SCHEDULE"):
        Schedule.parse(expression, setting="MCAS_ALERTS_SCHEDULE")


def test_setting_expressions_resolve_from_the_environment():
    env = {"MCAS_ALERTS_SCHEDULE": "0 */5 * * * *"}
    assert resolve_setting_expressions("%MCAS_ALERTS_SCHEDULE%", env, what="x") == "0 */5 * * * *"
    with pytest.raises(ConfigurationError, match="MISSING"):
        resolve_setting_expressions("%MISSING%", env, what="function f")
