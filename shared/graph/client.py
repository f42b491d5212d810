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
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.backoff import Backoff, parse_retry_after
from shared.caches import KeptObjects
from shared.http_retry import Call, HttpSession, RequestStats, RetryingClient, Tries
from shared.mda.client import _error_from
from shared.mda.errors import ApiError, ApiUnavailableError, MalformedResponseError
from shared.ratelimit import RateLimiter, limiter_for

if TYPE_CHECKING:
    import requests

    from shared.auth import ApiCredential
    from shared.settings import TenantProfile

API_VERSION = "v1.0"
DEFAULT_TIMEOUT_S = 30.0
PREFER_HEADER = "include-unknown-enum-members"


class GraphClient(RetryingClient):
    """HTTP core for one tenant's Graph calls. Build it with `graph_client_for`; tests inject the seams.
    The request loop is shared/http_retry.py's; this class holds Graph's policy."""

    log = logging.getLogger(__name__)
    budget_name = "Graph budget"
    too_large = "the answer is too large; refused"
    extra_headers = {"Prefer": PREFER_HEADER}

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
        super().__init__(
            credential,
            session=session,
            limiter=limiter,
            timeout=timeout,
            backoff=backoff or Backoff(base=1.0, cap=30.0, jitter="full", clock=clock),
            max_attempts=max_attempts,
            max_throttle_retries=max_throttle_retries,
            clock=clock,
        )
        self.base_url = base_url.rstrip("/")
        self.root = f"{self.base_url}/{API_VERSION}"
        self.tenant = tenant or self.base_url
        # Without Retry-After, Entra's resilience guidance asks for a first retry after at least 5 s.
        self._throttle_backoff = throttle_backoff or Backoff(base=5.0, cap=60.0, jitter="equal", clock=clock)

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
        url = self.url_for(path_or_link)
        return self.call(
            Call(
                method.upper(),
                url,
                urlsplit(url).path,
                idempotent,
                json=json,
                params=dict(params) if params else None,
                deadline=deadline,
                stats=stats,
            )
        )

    # -- policy ------------------------------------------------------------------------------------------

    def _error_for(self, response: requests.Response, body: bytes | None, method: str, path: str) -> ApiError:
        return _error_from(response, body, method, path)

    def _is_throttled(self, response: requests.Response, error: ApiError) -> bool:
        """429, and 503 with `Retry-After`."""
        status = response.status_code
        return status == 429 or (status == 503 and _told(response) is not None)

    def _throttle_wait(self, response: requests.Response, error: ApiError, tries: Tries) -> float:
        """As told by `Retry-After` (plus up to 10 %), else exponential from 5 s."""
        return self._throttle_backoff.wait_for(tries.throttles, _told(response), told_jitter=0.1)

    def _transport_error(self, exc: Exception, method: str, path: str) -> ApiError | None:
        import requests

        if isinstance(exc, requests.exceptions.SSLError):
            return ApiUnavailableError("TLS failed (certificate not trusted?)", method=method, path=path)
        if isinstance(exc, requests.Timeout):
            return ApiUnavailableError("the request timed out", method=method, path=path)
        if isinstance(exc, requests.RequestException):
            return ApiUnavailableError(f"request failed ({type(exc).__name__})", method=method, path=path)
        return None


def _told(response: requests.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


def budget_key(profile: TenantProfile) -> str:
    """Graph's budget is per app and tenant: one limiter partition per (tenant, Graph host)."""
    host = urlsplit(profile.graph_url).netloc
    return f"https://{profile.tenant_id or profile.name}.graph.{host}"


_clients: KeptObjects[TenantProfile, GraphClient] = KeptObjects()


def graph_client_for(profile: TenantProfile) -> GraphClient:
    """The worker's Graph client for a tenant profile (cached; token for `profile.graph_token_scope`)."""
    from shared.auth import resource_credential

    return _clients.get(
        profile,
        lambda: GraphClient(
            profile.graph_url,
            resource_credential(profile, profile.graph_token_scope),
            limiter=limiter_for(budget_key(profile), profile.graph_rate_limit_per_minute),
            tenant=profile.name,
        ),
    )
