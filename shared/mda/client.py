"""The one way this app talks to the Defender for Cloud Apps REST API.

Every call goes through `MdaClient.request` (the request loop, shared with the Graph client, is in
shared/http_retry.py; this module holds the API's policy), which owns the policies other integrations get
wrong:
- one pooled `requests.Session` per worker and a timeout on every call;
- the tenant-wide distributed rate limiter (shared/ratelimit.py) before every attempt, so the client stays
  under 30 requests per minute per tenant across all instances;
- 429: wait as told (`Retry-After`, else the N seconds in the body's message, else 60 s) plus jitter, and
  tell the limiter so every instance pauses;
- 5xx, timeouts and connection errors: capped exponential backoff with full jitter, for idempotent calls
  ONLY - a non-idempotent call (closing alerts) fails fast and the caller re-checks state before a retry;
- 401: drop the cached token once and retry;
- a deadline: the client never sleeps (for the limiter, a 429 or a backoff) past the caller's time budget;
- clock, sleep and randomness injectable so tests run in milliseconds;
- answers are read under a size cap (`max_response_bytes`); a 2xx answer that is not what it claims (invalid
  or truncated JSON, too large) is a `MalformedResponseError`, never a bare ValueError from a JSON parser.
The Authorization header is never logged and never part of an error.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.backoff import Backoff
from shared.caches import KeptObjects, register_cache_reset
from shared.http_retry import (
    MAX_RESPONSE_BYTES,
    MIN_ATTEMPT_S,
    Call,
    HttpSession,
    RequestStats,
    RetryingClient,
    Tries,
    acquire_slot,
    body_json,
    body_text,
    close_shared_session,
    remaining_budget,
    shared_session,
)
from shared.mda.errors import (
    ApiError,
    ApiUnavailableError,
    AuthError,
    BadRequestError,
    ClientRequestError,
    NotFoundError,
    ServerError,
    ThrottledError,
    required_permission,
)
from shared.netreason import os_reason
from shared.ratelimit import RateLimiter, limiter_for

if TYPE_CHECKING:
    import requests

    from shared.auth import ApiCredential
    from shared.settings import TenantProfile

# The request loop's building blocks, importable from here as before.
__all__ = [
    "MAX_RESPONSE_BYTES",
    "MIN_ATTEMPT_S",
    "HttpSession",
    "MdaClient",
    "RequestStats",
    "RetryPolicy",
    "acquire_slot",
    "client_for",
    "remaining_budget",
    "reset_clients",
    "shared_session",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_THROTTLE_WAIT_S = 60.0
MAX_RETRY_AFTER_S = 3600.0
_SECONDS_IN_MESSAGE = re.compile(r"(\d+(?:\.\d+)?)\s*seconds?", re.IGNORECASE)
_CORRELATION_HEADERS = ("x-ms-correlation-id", "x-correlation-id", "x-ms-request-id", "request-id")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # for idempotent calls on 5xx / timeouts / connection errors
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    max_throttle_retries: int = 6
    throttle_jitter: float = 0.1  # fraction of the told wait added at random (never less than told)


class MdaClient(RetryingClient):
    """HTTP core for one tenant (and one identity). Build it with `client_for`; tests inject the seams.
    The request loop is shared/http_retry.py's; this class holds the API's policy."""

    log = log
    budget_name = "request budget"
    too_large = "the answer is larger than {limit} bytes; refused"

    def __init__(
        self,
        base_url: str,
        credential: ApiCredential,
        *,
        session: HttpSession | None = None,
        limiter: RateLimiter | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        tenant: str | None = None,
        max_response_bytes: int | None = None,
    ) -> None:
        if not base_url.startswith("https://"):
            raise ValueError("the API base URL must be https://")
        self._retry = retry or RetryPolicy()
        super().__init__(
            credential,
            session=session,
            limiter=limiter,
            timeout=timeout,
            backoff=Backoff(
                self._retry.backoff_base_s, self._retry.backoff_cap_s, rng=rng, clock=clock, sleep=sleep
            ),
            max_attempts=self._retry.max_attempts,
            max_throttle_retries=self._retry.max_throttle_retries,
            clock=clock,
        )
        self.base_url = base_url.rstrip("/")
        self._host = urlsplit(self.base_url).netloc
        self.tenant = tenant or self.base_url
        self._max_response_bytes = max_response_bytes

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        idempotent: bool,
        timeout: float | None = None,
        deadline: float | None = None,
        stats: RequestStats | None = None,
    ) -> Any:
        """Send one API request under the policies above; return parsed JSON (text as str, empty as None).

        `path` is the API path, e.g. "/api/v1/alerts/". `deadline` is a time on `self.clock`: nothing sleeps
        past it. Raises a subclass of `ApiError` (see shared/mda/errors.py).
        """
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        return self.call(
            Call(
                method.upper(),
                f"{self.base_url}{path}",
                path,
                idempotent,
                json=json,
                params=dict(params) if params else None,
                data=dict(data) if data else None,
                timeout=timeout,
                deadline=deadline,
                stats=stats,
            )
        )

    # -- policy ------------------------------------------------------------------------------------------

    def _response_limit(self) -> int:
        return self._max_response_bytes or MAX_RESPONSE_BYTES  # read per call: tests may lower it

    def _error_for(self, response: requests.Response, body: bytes | None, method: str, path: str) -> ApiError:
        return _error_from(response, body, method, path)

    def _throttle_wait(self, response: requests.Response, error: ApiError, tries: Tries) -> float:
        """As told (`Retry-After`, else the N seconds in the body's message, else 60 s) plus jitter."""
        told = error.retry_after if error.retry_after is not None else DEFAULT_THROTTLE_WAIT_S
        return self._backoff.wait_for(tries.attempt, told, told_jitter=self._retry.throttle_jitter)

    def _transport_retryable(self, exc: Exception) -> bool:
        return not _is_tls_failure(exc)  # a certificate problem does not fix itself

    def _transport_error(self, exc: Exception, method: str, path: str) -> ApiError | None:
        """The transport failure as an ApiError that names the host and the reason (DNS, refused, TLS)."""
        import requests

        host = self._host
        reason = os_reason(exc)
        if isinstance(exc, requests.exceptions.SSLError):
            return ApiUnavailableError(
                f"TLS with {host} failed ({reason or 'handshake'}): is the certificate trusted? "
                "Check REQUESTS_CA_BUNDLE",
                method=method,
                path=path,
            )
        if isinstance(exc, requests.Timeout):
            return ApiUnavailableError(f"{host} did not answer in time", method=method, path=path)
        if isinstance(exc, requests.ConnectionError):
            return ApiUnavailableError(
                f"cannot connect to {host} ({reason or type(exc).__name__}); check MCAS_API_URL and the "
                "network",
                method=method,
                path=path,
            )
        if isinstance(exc, requests.RequestException):
            return ApiUnavailableError(
                f"request to {host} failed ({type(exc).__name__})", method=method, path=path
            )
        if isinstance(exc, OSError) and "CA certificate bundle" in str(exc):
            return ApiUnavailableError(f"TLS set-up failed: {exc}", method=method, path=path)
        return None


def _is_tls_failure(exc: Exception) -> bool:
    import requests

    return isinstance(exc, requests.exceptions.SSLError) or (
        isinstance(exc, OSError) and "CA certificate bundle" in str(exc)
    )


def _error_from(response: requests.Response, raw: bytes | None, method: str, path: str) -> ApiError:
    status = response.status_code
    body: Any = None
    try:
        body = body_json(raw) if raw else None
    except ValueError:
        body = None
    message, code, correlation = _error_fields(body)
    if not message:
        text = body_text(response, raw).strip() if raw and not isinstance(body, dict) else ""
        message = text[:300] if text and len(text) < 300 else (response.reason or f"HTTP {status}")
    for header in _CORRELATION_HEADERS:
        if correlation:
            break
        correlation = response.headers.get(header)
    kwargs: dict[str, Any] = {
        "status": status,
        "error_code": code,
        "correlation_id": correlation,
        "method": method,
        "path": path,
    }
    if status == 429:
        return ThrottledError(message, retry_after=_retry_after(response, message), **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    if status == 403:
        needed = required_permission(method, path)
        if needed:
            message = (
                f"{message} - this call needs the {needed} permission: grant it to the app registration "
                "(Application permissions of Microsoft Cloud App Security, then admin consent) or, in user "
                "context, to the signed-in user's role"
            )
        return AuthError(message, **kwargs)
    if status == 401:
        return AuthError(message, **kwargs)
    if status == 404:
        return NotFoundError(message, **kwargs)
    if status == 400:
        return BadRequestError(message, **kwargs)
    return ClientRequestError(message, **kwargs)


def _error_fields(body: Any) -> tuple[str, str | None, str | None]:
    if not isinstance(body, dict):
        return "", None, None
    message: Any = body.get("detail") or body.get("message") or body.get("errorMessage") or ""
    code: Any = body.get("errorMessageCode") or body.get("code")
    inner = body.get("error")
    if isinstance(inner, dict):
        message = message or inner.get("message") or ""
        code = code or inner.get("code")
    elif isinstance(inner, str):
        message = message or inner
    correlation = body.get("correlation_id") or body.get("correlationId")
    return str(message)[:500], (str(code) if code else None), (str(correlation) if correlation else None)


def _retry_after(response: requests.Response, message: str) -> float | None:
    """`Retry-After` (seconds or an HTTP date), else the N in "... N seconds." the 429 body carries (https://learn.microsoft.com/defender-cloud-apps/api-introduction)."""
    header = response.headers.get("Retry-After")
    if header:
        try:
            seconds = float(header)
            if math.isfinite(seconds):  # "inf" / "nan" are no wait anyone can honour
                return min(MAX_RETRY_AFTER_S, max(0.0, seconds))
        except ValueError:
            try:
                when = parsedate_to_datetime(header)
                return min(MAX_RETRY_AFTER_S, max(0.0, when.timestamp() - time.time()))
            except (TypeError, ValueError, OverflowError):
                pass
    found = _SECONDS_IN_MESSAGE.findall(message or "")
    if found:
        seconds = float(found[-1])
        return min(MAX_RETRY_AFTER_S, seconds) if math.isfinite(seconds) else MAX_RETRY_AFTER_S
    return None


# -- per-worker singletons ------------------------------------------------------------------------------

_clients: KeptObjects[TenantProfile, MdaClient] = KeptObjects()


def client_for(profile: TenantProfile, *, user_assertion: str | None = None) -> MdaClient:
    """The worker's client for a tenant profile (cached); on-behalf-of clients are built per call."""
    from shared.auth import api_credential

    limiter = limiter_for(profile.api_url, profile.rate_limit_per_minute)
    if user_assertion is not None:
        credential = api_credential(profile, user_assertion=user_assertion)
        return MdaClient(profile.api_url, credential, limiter=limiter, tenant=profile.name)
    return _clients.get(
        profile,
        lambda: MdaClient(profile.api_url, api_credential(profile), limiter=limiter, tenant=profile.name),
    )


def reset_clients() -> None:
    """Forget cached clients and the session (tests, `mcasctl`)."""
    _clients.clear()
    close_shared_session()


register_cache_reset(reset_clients)
