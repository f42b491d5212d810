"""One request loop for the app's REST API clients (Defender for Cloud Apps, Microsoft Graph).

`RetryingClient.call` sends one request under the rules every API client shares: the caller's deadline (no
attempt starts with less than `MIN_ATTEMPT_S` left, nothing sleeps past it), a slot of the tenant's
distributed request budget before every attempt, one pooled session, the answer read under a size cap, one
token refresh on 401, waits on throttling as the service tells (and the limiter told so every instance
pauses), backoff with jitter on 5xx and dropped connections for idempotent calls only. A subclass supplies
only its policy: which answers are throttling and how long they ask to wait, its transport error messages,
its error parser, its budget's name and extra headers.
"""

from __future__ import annotations

import json as jsonlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from shared.backoff import Backoff
from shared.mda.errors import ApiError, BudgetExhaustedError, MalformedResponseError
from shared.ratelimit import NullRateLimiter, RateLimiter, RateLimitWaitTooLong

if TYPE_CHECKING:
    import requests

    from shared.auth import ApiCredential

# A page of 100 alerts is well under 1 MB; an answer far beyond that is a fault, not data worth buffering.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_READ_CHUNK = 64 * 1024
MIN_ATTEMPT_S = 0.5  # below this much remaining budget an attempt is not worth starting


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
class Call:
    """What one request sends on every attempt."""

    method: str
    url: str
    path: str  # the API path, for logs and errors
    idempotent: bool
    json: Any = None
    params: dict[str, str] | None = None
    data: dict[str, str] | None = None
    timeout: float | None = None  # None: the client's default
    deadline: float | None = None  # on the client's clock
    stats: RequestStats | None = None


@dataclass
class Tries:
    """What the retry decision remembers across the attempts of one request."""

    attempt: int = 0
    throttles: int = 0
    reauthorized: bool = False


class SendFailed(Exception):
    """A transport failure (no HTTP answer) of one attempt, as the API error it becomes."""

    def __init__(self, error: ApiError, *, retryable: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable


class RetryingClient:
    """The shared request loop; subclasses set the class attributes and implement the policy hooks."""

    log: ClassVar[logging.Logger] = logging.getLogger(__name__)  # subclasses: their module's logger
    budget_name: ClassVar[str] = "request budget"  # how a limiter refusal names the budget
    too_large: ClassVar[str] = "the answer is larger than {limit} bytes; refused"
    extra_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        credential: ApiCredential,
        *,
        session: HttpSession | None,
        limiter: RateLimiter | None,
        timeout: float,
        backoff: Backoff,
        max_attempts: int,
        max_throttle_retries: int,
        clock: Callable[[], float],
    ) -> None:
        self._credential = credential
        self._session = session
        self._limiter: RateLimiter = limiter or NullRateLimiter()
        self._timeout = timeout
        self._backoff = backoff  # delays for 5xx and dropped connections; every wait sleeps through it
        self._max_attempts = max_attempts  # for idempotent calls on 5xx / timeouts / connection errors
        self._max_throttle_retries = max_throttle_retries
        self._clock = clock
        self._stats_lock = threading.Lock()
        self.totals = RequestStats()  # since the client was built (all runs of this worker)

    @property
    def clock(self) -> Callable[[], float]:
        """The clock `deadline` values are measured on (monotonic seconds by default)."""
        return self._clock

    def deadline_in(self, seconds: float) -> float:
        return self._clock() + seconds

    # -- the loop ---------------------------------------------------------------------------------------

    def call(self, call: Call) -> Any:
        """Send `call` until it succeeds or the policy gives up; parsed JSON (text as str, empty as None).
        Raises a subclass of `ApiError`."""
        tries = Tries()
        while True:
            try:
                response, body, limit = self._send_once(call)
            except SendFailed as failed:
                if failed.retryable and call.idempotent and tries.attempt + 1 < self._max_attempts:
                    tries.attempt += 1
                    self._retry_later(call, failed.error, tries.attempt)
                    continue
                raise failed.error from failed.__cause__
            status = response.status_code
            if 200 <= status < 300:
                if body is None:
                    raise MalformedResponseError(
                        self.too_large.format(limit=limit), status=status, method=call.method, path=call.path
                    )
                return parse_body(response, body, call.method, call.path)
            error = self._error_for(response, body, call.method, call.path)
            self._decide_next(call, response, error, tries)

    def _send_once(self, call: Call) -> tuple[requests.Response, bytes | None, int]:
        """One attempt within the deadline and the tenant's budget: (response, body or None if over the size
        cap, the cap). A transport failure the client knows is raised as `SendFailed`."""
        method, path, stats = call.method, call.path, call.stats
        remaining = remaining_budget(call.deadline, self._clock(), method, path)
        authorization = self._credential.authorization_header()
        waited = acquire_slot(self._limiter, remaining, method, path, budget=self.budget_name)
        if waited:
            self._count(stats, limiter_wait_s=waited)
        remaining = remaining_budget(call.deadline, self._clock(), method, path)
        timeout = call.timeout or self._timeout
        if remaining is not None:
            timeout = min(timeout, remaining)
        self._count(stats, requests=1)
        started = self._clock()
        limit = self._response_limit()
        headers = {"Authorization": authorization, "Accept": "application/json", **self.extra_headers}
        try:
            response = self._http().request(
                method,
                call.url,
                json=call.json,
                params=call.params,
                data=call.data,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                stream=True,  # read below, under the size cap
            )
            body = read_body(response, limit)
        except Exception as exc:
            error = self._transport_error(exc, method, path)
            if error is None:
                raise
            raise SendFailed(error, retryable=self._transport_retryable(exc)) from exc
        elapsed_ms = (self._clock() - started) * 1000
        self.log.debug("%s %s -> %s in %.0f ms", method, path, response.status_code, elapsed_ms)
        return response, body, limit

    def _decide_next(self, call: Call, response: requests.Response, error: ApiError, tries: Tries) -> None:
        """After an error answer: return once ready to send again (waited or re-authorised), or raise."""
        method, path, status = call.method, call.path, response.status_code
        if status == 401 and not tries.reauthorized:
            # The cached token may be revoked or expired early: fetch a fresh one, once.
            self.log.info("%s %s answered 401; refreshing the credential and retrying once", method, path)
            self._credential.invalidate()
            tries.reauthorized = True
            return
        if self._is_throttled(response, error):
            # Refused before processing, so even a non-idempotent call may be sent again.
            tries.throttles += 1
            self._count(call.stats, throttled=1 if status == 429 else 0)
            if tries.throttles > self._max_throttle_retries:
                raise error
            wait = self._throttle_wait(response, error, tries)
            self.log.warning("%s %s answered %s; waiting %.1f s", method, path, status, wait)
            self._limiter.penalize(wait)
            self._sleep_within(wait, call.deadline, error)
            self._count(call.stats, throttle_wait_s=wait)
            return
        if status >= 500 and call.idempotent and tries.attempt + 1 < self._max_attempts:
            tries.attempt += 1
            self._retry_later(call, error, tries.attempt)
            return
        raise error

    def _retry_later(self, call: Call, error: ApiError, attempt: int) -> None:
        wait = self._backoff.delay(attempt)
        self.log.warning(
            "%s %s failed (%s); retry %d in %.2f s",
            call.method,
            call.path,
            error.status or error.message,
            attempt,
            wait,
        )
        self._sleep_within(wait, call.deadline, error)
        self._count(call.stats, retries=1)

    def _sleep_within(self, wait: float, deadline: float | None, error: ApiError) -> None:
        """Sleep `wait` unless too little of the deadline would be left for the next attempt: then `error`."""
        if not self._backoff.sleep_within(wait, None if deadline is None else deadline - MIN_ATTEMPT_S):
            raise error

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

    # -- the policy -------------------------------------------------------------------------------------

    def _response_limit(self) -> int:
        """The largest answer read (per call, so tests may lower it)."""
        return MAX_RESPONSE_BYTES

    def _error_for(self, response: requests.Response, body: bytes | None, method: str, path: str) -> ApiError:
        """The typed error for a non-2xx answer."""
        raise NotImplementedError

    def _transport_error(self, exc: Exception, method: str, path: str) -> ApiError | None:
        """A failure without an HTTP answer as the API error it becomes; None: not ours, re-raised."""
        raise NotImplementedError

    def _transport_retryable(self, exc: Exception) -> bool:
        """Whether another attempt (idempotent calls only) may fix the transport failure."""
        return True

    def _is_throttled(self, response: requests.Response, error: ApiError) -> bool:
        """Whether the answer refused the call for load (waited out, even for non-idempotent calls)."""
        return response.status_code == 429

    def _throttle_wait(self, response: requests.Response, error: ApiError, tries: Tries) -> float:
        """How long to wait after a throttling answer."""
        raise NotImplementedError


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


# -- the worker's one pooled session -------------------------------------------------------------------

_session_lock = threading.Lock()
_session: requests.Session | None = None


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


def close_shared_session() -> None:
    """Close and forget the pooled session (tests, `mcasctl`); the next call builds a new one."""
    global _session  # noqa: PLW0603
    with _session_lock:
        if _session is not None:
            _session.close()
        _session = None


# -- reading answers ------------------------------------------------------------------------------------


def read_body(response: requests.Response, limit: int) -> bytes | None:
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


def body_text(response: requests.Response, body: bytes) -> str:
    try:
        return body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset in Content-Type
        return body.decode("utf-8", errors="replace")


def body_json(body: bytes) -> Any:
    """Parsed JSON; ValueError (also for nesting too deep to parse) when it is not JSON."""
    try:
        return jsonlib.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def parse_body(response: requests.Response, body: bytes, method: str, path: str) -> Any:
    if not body:
        return None
    content_type = response.headers.get("Content-Type", "").lower()
    if "json" in content_type:
        try:
            return body_json(body)
        except ValueError:
            raise MalformedResponseError(
                f"the answer claims to be JSON but is not ({len(body)} bytes; truncated?)",
                status=response.status_code,
                method=method,
                path=path,
            ) from None
    if content_type.startswith("text/"):
        return body_text(response, body)
    try:
        return body_json(body)
    except ValueError:
        return body_text(response, body)
