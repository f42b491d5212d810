"""One registry of the worker's lazily built singletons, so tests and `mcasctl` can reset them all at once.

Each module that keeps a per-worker cache (settings, credentials, API sessions, storage clients) registers its
reset function here at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_resets: list[Callable[[], None]] = []
_lock = threading.Lock()


def register_cache_reset(fn: Callable[[], None]) -> None:
    with _lock:
        if fn not in _resets:
            _resets.append(fn)


def reset_all_caches() -> None:
    with _lock:
        resets = list(_resets)
    for reset in resets:
        reset()
