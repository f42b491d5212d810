"""ISO-8601 instants and lookback durations for job windows - pure functions, no I/O.

Durations accept the operator-friendly `90m`, `24h`, `7d`, `2w` (as `mcasctl alerts pull --lookback`) and the
ISO form `P7D` / `PT36H` / `P1DT12H`; instants must carry a UTC offset, so a window never depends on the
server's zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_SHORT = re.compile(r"^(\d{1,7})([smhdw])$", re.IGNORECASE)
_ISO = re.compile(r"^P(?:(\d{1,5})W)?(?:(\d{1,5})D)?(?:T(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,10})S)?)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# RFC 3339 date-time (what OpenAPI's `format: date-time` means): seconds and an offset are mandatory.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$")


def parse_duration(text: str) -> timedelta:
    """`90m`, `24h`, `7d`, `2w`, `PT1H30M`, `P7D` -> timedelta. Raises ValueError with a short reason."""
    value = text
    short = _SHORT.match(value)
    if short:
        return timedelta(seconds=int(short.group(1)) * _UNITS[short.group(2).lower()])
    iso = _ISO.match(value.upper())
    if iso and value.upper() not in ("P", "PT") and not value.upper().endswith("T"):
        weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in iso.groups())
        return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise ValueError("must be a duration such as 90m, 24h, 7d or ISO-8601 like PT24H")


def parse_instant(text: str) -> datetime:
    """An RFC 3339 date-time WITH offset (`2024-05-01T10:00:00Z`, `...+02:00`) -> aware UTC datetime."""
    if not _RFC3339.match(text):
        if len(text) < 40 and re.match(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?$", text):
            raise ValueError("must include a UTC offset (Z or +hh:mm)")
        raise ValueError("must be an RFC 3339 date-time such as 2024-05-01T10:00:00Z")
    fraction = re.search(r"\.(\d+)", text)
    if fraction and len(fraction.group(1)) > 6:  # Python keeps microseconds; drop the nanosecond digits
        text = text.replace(fraction.group(0), fraction.group(0)[:7])
    try:
        parsed = datetime.fromisoformat(text.upper())
    except ValueError:
        raise ValueError("is not a valid date-time (check the date and time fields)") from None
    return parsed.astimezone(UTC)


def iso(moment: datetime) -> str:
    """Millisecond-precision UTC ISO string, the form every job timestamp uses."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
