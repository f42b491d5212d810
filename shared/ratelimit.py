"""The tenant-wide request budget, shared by every function and instance through Azure Table storage.

MDA allows 30 requests per rolling minute per tenant
(https://learn.microsoft.com/defender-cloud-apps/api-introduction). Timer, queue and webhook functions
scale out to many instances, so a per-process limiter cannot keep the tenant under the limit. Here the budget
is N *slots* per tenant, one table entity each (PartitionKey = tenant host, RowKey = slot number). A request
may start only after claiming a slot whose last claim is at least one window (plus a small safety margin)
old; the claim is an ETag-conditional update (or an insert-if-absent for a slot never used), so two instances
can never claim the same slot. At most N claims therefore fall into any window, whatever the instance count.

A `cooldown` entity in the same partition records "nobody sends before T" after a 429, so one instance's
throttle pauses all of them. `MCAS_RATE_LIMIT_WINDOW_SECONDS` (default 60) exists only to compress time in
tests and benchmarks; production leaves it alone.

Limitation: claim times come from each instance's wall clock; NTP keeps Azure hosts within milliseconds, which
the margin absorbs.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import ConfigurationError, TransientError

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)

DEFAULT_WINDOW_SECONDS = 60.0
COOLDOWN_ROW = "cooldown"


class RateLimitWaitTooLong(TransientError):
    """The next free slot lies beyond the caller's budget; nothing was claimed."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        super().__init__(f"the tenant's request budget frees up in {wait_s:.1f} s, beyond the time budget")


class RateLimiter(Protocol):
    def acquire(self, *, max_wait: float | None = None) -> float:
        """Block until one request may start; return the seconds waited. Raise `RateLimitWaitTooLong`."""
        ...

    def penalize(self, seconds: float) -> None:
        """The API answered 429: nobody (in any instance) sends for `seconds`."""
        ...


def window_seconds(raw: str | None) -> float:
    """Validate `MCAS_RATE_LIMIT_WINDOW_SECONDS` (testing only; default 60)."""
    if raw is None or not raw.strip():
        return DEFAULT_WINDOW_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(
            "MCAS_RATE_LIMIT_WINDOW_SECONDS", f"must be a number of seconds, got {raw!r}"
        ) from None
    if not math.isfinite(value) or value <= 0 or value > 3600:
        raise ConfigurationError("MCAS_RATE_LIMIT_WINDOW_SECONDS", f"must be > 0 and <= 3600, got {raw!r}")
    return value


def default_margin(window_s: float) -> float:
    """Slack on the window: a request sent just after its claim still lands outside the old window.

    It must cover the delay from claim to arrival at the API (a table write's return plus one request's
    network latency, incl. a new TLS connection): 0.6 s at the production 60 s window, 1% of compressed test
    windows, and at least 100 ms.
    """
    return min(1.0, max(0.1, 0.01 * window_s))


class NullRateLimiter:
    """No limit (unit tests of code that does not care about the budget)."""

    def acquire(self, *, max_wait: float | None = None) -> float:
        return 0.0

    def penalize(self, seconds: float) -> None:
        return None


class LocalRateLimiter:
    """In-process rolling window: for `mcasctl` runs without storage, and as a reference in tests."""

    def __init__(
        self,
        limit: int,
        window_s: float = DEFAULT_WINDOW_SECONDS,
        *,
        margin_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limit = limit
        self._window = window_s + (default_margin(window_s) if margin_s is None else margin_s)
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def acquire(self, *, max_wait: float | None = None) -> float:
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._stamps and self._stamps[0] + self._window <= now:
                    self._stamps.popleft()
                wait = self._blocked_until - now
                if wait <= 0:
                    if len(self._stamps) < self._limit:
                        self._stamps.append(now)
                        return waited
                    wait = self._stamps[0] + self._window - now
            if max_wait is not None and waited + wait > max_wait:
                raise RateLimitWaitTooLong(wait)
            self._sleep(wait)
            waited += wait

    def penalize(self, seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)


@dataclass(frozen=True)
class Slot:
    index: int
    used_at: float  # epoch seconds of the last claim
    etag: str | None


@dataclass(frozen=True)
class PartitionState:
    slots: dict[int, Slot]
    cooldown_until: float
    cooldown_etag: str | None


class SlotStore(Protocol):
    """Where slots live: Azure Table storage in the app, a dict in unit tests."""

    def read(self, key: str) -> PartitionState: ...

    def claim(self, key: str, slot: Slot, used_at: float, owner: str) -> str | None:
        """Conditionally record a claim; the slot's new ETag, or None when another claimant won the race."""
        ...

    def set_cooldown(self, key: str, until: float, state: PartitionState) -> None: ...


class SlotRateLimiter:
    """N slots per tenant in a shared store; see the module docstring for why this bounds every window."""

    def __init__(
        self,
        store: SlotStore,
        key: str,
        limit: int,
        window_s: float = DEFAULT_WINDOW_SECONDS,
        *,
        margin_s: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        owner: str | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._store = store
        self._key = key
        self._limit = limit
        self._window = window_s
        self._span = window_s + (default_margin(window_s) if margin_s is None else margin_s)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._owner = owner or f"{os.getpid()}-{threading.get_ident()}"
        # The partition as last read, updated with our own claims. Claims stay conditional on each slot's
        # ETag, so a stale cache can cost a retry but never a double claim; it saves one read per request.
        self._cached: PartitionState | None = None
        self._cached_at = -math.inf
        self._cache_ttl = min(1.0, window_s / 10)
        self._cache_lock = threading.Lock()
        self.claims = 0
        self.conflicts = 0
        self.reads = 0

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def window_s(self) -> float:
        return self._window

    def _state(self, *, fresh: bool) -> PartitionState:
        with self._cache_lock:
            cached, age = self._cached, self._clock() - self._cached_at
        if cached is not None and not fresh and age < self._cache_ttl:
            return cached
        state = self._store.read(self._key)
        self.reads += 1
        with self._cache_lock:
            self._cached, self._cached_at = state, self._clock()
        return state

    def _remember(self, slot: Slot) -> None:
        with self._cache_lock:
            if self._cached is not None:
                slots = {**self._cached.slots, slot.index: slot}
                self._cached = PartitionState(slots, self._cached.cooldown_until, self._cached.cooldown_etag)

    def acquire(self, *, max_wait: float | None = None) -> float:
        waited = 0.0
        fresh = False
        while True:
            state = self._state(fresh=fresh)
            fresh = False
            now = self._clock()
            if state.cooldown_until > now:
                wait = state.cooldown_until - now
            else:
                free = [
                    i
                    for i in range(self._limit)
                    if i not in state.slots or state.slots[i].used_at + self._span <= now
                ]
                if free:
                    # A random free slot keeps concurrent instances from all racing for the same one.
                    index = free[int(self._rng() * len(free)) % len(free)]
                    slot = state.slots.get(index, Slot(index, 0.0, None))
                    etag = self._store.claim(self._key, slot, now, self._owner)
                    if etag is not None:
                        self._remember(Slot(index, now, etag))
                        self.claims += 1
                        return waited
                    self.conflicts += 1
                    fresh = True  # someone else claimed it: look at the partition again
                    continue
                oldest = min(state.slots[i].used_at for i in range(self._limit))
                wait = oldest + self._span - now
            # A few ms of jitter so instances waiting for the same slot do not all wake at once. Kept tiny: a
            # paced pull waits once per request, so any jitter here adds up across a window's requests.
            wait = max(wait, 0.0) + self._rng() * min(0.005, 0.001 * self._window)
            if max_wait is not None and waited + wait > max_wait:
                raise RateLimitWaitTooLong(wait)
            self._sleep(wait)
            waited += wait

    def penalize(self, seconds: float) -> None:
        until = self._clock() + seconds
        for _ in range(5):
            state = self._state(fresh=True)
            if state.cooldown_until >= until:
                return
            try:
                self._store.set_cooldown(self._key, until, state)
                with self._cache_lock:
                    self._cached_at = -math.inf  # our next acquire must see the cooldown
                return
            except _Conflict:
                continue


class _Conflict(Exception):
    """Internal: a conditional write lost a race."""


class MemorySlotStore:
    """A thread-safe in-memory `SlotStore` with ETag semantics, for unit tests and single-process use."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, tuple[float, str]]] = {}
        self._lock = threading.Lock()
        self._version = 0

    def _etag(self) -> str:
        self._version += 1
        return f"v{self._version}"

    def read(self, key: str) -> PartitionState:
        with self._lock:
            rows = dict(self._data.get(key, {}))
        slots = {int(k): Slot(int(k), v[0], v[1]) for k, v in rows.items() if k != COOLDOWN_ROW}
        cooldown = rows.get(COOLDOWN_ROW)
        return PartitionState(slots, cooldown[0] if cooldown else 0.0, cooldown[1] if cooldown else None)

    def claim(self, key: str, slot: Slot, used_at: float, owner: str) -> str | None:
        with self._lock:
            rows = self._data.setdefault(key, {})
            current = rows.get(str(slot.index))
            if (current[1] if current else None) != slot.etag:
                return None
            etag = self._etag()
            rows[str(slot.index)] = (used_at, etag)
            return etag

    def set_cooldown(self, key: str, until: float, state: PartitionState) -> None:
        with self._lock:
            rows = self._data.setdefault(key, {})
            current = rows.get(COOLDOWN_ROW)
            if (current[1] if current else None) != state.cooldown_etag:
                raise _Conflict
            rows[COOLDOWN_ROW] = (until, self._etag())


class TableSlotStore:
    """Slots as Azure Table entities; claims are ETag-conditional updates or inserts that fail if present."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def read(self, key: str) -> PartitionState:
        slots: dict[int, Slot] = {}
        cooldown_until, cooldown_etag = 0.0, None
        escaped = key.replace("'", "''")
        query = f"PartitionKey eq '{escaped}'"
        for entity in self._table.query_entities(query, select=["RowKey", "used_at"]):
            row = str(entity["RowKey"])
            used_at = float(entity.get("used_at") or 0.0)
            etag = _etag_of(entity)
            if row == COOLDOWN_ROW:
                cooldown_until, cooldown_etag = used_at, etag
            elif row.isdigit():
                slots[int(row)] = Slot(int(row), used_at, etag)
        return PartitionState(slots, cooldown_until, cooldown_etag)

    def _write(self, key: str, row: str, used_at: float, owner: str, etag: str | None) -> str | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": key, "RowKey": row, "used_at": float(used_at), "owner": owner}
        try:
            if etag is None:
                meta = self._table.create_entity(entity)
            else:
                meta = self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None
        return str(meta.get("etag") or "") or None

    def claim(self, key: str, slot: Slot, used_at: float, owner: str) -> str | None:
        return self._write(key, f"{slot.index:04d}", used_at, owner, slot.etag)

    def set_cooldown(self, key: str, until: float, state: PartitionState) -> None:
        if self._write(key, COOLDOWN_ROW, until, "429", state.cooldown_etag) is None:
            raise _Conflict


def _etag_of(entity: Any) -> str | None:
    metadata = getattr(entity, "metadata", None) or {}
    etag = metadata.get("etag")
    return str(etag) if etag else None


def partition_key(api_url: str) -> str:
    """One budget per MDA tenant host, whichever profile names it (Table keys forbid / \\ # ?)."""
    host = api_url.split("://", 1)[-1].split("/", 1)[0].lower()
    return "".join(c if c.isalnum() or c in ".-_:" else "_" for c in host) or "default"


_limiters: dict[tuple[str, int, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(api_url: str, limit: int) -> RateLimiter:
    """The worker's limiter for one tenant host: table-backed when storage is configured, else in-process."""
    from shared.settings import get_settings

    settings = get_settings()
    window = window_seconds(settings.get("MCAS_RATE_LIMIT_WINDOW_SECONDS"))
    # The window is part of the key so a time-compressed test run never shares slots with 60 s users.
    key = partition_key(api_url)
    if window != DEFAULT_WINDOW_SECONDS:
        key = f"{key}~{window:g}s"
    cache_key = (key, limit, window)
    with _limiters_lock:
        limiter = _limiters.get(cache_key)
        if limiter is None:
            if settings.storage.configured:
                from shared.storage import TABLE_RATE_LIMIT, table_client

                store = TableSlotStore(table_client(TABLE_RATE_LIMIT))
                limiter = SlotRateLimiter(store, cache_key[0], limit, window)
            else:
                log.warning("AzureWebJobsStorage is not set: the request budget is held in this process only")
                limiter = LocalRateLimiter(limit, window)
            _limiters[cache_key] = limiter
        return limiter


def reset_limiters() -> None:
    with _limiters_lock:
        _limiters.clear()


def _register() -> None:
    from shared.caches import register_cache_reset

    register_cache_reset(reset_limiters)


_register()
