"""The one way this app talks to Microsoft Graph (the security API's `alerts_v2`).

Policies (https://learn.microsoft.com/graph/throttling, https://learn.microsoft.com/graph/errors):
- its own distributed request budget per app and tenant (shared/ratelimit.py; 150 requests per minute on
  security alert operations by default, `MCAS_GRAPH_RATE_LIMIT_PER_MINUTE`), claimed before every attempt;
- 429 (and 503 with `Retry-After`): wait as told, else back off exponentially from 5 s; the limiter is told
  so every instance pauses; nothing sleeps past the caller's deadline (shared/backoff.py);
- 5xx, timeouts and dropped connections: backoff with jitter for idempotent calls only - a non-idempotent
  call (adding a comment) fails fast and the caller re-reads state before it tries again;
- 401: drop the cached token once and retry;
- every request sends `Prefer: include-unknown-enum-members`, so newer enum members arrive as themselves
  instead of `unknownFutureValue`;
- `@odata.nextLink` URLs are followed only on the configured Graph host (never wherever a response points).
Errors are the typed errors of shared/mda/errors.py, parsed from Graph's `{"error": {"code", "message"}}`
body; the Authorization header is never logged and never part of an error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.backoff import Backoff, parse_retry_after
from shared.caches import register_cache_reset
from shared.mda.client import (
    MAX_RESPONSE_BYTES,
    MIN_ATTEMPT_S,
    HttpSession,
    RequestStats,
    _error_from,
    _parse_body,
    _read_body,
    acquire_slot,
    remaining_budget,
    shared_session,
)
from shared.mda.errors import ApiError, ApiUnavailableError, MalformedResponseError
from shared.ratelimit import NullRateLimiter, RateLimiter, limiter_for

if TYPE_CHECKING:
    from shared.auth import ApiCredential
    from shared.settings import TenantProfile

log = logging.getLogger(__name__)

API_VERSION = "v1.0"
DEFAULT_TIMEOUT_S = 30.0
PREFER_HEADER = "include-unknown-enum-members"


class GraphClient:
    """HTTP core for one tenant's Graph calls. Build it with `graph_client_for`; tests inject the seams."""

    def __init__(
        self,
        base_url: str,
        credential: ApiCredential,
        *,
        session: HttpSession | None = None,
        limiter: RateLimiter | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = 5,
        max_throttle_retries: int = 6,
        backoff: Backoff | None = None,
        throttle_backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        tenant: str | None = None,
    ) -> None:
        if not base_url.startswith("https://"):
            raise ValueError("the Graph URL must be https://")
        self.base_url = base_url.rstrip("/")
        self.root = f"{self.base_url}/{API_VERSION}"
        self.tenant = tenant or self.base_url
        self._credential = credential
        self._session = session
        self._limiter: RateLimiter = limiter or NullRateLimiter()
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_throttle_retries = max_throttle_retries
        self._backoff = backoff or Backoff(base=1.0, cap=30.0, jitter="full", clock=clock)
        # Without Retry-After, Entra's resilience guidance asks for a first retry after at least 5 s.
        self._throttle_backoff = throttle_backoff or Backoff(base=5.0, cap=60.0, jitter="equal", clock=clock)
        self._clock = clock
        self._stats_lock = threading.Lock()
        self.totals = RequestStats()

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    def deadline_in(self, seconds: float) -> float:
        return self._clock() + seconds

    def url_for(self, path_or_link: str) -> str:
        """`/security/alerts_v2` under the API root, or an `@odata.nextLink` checked to stay on our host."""
        if path_or_link.startswith("/"):
            return f"{self.root}{path_or_link}"
        ours, theirs = urlsplit(self.base_url), urlsplit(path_or_link)
        if theirs.scheme != "https" or theirs.netloc.lower() != ours.netloc.lower():
            raise MalformedResponseError(
                "a next link points away from the configured Graph host; refused",
                status=200,
                method="GET",
                path=theirs.path,
            )
        return path_or_link

    def request(
        self,
        method: str,
        path_or_link: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotent: bool,
        deadline: float | None = None,
        stats: RequestStats | None = None,
    ) -> Any:
        """One Graph call under the policies above; parsed JSON. Raises a subclass of `ApiError`."""
        method = method.upper()
        url = self.url_for(path_or_link)
        path = urlsplit(url).path
        attempt = throttles = 0
        reauthorized = False
        while True:
            remaining = self._remaining(deadline, method, path)
            authorization = self._credential.authorization_header()
            self._acquire_slot(remaining, method, path, stats)
            remaining = self._remaining(deadline, method, path)
            timeout = self._timeout if remaining is None else min(self._timeout, remaining)
            self._count(stats, requests=1)
            headers = {"Authorization": authorization, "Accept": "application/json", "Prefer": PREFER_HEADER}
            try:
                response = self._http().request(
                    method,
                    url,
                    json=json,
                    params=dict(params) if params else None,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                )
                body = _read_body(response, MAX_RESPONSE_BYTES)
            except Exception as exc:
                error = _transport_error(exc, method, path)
                if error is None:
                    raise
                if idempotent and attempt + 1 < self._max_attempts:
                    attempt += 1
                    self._wait(self._backoff.delay(attempt), deadline, error, stats, retries=1)
                    continue
                raise error from exc
            status = response.status_code
            if 200 <= status < 300:
                if body is None:
                    raise MalformedResponseError(
                        "the answer is too large; refused", status=status, method=method, path=path
                    )
                return _parse_body(response, body, method, path)
            error = _error_from(response, body, method, path)
            if status == 401 and not reauthorized:
                log.info("%s %s answered 401; refreshing the credential and retrying once", method, path)
                self._credential.invalidate()
                reauthorized = True
                continue
            told = parse_retry_after(response.headers.get("Retry-After"))
            if status == 429 or (status == 503 and told is not None):
                # Refused before processing: even a non-idempotent call may be sent again.
                throttles += 1
                self._count(stats, throttled=1 if status == 429 else 0)
                if throttles > self._max_throttle_retries:
                    raise error
                wait = self._throttle_backoff.wait_for(throttles, told, told_jitter=0.1)
                log.warning("%s %s answered %s; waiting %.1f s", method, path, status, wait)
                self._limiter.penalize(wait)
                self._wait(wait, deadline, error, stats, throttle_wait_s=wait)
                continue
            if status >= 500 and idempotent and attempt + 1 < self._max_attempts:
                attempt += 1
                self._wait(self._backoff.delay(attempt), deadline, error, stats, retries=1)
                continue
            raise error

    def _remaining(self, deadline: float | None, method: str, path: str) -> float | None:
        return remaining_budget(deadline, self._clock(), method, path)

    def _acquire_slot(
        self, remaining: float | None, method: str, path: str, stats: RequestStats | None
    ) -> None:
        waited = acquire_slot(self._limiter, remaining, method, path, budget="Graph budget")
        if waited:
            self._count(stats, limiter_wait_s=waited)

    def _wait(
        self,
        wait: float,
        deadline: float | None,
        error: ApiError,
        stats: RequestStats | None,
        **counts: float,
    ) -> None:
        limit = None if deadline is None else deadline - MIN_ATTEMPT_S
        if not self._backoff.sleep_within(wait, limit):
            raise error
        self._count(stats, **counts)

    def _count(self, stats: RequestStats | None, **deltas: float) -> None:
        with self._stats_lock:
            for target in (self.totals, stats):
                if target is None:
                    continue
                for name, delta in deltas.items():
                    setattr(target, name, getattr(target, name) + delta)

    def _http(self) -> HttpSession:
        if self._session is None:
            self._session = shared_session()
        return self._session


def _transport_error(exc: Exception, method: str, path: str) -> ApiError | None:
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return ApiUnavailableError("TLS failed (certificate not trusted?)", method=method, path=path)
    if isinstance(exc, requests.Timeout):
        return ApiUnavailableError("the request timed out", method=method, path=path)
    if isinstance(exc, requests.RequestException):
        return ApiUnavailableError(f"request failed ({type(exc).__name__})", method=method, path=path)
    return None


def budget_key(profile: TenantProfile) -> str:
    """Graph's budget is per app and tenant: one limiter partition per (tenant, Graph host)."""
    host = urlsplit(profile.graph_url).netloc
    return f"https://{profile.tenant_id or profile.name}.graph.{host}"


_lock = threading.Lock()
_clients: dict[TenantProfile, GraphClient] = {}


def graph_client_for(profile: TenantProfile) -> GraphClient:
    """The worker's Graph client for a tenant profile (cached; token for `profile.graph_token_scope`)."""
    from shared.auth import resource_credential

    with _lock:
        client = _clients.get(profile)
    if client is None:
        client = GraphClient(
            profile.graph_url,
            resource_credential(profile, profile.graph_token_scope),
            limiter=limiter_for(budget_key(profile), profile.graph_rate_limit_per_minute),
            tenant=profile.name,
        )
        with _lock:
            client = _clients.setdefault(profile, client)
    return client


def reset_graph_clients() -> None:
    with _lock:
        _clients.clear()


register_cache_reset(reset_graph_clients)
