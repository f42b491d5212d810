"""What the pull engine needs from an alert source (the Defender for Cloud Apps API, Microsoft Graph).

A source turns a checkpoint into pages of new records and says where the checkpoint stands once a page is
delivered; the engine owns everything else (lease, delivery to the sinks, commit after delivery, time and
page budgets, health records). So both sources share one no-loss, no-duplicate delivery path, and a source
only has to answer "what comes after this checkpoint".

Contract of `pages(cp, window, stats)`:
- every yielded page holds records the checkpoint `cp` (advanced by the pages before it) does not cover,
  each (id, version) once, and the checkpoint after they are delivered (never earlier than the one before);
- a page with no records is the last one: its checkpoint may still differ (cursor moved past records that
  were all delivered before) and is kept without a delivery;
- the engine may stop iterating after any page (budget, page cap); the generator is then closed and must
  release what it holds (a prefetch thread);
- requests respect `window.deadline`, and count into `stats`.

`probe(cp)` answers "is anything newer than this checkpoint?" with one cheap request (a one-item page), so a
scheduler can poll many tenants often and pull only where something changed.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.alerts.checkpoints import Checkpoint
from shared.alerts.model import NormalizedAlert
from shared.mda.client import RequestStats
from shared.mda.filters import Filter


@dataclass(frozen=True)
class PageWindow:
    """Bounds of one run's paging, set by the engine."""

    end_ms: int | None  # inclusive end of the window on the source's cursor (settle delay, a job's `until`)
    deadline: float  # on `clock`: no query may run past it
    max_pages: int  # pages this run may still deliver (a source prefetches only within it)
    clock: Callable[[], float]
    filters: Filter = field(default_factory=Filter)  # MDA filter grammar (ad-hoc jobs); MDA only


@dataclass(frozen=True)
class SourcePage:
    alerts: Sequence[NormalizedAlert]  # new records, in delivery order
    checkpoint: Checkpoint  # the cursor once `alerts` are delivered (the engine adds the ETag and lease)
    more: bool  # another page may follow at once
    malformed: int = 0  # items skipped because they could not be read (logged by the source)


class AlertSource(Protocol):
    name: str  # "mda" | "graph": the `source` of every record it yields

    def pages(
        self, cp: Checkpoint, window: PageWindow, stats: RequestStats
    ) -> Generator[SourcePage, None, None]: ...

    def probe(
        self, cp: Checkpoint, *, deadline: float | None = None, stats: RequestStats | None = None
    ) -> bool:
        """True when the source holds something newer than `cp` (one request, a one-item page)."""
        ...


def version_key(record: Mapping[str, Any]) -> str:
    """The delivery identity of a record: its id and, for schema 2, its version."""
    version = record.get("version")
    return f"{record['id']}:{version}" if version is not None else str(record["id"])
