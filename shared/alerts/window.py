"""An alert window - `since` or `lookback`, and `until` - made absolute: one parser, one policy per surface.

The ad-hoc pull message and the jobs API both describe a window this way; `parse_window` turns the raw values
into absolute microseconds since the epoch or field errors, and a `WindowRules` says what each surface accepts
(instant and duration grammars, caps, messages) and lives with the surface. Pure: the caller passes the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.timeparse import DurationGrammar, InstantGrammar, duration_seconds, parse_instant

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
# The instants a datetime holds, as microseconds since the epoch.
DATETIME_BOUNDS_US = (
    (datetime.min.replace(tzinfo=UTC) - EPOCH) // _US,
    (datetime.max.replace(tzinfo=UTC) - EPOCH) // _US,
)
_Fail = Callable[..., None]


@dataclass(frozen=True)
class WindowRules:
    """What one surface accepts; the messages keep each surface's wording."""

    instants: InstantGrammar
    durations: DurationGrammar
    instant_hint: str  # "must be <hint>" for an instant of the wrong type (and, echoed, a bad one)
    epoch_ms: bool = False  # integers are epoch milliseconds
    echo_bad_instant: bool = False  # a bad instant string is refused as "must be <hint>, got '<text>'"
    null_start_is_absent: bool = True  # False: a `since`/`lookback` key counts as given even when null
    lookback_must_be_text: bool = True  # False: any value is read as its text (`3600` = 3600 s)
    both_message: str = "give either since or lookback, not both"
    default_lookback: timedelta = timedelta(hours=24)
    max_span: timedelta | None = None  # the service keeps alerts for this long
    future_skew: timedelta | None = None  # `until` may be at most this far ahead of now
    bounds_us: tuple[int, int] | None = None  # inclusive range both ends must lie in
    bounds_message: str = ""
    empty_allowed: bool = False  # since == until
    order_error: tuple[str, str] = ("since", "must be before {until}")  # (field, message) for until <= since
    until_first: bool = False  # read (and report) `until` before `since`/`lookback`
    lookback_from_now: bool = False  # `lookback` reaches back from now (False: from `until`)


@dataclass(frozen=True)
class WindowError:
    path: str
    problem: str
    parsing: bool  # a value that could not be read (False: values read, but the window they make is refused)

    def __str__(self) -> str:
        return f"{self.path} {self.problem}" if self.path else self.problem


@dataclass(frozen=True)
class Window:
    """Absolute bounds in microseconds since the epoch (None when errors were found)."""

    since_us: int | None = None
    until_us: int | None = None
    errors: list[WindowError] = field(default_factory=list)

    @property
    def since_ms(self) -> int:
        return _require(self.since_us) // 1000

    @property
    def until_ms(self) -> int:
        return _require(self.until_us) // 1000

    @property
    def since(self) -> datetime:
        return EPOCH + _require(self.since_us) * _US

    @property
    def until(self) -> datetime:
        return EPOCH + _require(self.until_us) * _US


def _require(value: int | None) -> int:
    if value is None:
        raise ValueError("the window has errors")
    return value


def parse_window(raw: Mapping[str, Any], rules: WindowRules, *, now: datetime, prefix: str = "") -> Window:
    """`raw` holds since/until/lookback (other keys are the caller's business); every problem becomes a
    `WindowError` whose path starts with `prefix`."""
    errors: list[WindowError] = []
    now_us = _us(now)

    def path(name: str) -> str:
        return f"{prefix}.{name}" if prefix and name else prefix or name

    def fail(name: str, problem: str, *, parsing: bool = True) -> None:
        errors.append(WindowError(path(name), problem, parsing))

    def given(name: str) -> bool:
        return raw.get(name) is not None if rules.null_start_is_absent else name in raw

    def read_until() -> int | None:
        if raw.get("until") is None:
            return now_us
        parsed = _instant(raw["until"], "until", rules, fail)
        if (
            parsed is not None
            and rules.future_skew is not None
            and parsed > now_us + _us_of(rules.future_skew)
        ):
            fail("until", "must not be in the future")
            return None
        return parsed

    until_us = read_until() if rules.until_first else None
    since_us: int | None = None
    lookback_us: int | None = None
    if given("since") and given("lookback"):
        fail("", rules.both_message)
    elif given("since"):
        since_us = _instant(raw["since"], "since", rules, fail)
    else:
        lookback_us = _lookback(raw.get("lookback"), given("lookback"), rules, fail)
    if not rules.until_first:
        until_us = read_until()
    if errors:
        return Window(errors=errors)
    until_us = _require(until_us)
    if since_us is None:
        since_us = (now_us if rules.lookback_from_now else until_us) - _require(lookback_us)
    if rules.bounds_us is not None:
        low, high = rules.bounds_us
        for name, value in (("since", since_us), ("until", until_us)):
            if not low <= value <= high:
                fail(name, rules.bounds_message, parsing=False)
                return Window(errors=errors)
    if since_us > until_us or (since_us == until_us and not rules.empty_allowed):
        name, problem = rules.order_error
        fail(name, problem.format(until=path("until")), parsing=False)
    elif rules.max_span is not None and until_us - since_us > _us_of(rules.max_span):
        fail("", f"must span at most {rules.max_span.days} days", parsing=False)
    return Window(errors=errors) if errors else Window(since_us, until_us)


def _instant(value: Any, name: str, rules: WindowRules, fail: _Fail) -> int | None:
    if rules.epoch_ms and isinstance(value, int) and not isinstance(value, bool):
        return value * 1000
    if not isinstance(value, str):
        fail(name, f"must be {rules.instant_hint}")
        return None
    try:
        moment = parse_instant(value, rules.instants)
    except ValueError as exc:
        fail(name, f"must be {rules.instant_hint}, got {value!r}" if rules.echo_bad_instant else str(exc))
        return None
    if rules.epoch_ms:  # a surface of epoch milliseconds works in whole milliseconds
        return int(moment.timestamp() * 1000) * 1000
    return _us(moment)


def _lookback(value: Any, given: bool, rules: WindowRules, fail: _Fail) -> int | None:
    if not given:
        return _us_of(rules.default_lookback)
    if rules.lookback_must_be_text and not isinstance(value, str):
        fail("lookback", "must be a duration string such as 24h")
        return None
    try:
        seconds = duration_seconds(str(value), rules.durations)
    except ValueError as exc:
        fail("lookback", str(exc))
        return None
    if rules.max_span is not None and seconds > rules.max_span.total_seconds():
        days = rules.max_span.days
        fail("lookback", f"must be at most {days} days (the service keeps alerts for {days} days)")
        return None
    if rules.epoch_ms:  # whole milliseconds, as above
        return int(seconds * 1000) * 1000
    return round(seconds * 1_000_000)


def _us(moment: datetime) -> int:
    return (moment - EPOCH) // _US


def _us_of(span: timedelta) -> int:
    return span // _US
