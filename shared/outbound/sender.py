"""One Standard Webhooks sender for every signed delivery: job callbacks and the alert webhook sink.

Per delivery: the destination is resolved and checked once and the connection pinned to a checked address
(shared/outbound/addresses.py, pinned.py); the body is signed with every current key (one signature each
while a secret rotates) under a `webhook-id` that is stable per message, re-signed with a fresh timestamp
per attempt (https://www.standardwebhooks.com). Retries follow `shared.backoff`: 408/425/429/5xx and
network failures are retried, `Retry-After` is honoured, and nothing waits past the caller's deadline. A 401
re-reads the secret from Key Vault once (it may have been rotated). Redirects are never followed.

The two configurations differ only in policy: callbacks go to caller-supplied URLs (public addresses only),
the webhook sink to the operator's configured receiver (private addresses allowed). `Delivery.detail` is
safe to show to the job's submitter: network failures read the same whatever happened at the socket or TLS
level (the exception type is logged for operators), so a callback URL cannot be used as a port probe.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from shared import standard_webhooks as sw
from shared.backoff import Backoff, Jitter, parse_retry_after
from shared.outbound.addresses import Destination, DestinationRefused, Resolver, checked_destination
from shared.outbound.pinned import Answer, Poster, shared_poster
from shared.version import APP_VERSION

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
NO_ANSWER = "the receiver could not be reached"
MIN_ATTEMPT_S = 0.5

Stopped = Literal["delivered", "destination", "answer", "attempts", "deadline", "no_key"]
KeyReader = Callable[[bool], Sequence[bytes]]  # refresh -> the current HMAC keys (refresh: bypass caches)


@dataclass(frozen=True)
class SenderConfig:
    """One kind of delivery: who receives it and how hard to try."""

    purpose: str  # in logs and the User-Agent
    public_only: bool
    max_attempts: int
    backoff_base_s: float
    backoff_cap_s: float
    timeout_s: float
    jitter: Jitter = "full"


CALLBACK = SenderConfig(
    "job callback", public_only=True, max_attempts=3, backoff_base_s=1.0, backoff_cap_s=8.0, timeout_s=10.0
)
ALERT_WEBHOOK = SenderConfig(
    "alert webhook", public_only=False, max_attempts=5, backoff_base_s=1.0, backoff_cap_s=20.0, timeout_s=30.0
)


@dataclass(frozen=True)
class Delivery:
    """How a delivery ended. `detail` is safe for job results (no connection-level detail)."""

    stopped: Stopped
    attempts: int
    last_status: int | None = None
    detail: str | None = None

    @property
    def delivered(self) -> bool:
        return self.stopped == "delivered"


@dataclass
class SignedSender:
    config: SenderConfig
    keys: KeyReader
    allow_loopback: bool = False
    poster: Poster | None = None
    resolve: Resolver | None = None
    backoff: Backoff = field(default_factory=Backoff)
    now: Callable[[], float] = time.time

    @classmethod
    def build(
        cls,
        config: SenderConfig,
        keys: KeyReader,
        *,
        allow_loopback: bool,
        poster: Poster | None = None,
        resolve: Resolver | None = None,
        rng: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
    ) -> SignedSender:
        backoff = Backoff(
            config.backoff_base_s, config.backoff_cap_s, config.jitter, rng or random.random, clock, sleep
        )
        return cls(config, keys, allow_loopback, poster, resolve, backoff, now)

    def send(self, url: str, body: bytes, *, msg_id: str, deadline: float | None) -> Delivery:
        """POST `body` to `url`, signed; never raises for the receiver's or the network's failures."""
        try:
            destination = checked_destination(
                url,
                public_only=self.config.public_only,
                allow_loopback=self.allow_loopback,
                resolve=self.resolve,
            )
        except DestinationRefused as exc:
            log.warning("%s %s refused: %s", self.config.purpose, msg_id, exc)
            return Delivery("destination", 0, detail=str(exc))
        refreshed = False
        last: Answer | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                keys = list(self.keys(refreshed))
            except Exception as exc:  # Key Vault or a malformed secret: nothing can be signed
                log.warning("%s %s: no signing key (%s)", self.config.purpose, msg_id, type(exc).__name__)
                return self._ended("no_key", attempt - 1, last, "no signing key is available")
            last = self._post_once(destination, keys, msg_id, body, attempt=attempt, deadline=deadline)
            status = last.status_code if last is not None else None
            if status is not None and 200 <= status < 300:
                log.info(
                    "%s %s delivered (HTTP %s, attempt %d)", self.config.purpose, msg_id, status, attempt
                )
                return Delivery("delivered", attempt, status)
            if status == 401 and not refreshed and attempt < self.config.max_attempts:
                refreshed = True  # the secret may have been rotated: re-read it once, send again now
                continue
            if status is not None and status not in RETRY_STATUSES:
                return self._ended("answer", attempt, last)
            if attempt >= self.config.max_attempts:
                return self._ended("attempts", attempt, last)
            told = parse_retry_after(last.header("Retry-After"), now=self.now) if last is not None else None
            pause = self.backoff.wait_for(attempt, told)
            margin = MIN_ATTEMPT_S if deadline is not None else 0.0  # time left for the next attempt itself
            if not self.backoff.fits(pause + margin, deadline):
                return self._ended("deadline", attempt, last)
            self.backoff.sleep_within(pause, deadline)

    def _post_once(
        self,
        destination: Destination,
        keys: Sequence[bytes],
        msg_id: str,
        body: bytes,
        *,
        attempt: int,
        deadline: float | None,
    ) -> Answer | None:
        """One signed POST: the receiver's answer, or None when none came (network, TLS, timeout)."""
        poster = self.poster or shared_poster()
        headers = self._headers(keys, msg_id, body)
        try:
            return poster.post(destination, data=body, headers=headers, timeout=self._timeout(deadline))
        except Exception as exc:  # OSError, TLS and urllib3 errors alike: the answer never came
            if not _is_network_error(exc):
                raise
            log.warning("%s %s attempt %d: %s", self.config.purpose, msg_id, attempt, type(exc).__name__)
            return None

    @staticmethod
    def _ended(stopped: Stopped, attempts: int, last: Answer | None, detail: str | None = None) -> Delivery:
        if last is None:
            return Delivery(stopped, attempts, None, detail or NO_ANSWER)
        text = detail or f"the receiver answered HTTP {last.status_code}"
        return Delivery(stopped, attempts, last.status_code, text)

    def _timeout(self, deadline: float | None) -> float:
        if deadline is None:
            return self.config.timeout_s
        return min(self.config.timeout_s, max(MIN_ATTEMPT_S, deadline - self.backoff.clock()))

    def _headers(self, keys: Sequence[bytes], msg_id: str, body: bytes) -> dict[str, str]:
        timestamp = int(self.now())
        return {
            sw.HEADER_ID: msg_id,
            sw.HEADER_TIMESTAMP: str(timestamp),
            sw.HEADER_SIGNATURE: " ".join(sw.sign(key, msg_id, timestamp, body) for key in keys),
            "Content-Type": "application/json",
            "User-Agent": f"mcas-functions/{APP_VERSION} ({self.config.purpose})",
        }


def _is_network_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    try:
        import urllib3
    except ImportError:  # pragma: no cover - urllib3 is a runtime dependency
        return False
    return isinstance(exc, urllib3.exceptions.HTTPError)
