"""One registry of the worker's lazily built singletons, so tests and `mcasctl` can reset them all at once.

Each module that keeps a per-worker cache (settings, credentials, API sessions, storage clients) registers its
reset function here at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

_resets: list[Callable[[], None]] = []
_lock = threading.Lock()

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def register_cache_reset(fn: Callable[[], None]) -> None:
    with _lock:
        if fn not in _resets:
            _resets.append(fn)


def reset_all_caches() -> None:
    with _lock:
        resets = list(_resets)
    for reset in resets:
        reset()


class KeptObjects(Generic[K, V]):
    """Per-worker objects by key (a client per tenant, a credential per scope): built on first use under a
    lock, so concurrent callers share one object, and forgotten by `reset_all_caches`. The lock is re-entrant:
    a build may ask the same cache for another key."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._items: dict[K, V] = {}
        register_cache_reset(self.clear)

    def get(self, key: K, build: Callable[[], V]) -> V:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                value = self._items[key] = build()
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
