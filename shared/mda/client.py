"""The one way this app talks to the Defender for Cloud Apps REST API.

Every call goes through `MdaClient.request`, which owns the policies other integrations get wrong:
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

import json as jsonlib
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from shared.backoff import Backoff
from shared.caches import register_cache_reset
from shared.mda.errors import (
    ApiError,
    ApiUnavailableError,
    AuthError,
    BadRequestError,
    BudgetExhaustedError,
    ClientRequestError,
    MalformedResponseError,
    NotFoundError,
    ServerError,
    ThrottledError,
    required_permission,
)
from shared.netreason import os_reason
from shared.ratelimit import NullRateLimiter, RateLimiter, RateLimitWaitTooLong, limiter_for

if TYPE_CHECKING:
    import requests

    from shared.auth import ApiCredential
    from shared.settings import TenantProfile

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_THROTTLE_WAIT_S = 60.0
MAX_RETRY_AFTER_S = 3600.0
# A page of 100 alerts is well under 1 MB; an answer far beyond that is a fault, not data worth buffering.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_READ_CHUNK = 64 * 1024
MIN_ATTEMPT_S = 0.5  # below this much remaining budget an attempt is not worth starting
_SECONDS_IN_MESSAGE = re.compile(r"(\d+(?:\.\d+)?)\s*seconds?", re.IGNORECASE)
_CORRELATION_HEADERS = ("x-ms-correlation-id", "x-correlation-id", "x-ms-request-id", "request-id")


@dataclass(frozen=True)
class _Send:
    """What one request sends on every attempt."""

    method: str
    path: str
    json: Any
    params: dict[str, str] | None
    data: dict[str, str] | None
    idempotent: bool
    timeout: float | None
    deadline: float | None  # on the client's clock
    stats: RequestStats | None


@dataclass
class _Tries:
    """What the retry decision remembers across the attempts of one request."""

    attempt: int = 0
    throttles: int = 0
    reauthorized: bool = False


class _SendFailed(Exception):
    """A transport failure (no HTTP answer) of one attempt, as the API error it becomes."""

    def __init__(self, error: ApiError, *, retryable: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable


class HttpSession(Protocol):
    """What the client needs from `requests.Session` (tests pass a scripted stand-in)."""

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = ...,
        params: Any = ...,
        data: Any = ...,
        headers: Any = ...,
        timeout: Any = ...,
        allow_redirects: bool = ...,
        stream: bool = ...,
    ) -> requests.Response: ...


@dataclass
class RequestStats:
    """Counters for one run (a pull, a close); pass the same object to every request of that run."""

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    limiter_wait_s: float = 0.0
    throttle_wait_s: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # for idempotent calls on 5xx / timeouts / connection errors
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    max_throttle_retries: int = 6
    throttle_jitter: float = 0.1  # fraction of the told wait added at random (never less than told)


class MdaClient:
    """HTTP core for one tenant (and one identity). Build it with `client_for`; tests inject the seams."""

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
        self.base_url = base_url.rstrip("/")
        self._host = urlsplit(self.base_url).netloc
        self.tenant = tenant or self.base_url
        self._credential = credential
        self._session = session
        self._limiter: RateLimiter = limiter or NullRateLimiter()
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._max_response_bytes = max_response_bytes
        self._stats_lock = threading.Lock()
        self.totals = RequestStats()  # since the client was built (all runs of this worker)

    @property
    def clock(self) -> Callable[[], float]:
        """The clock `deadline` values are measured on (monotonic seconds by default)."""
        return self._clock

    def deadline_in(self, seconds: float) -> float:
        return self._clock() + seconds

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
        method = method.upper()
        send = _Send(
            method,
            path,
            json,
            dict(params) if params else None,
            dict(data) if data else None,
            idempotent,
            timeout,
            deadline,
            stats,
        )
        tries = _Tries()
        while True:
            try:
                response, body, limit = self._send_once(send)
            except _SendFailed as failed:
                if failed.retryable and idempotent and tries.attempt + 1 < self._retry.max_attempts:
                    tries.attempt += 1
                    self._backoff(tries.attempt, deadline, failed.error, stats)
                    continue
                raise failed.error from failed.__cause__
            status = response.status_code
            if 200 <= status < 300:
                if body is None:
                    raise MalformedResponseError(
                        f"the answer is larger than {limit} bytes; refused",
                        status=status,
                        method=method,
                        path=path,
                    )
                return _parse_body(response, body, method, path)
            error = _error_from(response, body, method, path)
            self._decide_next(send, status, error, tries)

    def _send_once(self, send: _Send) -> tuple[Any, bytes | None, int]:
        """One attempt within the deadline and the tenant's budget: (response, body or None if over the size
        cap, the cap). A transport failure the API client knows is raised as `_SendFailed`."""
        method, path, deadline, stats = send.method, send.path, send.deadline, send.stats
        remaining = self._remaining(deadline, method, path)
        authorization = self._credential.authorization_header()
        self._acquire_slot(remaining, method, path, stats)
        remaining = self._remaining(deadline, method, path)
        call_timeout = send.timeout or self._timeout
        if remaining is not None:
            call_timeout = min(call_timeout, remaining)
        self._count(stats, requests=1)
        started = self._clock()
        limit = self._max_response_bytes or MAX_RESPONSE_BYTES  # read per call: tests may lower it
        try:
            response = self._http().request(
                method,
                f"{self.base_url}{path}",
                json=send.json,
                params=send.params,
                data=send.data,
                headers={"Authorization": authorization, "Accept": "application/json"},
                timeout=call_timeout,
                allow_redirects=False,
                stream=True,  # read below, under the size cap
            )
            body = _read_body(response, limit)
        except Exception as exc:
            error = self._transport_error(exc, method, path, host=self._host)
            if error is None:
                raise
            # A certificate problem does not fix itself.
            raise _SendFailed(error, retryable=not _is_tls_failure(exc)) from exc
        elapsed_ms = (self._clock() - started) * 1000
        log.debug("%s %s -> %s in %.0f ms", method, path, response.status_code, elapsed_ms)
        return response, body, limit

    def _decide_next(self, send: _Send, status: int, error: ApiError, tries: _Tries) -> None:
        """After an error answer: return once ready to send again (waited or re-authorised), or raise."""
        method, path, deadline, stats = send.method, send.path, send.deadline, send.stats
        if status == 401 and not tries.reauthorized:
            # The cached token may be revoked or expired early: fetch a fresh one, once.
            log.info("%s %s answered 401; refreshing the credential and retrying once", method, path)
            self._credential.invalidate()
            tries.reauthorized = True
            return
        if status == 429:
            # A 429 was refused before processing, so even non-idempotent calls may repeat it.
            tries.throttles += 1
            self._count(stats, throttled=1)
            if tries.throttles > self._retry.max_throttle_retries:
                raise error
            told = error.retry_after if error.retry_after is not None else DEFAULT_THROTTLE_WAIT_S
            jitter = self._retry.throttle_jitter
            wait = Backoff(rng=self._rng).wait_for(tries.attempt, told, told_jitter=jitter)
            log.warning("%s %s throttled (429); waiting %.1f s as told", method, path, wait)
            self._limiter.penalize(wait)
            self._sleep_within(wait, deadline, error)
            self._count(stats, throttle_wait_s=wait)
            return
        if status >= 500 and send.idempotent and tries.attempt + 1 < self._retry.max_attempts:
            tries.attempt += 1
            self._backoff(tries.attempt, deadline, error, stats)
            return
        raise error

    # -- policy helpers ----------------------------------------------------------------------------------

    def _remaining(self, deadline: float | None, method: str, path: str) -> float | None:
        return remaining_budget(deadline, self._clock(), method, path)

    def _acquire_slot(
        self, remaining: float | None, method: str, path: str, stats: RequestStats | None
    ) -> None:
        waited = acquire_slot(self._limiter, remaining, method, path, budget="request budget")
        if waited:
            self._count(stats, limiter_wait_s=waited)

    def _backoff(
        self, attempt: int, deadline: float | None, error: ApiError, stats: RequestStats | None
    ) -> None:
        wait = Backoff(self._retry.backoff_base_s, self._retry.backoff_cap_s, rng=self._rng).delay(attempt)
        log.warning(
            "%s %s failed (%s); retry %d in %.2f s",
            error.method,
            error.path,
            error.status or error.message,
            attempt,
            wait,
        )
        self._count(stats, retries=1)
        self._sleep_within(wait, deadline, error)

    def _sleep_within(self, wait: float, deadline: float | None, error: ApiError) -> None:
        if deadline is not None and self._clock() + wait + MIN_ATTEMPT_S > deadline:
            raise error
        self._sleep(wait)

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

    @staticmethod
    def _transport_error(exc: Exception, method: str, path: str, *, host: str = "") -> ApiError | None:
        """The transport failure as an ApiError that names the host and the reason (DNS, refused, TLS)."""
        import requests

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


def _read_body(response: requests.Response, limit: int) -> bytes | None:
    """The whole body, or None when it is larger than `limit` (the connection is then closed, not pooled)."""
    declared = (response.headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > limit:
        response.close()
        return None
    if getattr(response, "raw", None) is None:  # an already-buffered response (tests' stand-ins)
        content = response.content or b""
        return content if len(content) <= limit else None
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            response.close()
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _text(response: requests.Response, body: bytes) -> str:
    try:
        return body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset in Content-Type
        return body.decode("utf-8", errors="replace")


def _json(body: bytes) -> Any:
    """Parsed JSON; ValueError (also for nesting too deep to parse) when it is not JSON."""
    try:
        return jsonlib.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _parse_body(response: requests.Response, body: bytes, method: str, path: str) -> Any:
    if not body:
        return None
    content_type = response.headers.get("Content-Type", "").lower()
    if "json" in content_type:
        try:
            return _json(body)
        except ValueError:
            raise MalformedResponseError(
                f"the answer claims to be JSON but is not ({len(body)} bytes; truncated?)",
                status=response.status_code,
                method=method,
                path=path,
            ) from None
    if content_type.startswith("text/"):
        return _text(response, body)
    try:
        return _json(body)
    except ValueError:
        return _text(response, body)


def _error_from(response: requests.Response, raw: bytes | None, method: str, path: str) -> ApiError:
    status = response.status_code
    body: Any = None
    try:
        body = _json(raw) if raw else None
    except ValueError:
        body = None
    message, code, correlation = _error_fields(body)
    if not message:
        text = _text(response, raw).strip() if raw and not isinstance(body, dict) else ""
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

_session_lock = threading.Lock()
_session: requests.Session | None = None
_clients: dict[TenantProfile, MdaClient] = {}


def shared_session() -> requests.Session:
    """The worker's one pooled session (requests is imported here, not when the app is indexed)."""
    global _session  # noqa: PLW0603 - a deliberate lazily built per-worker singleton
    with _session_lock:
        if _session is None:
            import requests
            from requests.adapters import HTTPAdapter

            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=8, pool_maxsize=16, max_retries=0)
            session.mount("https://", adapter)
            _session = session
        return _session


def client_for(profile: TenantProfile, *, user_assertion: str | None = None) -> MdaClient:
    """The worker's client for a tenant profile (cached); on-behalf-of clients are built per call."""
    from shared.auth import api_credential

    limiter = limiter_for(profile.api_url, profile.rate_limit_per_minute)
    if user_assertion is not None:
        credential = api_credential(profile, user_assertion=user_assertion)
        return MdaClient(profile.api_url, credential, limiter=limiter, tenant=profile.name)
    with _session_lock:
        client = _clients.get(profile)
    if client is None:
        client = MdaClient(profile.api_url, api_credential(profile), limiter=limiter, tenant=profile.name)
        with _session_lock:
            client = _clients.setdefault(profile, client)
    return client


def reset_clients() -> None:
    """Forget cached clients and the session (tests, `mcasctl`)."""
    global _session  # noqa: PLW0603
    with _session_lock:
        _clients.clear()
        if _session is not None:
            _session.close()
        _session = None


register_cache_reset(reset_clients)


def remaining_budget(deadline: float | None, now: float, method: str, path: str) -> float | None:
    """Seconds left before `deadline` (None: no limit); too little for another attempt ends the call."""
    if deadline is None:
        return None
    remaining = deadline - now
    if remaining < MIN_ATTEMPT_S:
        raise BudgetExhaustedError("the time budget is spent", method=method, path=path)
    return remaining


def acquire_slot(
    limiter: RateLimiter, remaining: float | None, method: str, path: str, *, budget: str
) -> float:
    """Claim a slot of the tenant's shared budget within the time left; return the seconds waited."""
    max_wait = None if remaining is None else max(0.0, remaining - MIN_ATTEMPT_S)
    try:
        return limiter.acquire(max_wait=max_wait)
    except RateLimitWaitTooLong as exc:
        raise BudgetExhaustedError(
            f"the tenant's {budget} frees up in {exc.wait_s:.1f} s, after the time budget ends",
            method=method,
            path=path,
            retry_after=exc.wait_s,
        ) from exc
