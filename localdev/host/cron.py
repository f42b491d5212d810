"""A small six-field NCRONTAB matcher for timer triggers: `{sec} {min} {hour} {day} {month} {day-of-week}`.

Supports the forms timer schedules use: `*`, `N`, `a-b`, lists `a,b`, steps `*/N` and `a-b/N`, plus the
TimeSpan form `hh:mm:ss` (a fixed interval). Like NCrontab, day-of-month and day-of-week must BOTH match
(no cron "OR"). Day-of-week is 0-6 with 0 = Sunday (7 is accepted as Sunday too).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.errors import ConfigurationError

_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
_MAX_SEARCH_DAYS = 366 * 5  # long enough for 29 February with a weekday constraint


def _parse_field(text: str, name: str, low: int, high: int, setting: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = low, high
            elif "-" in base:
                first, _, last = base.partition("-")
                start, end = int(first), int(last)
            else:
                start = int(base)
                end = high if step_text else start
        except ValueError:
            raise ConfigurationError(setting, f"has an unsupported {name} field {text!r}") from None
        if step <= 0 or not (low <= start <= end <= high):
            raise ConfigurationError(setting, f"has an out-of-range {name} field {text!r} ({low}-{high})")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A parsed timer schedule; `next_after(t)` gives the first occurrence strictly after `t`."""

    expression: str
    seconds: frozenset[int] = frozenset()
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()  # Python's Monday=0 numbering, converted at parse time
    interval: dt.timedelta | None = None

    @classmethod
    def parse(cls, expression: str, *, setting: str = "schedule") -> Schedule:
        text = expression.strip()
        if ":" in text and " " not in text:
            return cls(expression=text, interval=_timespan(text, setting))
        parts = text.split()
        if len(parts) != len(_FIELDS):
            raise ConfigurationError(
                setting,
                f"must be a six-field NCRONTAB expression (with seconds) or hh:mm:ss, got {expression!r}",
            )
        sets = [_parse_field(p, n, lo, hi, setting) for p, (n, lo, hi) in zip(parts, _FIELDS, strict=True)]
        cron_weekdays = sets[5]
        weekdays = frozenset((d - 1) % 7 for d in cron_weekdays)  # cron Sunday=0/7 -> Python Sunday=6
        return cls(text, sets[0], sets[1], sets[2], sets[3], sets[4], weekdays)

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The next occurrence after `after` (naive or aware; the result keeps its tzinfo)."""
        if self.interval is not None:
            return after + self.interval
        start = after.replace(microsecond=0) + dt.timedelta(seconds=1)
        day = start.date()
        for _ in range(_MAX_SEARCH_DAYS):
            if day.month in self.months and day.day in self.days and day.weekday() in self.weekdays:
                first_day = day == start.date()
                for hour in sorted(self.hours):
                    if first_day and hour < start.hour:
                        continue
                    for minute in sorted(self.minutes):
                        for second in sorted(self.seconds):
                            candidate = dt.datetime.combine(day, dt.time(hour, minute, second), start.tzinfo)
                            if candidate >= start:
                                return candidate
            day += dt.timedelta(days=1)
        raise ConfigurationError("schedule", f"{self.expression!r} never fires")


def _timespan(text: str, setting: str) -> dt.timedelta:
    try:
        hours, minutes, seconds = (int(p) for p in text.split(":"))
    except ValueError:
        raise ConfigurationError(setting, f"is not a valid hh:mm:ss interval, got {text!r}") from None
    interval = dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if interval <= dt.timedelta(0):
        raise ConfigurationError(setting, "must be a positive interval")
    return interval
