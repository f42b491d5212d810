"""Is a log too old for Cloud Discovery? Cloud Discovery does not process events older than 90 days, so an
old log uploads fine and then adds nothing to the reports. The upload still happens; the result and the log
carry a warning.

Log formats differ per appliance, so this looks for calendar dates (`2024-05-01`, `2024/05/01`) in the first
and last lines of a text log and judges by the newest one found; compressed logs and logs without such dates
are not judged.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

MAX_AGE_DAYS = 90
SAMPLE_BYTES = 64 * 1024
_DATE = re.compile(rb"(?<!\d)(20\d{2}|19\d{2})[-/](0[1-9]|1[0-2])[-/](0[1-9]|[12]\d|3[01])(?!\d)")


def newest_date(samples: Iterable[bytes]) -> dt.date | None:
    newest: dt.date | None = None
    for sample in samples:
        for match in _DATE.finditer(sample):
            try:
                day = dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
            except ValueError:
                continue
            newest = day if newest is None or day > newest else newest
    return newest


def staleness_warning(name: str, samples: Iterable[bytes], *, today: dt.date | None = None) -> str | None:
    """A warning when the newest date seen in `samples` is more than 90 days before `today`."""
    newest = newest_date(samples)
    today = today or dt.datetime.now(dt.UTC).date()
    if newest is None or (today - newest).days <= MAX_AGE_DAYS:
        return None
    return (
        f"{name}: its newest event seems to date from {newest.isoformat()}, {(today - newest).days} days "
        "ago; "
        f"Cloud Discovery does not process events older than {MAX_AGE_DAYS} days, so this log may add "
        "nothing to the reports"
    )
