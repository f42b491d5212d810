"""Request and event counters, read by tests via `GET /_admin/counters` and cleared by `POST /_admin/reset`.

Tests assert on these to prove caching and call patterns ("one discovery, one token", "Key Vault read once",
"the puller made 3 API calls"). Interface for service modules:

    counters.hit("mda", "GET /api/v1/alerts/")     # one request to an endpoint (a path template, not raw ids)
    counters.incr("tokens", "client_credentials")  # any named event in a flat group

Snapshot shape (JSON):
    {"requests": {"entra": {"token": 2, "discovery": 1}, "mda": {"GET /api/v1/alerts/": 3}, ...},
     "tokens": {"client_credentials": 2, "password": 1, ...},       # tokens issued per grant
     "keyvault_reads": {"mcas-client-secret": 1, ...},               # successful secret reads per name
     "faults": {"mda:throttle": 2, "entra:error": 1, ...},           # injected outcomes per service and kind
     ...any other group a service increments}
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from typing import Any


class Counters:
    """Thread-safe nested counters; every listener of one simulator process shares one instance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._groups: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def hit(self, service: str, endpoint: str, n: int = 1) -> None:
        """Count a request to `endpoint` (a stable name or "METHOD /path/template") of `service`."""
        with self._lock:
            self._requests[service][endpoint] += n

    def incr(self, group: str, key: str, n: int = 1) -> None:
        """Count an event `key` in the flat group `group` (e.g. "tokens", "keyvault_reads")."""
        with self._lock:
            self._groups[group][key] += n

    def get(self, group: str, key: str) -> int:
        """The current value of a flat-group counter (0 if never incremented)."""
        with self._lock:
            values = self._groups.get(group)
            return values.get(key, 0) if values else 0

    def requests(self, service: str, endpoint: str) -> int:
        """The current request count of one endpoint of `service`."""
        with self._lock:
            endpoints = self._requests.get(service)
            return endpoints.get(endpoint, 0) if endpoints else 0

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready deep copy of every counter."""
        with self._lock:
            out: dict[str, Any] = {"requests": {s: dict(e) for s, e in self._requests.items()}}
            for group, values in self._groups.items():
                out[group] = dict(values)
            return copy.deepcopy(out)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._groups.clear()
