"""Durations and instants: one grammar each, with the policy (what a surface accepts) passed by the caller.

Durations are `<number><unit>` with units s, m, h, d, w; a `DurationGrammar` says whether a bare number is
allowed (and in which unit), whether fractions and surrounding spaces are, whether ISO-8601 durations
(`P7D`, `PT36H`, `P1DT12H`) are, and how many digits a number may have. Instants are either RFC 3339
(what OpenAPI's `format: date-time` means: seconds and an offset are mandatory, so a time never depends on the
server's zone) or any ISO-8601 form Python reads, where a time without an offset is UTC (hand-typed by an
operator). Pure functions, no I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from shared.errors import ConfigurationError, ValidationError

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ISO_DURATION = re.compile(
    r"^P(?:(\d{1,5})W)?(?:(\d{1,5})D)?(?:T(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,10})S)?)?$"
)
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$")
_RFC3339_NO_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?$")

# A service's ISO-8601 time (Graph sends up to 7 fractional digits; offset optional, UTC if absent).
_SERVICE_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$", re.IGNORECASE
)
_FIRST, _LAST = "0001-01-01", "9999-12-31"  # what a datetime holds
InstantGrammar = Literal["rfc3339", "iso8601"]


@dataclass(frozen=True)
class DurationGrammar:
    """What one surface accepts as a duration (every duration must be longer than zero)."""

    bare_unit: str | None = None  # the unit of a number without one; None: a unit is required
    fractions: bool = False  # `1.5h`
    spaces: bool = False  # ` 90 m `
    iso: bool = False  # `P7D`, `PT36H`
    max_digits: int | None = None  # digits of the number (None: any)
    echo: bool = False  # error messages end with `, got '<text>'`

    def pattern(self) -> re.Pattern[str]:
        digits = rf"\d{{1,{self.max_digits}}}" if self.max_digits else r"\d+"
        number = rf"({digits}(?:\.\d+)?)" if self.fractions else rf"({digits})"
        unit = "([smhdw]?)" if self.bare_unit else "([smhdw])"
        space = r"\s*" if self.spaces else ""
        return re.compile(f"^{space}{number}{space}{unit}{space}$", re.IGNORECASE)


# Settings and operator input (`MCAS_FIRST_FETCH_LOOKBACK`, the ad-hoc pull message): `1.5h`, `90 m`, `3600`.
SETTING_DURATION = DurationGrammar(bare_unit="s", fractions=True, spaces=True, echo=True)
# Command-line options (`mcasctl alerts pull --lookback`): the settings grammar, but a unit is required.
OPTION_DURATION = DurationGrammar(fractions=True, spaces=True, echo=True)
# The jobs API (and its OpenAPI document): `90m`, `24h`, `7d`, `2w` or ISO-8601, nothing else.
API_DURATION = DurationGrammar(iso=True, max_digits=7)


def duration_seconds(text: str, grammar: DurationGrammar) -> float:
    """A duration in seconds (> 0, finite); ValueError with a short reason otherwise."""
    got = f", got {text!r}" if grammar.echo else ""
    value = text or ""
    seconds: float | None = None
    match = grammar.pattern().match(value)
    if match:
        unit = _UNIT_S[(match.group(2) or grammar.bare_unit or "s").lower()]
        seconds = float(match.group(1)) * unit if grammar.fractions else float(int(match.group(1)) * unit)
    elif grammar.iso:
        upper = value.upper()
        iso = _ISO_DURATION.match(upper)
        if iso and upper not in ("P", "PT") and not upper.endswith("T"):
            weeks, days, hours, minutes, secs = (int(g) if g else 0 for g in iso.groups())
            seconds = float(weeks * 604800 + days * 86400 + hours * 3600 + minutes * 60 + secs)
    if seconds is None:
        examples = "90m, 24h, 7d or ISO-8601 like PT24H" if grammar.iso else "90m, 24h or 7d"
        raise ValueError(f"must be a duration such as {examples}{got}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be longer than zero{got}")
    return seconds


def parse_duration(text: str, grammar: DurationGrammar) -> timedelta:
    """A duration as a timedelta; ValueError with a short reason otherwise."""
    seconds = duration_seconds(text, grammar)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError("is too long") from None


def setting_seconds(text: str, *, name: str, grammar: DurationGrammar = SETTING_DURATION) -> float:
    """A duration setting or option in seconds; `ConfigurationError` naming it otherwise."""
    try:
        return duration_seconds(text, grammar)
    except ValueError as exc:
        raise ConfigurationError(name, str(exc)) from None


def parse_instant(text: str, grammar: InstantGrammar) -> datetime:
    """An instant as an aware datetime; ValueError with a short reason otherwise.

    `rfc3339`: `2024-05-01T10:00:00Z`, `...+02:00` (offset mandatory), returned in UTC. `iso8601`: anything
    `datetime.fromisoformat` reads (with `Z`), a missing offset meaning UTC, returned in its own offset.
    """
    if grammar == "iso8601":
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if not _RFC3339.match(text):
        if len(text) < 40 and _RFC3339_NO_OFFSET.match(text):
            raise ValueError("must include a UTC offset (Z or +hh:mm)")
        raise ValueError("must be an RFC 3339 date-time such as 2024-05-01T10:00:00Z")
    fraction = re.search(r"\.(\d+)", text)
    if fraction and len(fraction.group(1)) > 6:  # Python keeps microseconds; drop the nanosecond digits
        text = text.replace(fraction.group(0), fraction.group(0)[:7])
    try:
        parsed = datetime.fromisoformat(text.upper())
    except ValueError:
        raise ValueError("is not a valid date-time (check the date and time fields)") from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is still year 0 in UTC
        raise ValueError(f"must lie between {_FIRST} and {_LAST} in UTC") from None


def iso(moment: datetime) -> str:
    """Millisecond-precision UTC ISO string, the form every job timestamp uses."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_ms(epoch_ms: int) -> str:
    """`iso` of an epoch-millisecond time (alert times, watermarks)."""
    return iso(datetime.fromtimestamp(epoch_ms / 1000, tz=UTC))


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def parse_iso_us(value: Any, *, what: str) -> int:
    """ISO-8601 (Graph sends up to 7 fractional digits) -> microseconds since the epoch; exact to 1 µs."""
    match = _SERVICE_ISO.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValidationError(f"{what} is not an ISO-8601 date-time ({value!r:.40})")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = (match.group(7) or "")[:6].ljust(6, "0")
    zone = match.group(8) or "Z"
    tz = UTC
    if zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        moment = datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=tz)
    except ValueError as exc:
        raise ValidationError(f"{what} is not a valid date-time ({exc})") from None
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso_utc_us(epoch_us: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=epoch_us)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
