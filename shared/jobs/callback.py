"""Signed result callbacks: POST the finished job to the caller's https URL, Standard Webhooks signed.

- Signed exactly like the outbound alert webhook (shared/standard_webhooks.py): `webhook-id` is stable per job
  (`job_<id>`), so a receiver drops a redelivery; every retry is re-signed with a fresh timestamp. During a
  secret rotation the header carries one signature per configured secret.
- SSRF guard: https only; the host must resolve to public addresses (loopback only with MCAS_ALLOW_LOOPBACK);
  redirects are not followed. (The URL was already checked at intake; the resolution check runs at send time.)
- Retried on 408/429/5xx and network errors, a few times with backoff; a callback that still fails is recorded
  on the job and never changes the job's own status.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from shared import standard_webhooks as sw
from shared.jobs.schema import callback_url_problem
from shared.settings import is_loopback_host
from shared.version import APP_VERSION

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
EVENT_TYPE = "job.finished"


@dataclass(frozen=True)
class CallbackOutcome:
    status: str  # "delivered" | "failed" | "refused"
    attempts: int
    last_status: int | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "attempts": self.attempts}
        if self.last_status is not None:
            data["lastStatus"] = self.last_status
        if self.detail:
            data["detail"] = self.detail
        return data


class HttpPoster(Protocol):
    """What `deliver` needs from an HTTP client (a `requests.Session`; tests pass a fake)."""

    def post(self, url: str, **kwargs: Any) -> Any: ...


class CallbackRefused(Exception):
    """The URL is not an acceptable destination (scheme, resolution to a private address)."""


def check_destination(
    url: str, *, allow_loopback: bool, resolve: Callable[[str, int], Sequence[str]] | None = None
) -> None:
    problem = callback_url_problem(url, allow_loopback=allow_loopback)
    if problem:
        raise CallbackRefused(f"callbackUrl {problem}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    addresses = (resolve or _resolve)(host, parts.port or 443)
    if not addresses:
        raise CallbackRefused("the callback host does not resolve")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if address.is_loopback and allow_loopback and is_loopback_host(host):
            continue
        if not address.is_global:
            raise CallbackRefused("the callback host resolves to a private, loopback or reserved address")


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def deliver(
    url: str,
    payload: dict[str, Any],
    *,
    msg_id: str,
    keys: Sequence[bytes],
    allow_loopback: bool,
    session: HttpPoster | None = None,
    attempts: int = 3,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
    resolve: Callable[[str, int], Sequence[str]] | None = None,
) -> CallbackOutcome:
    """POST `payload` to `url`, signed; never raises for the receiver's failures."""
    import requests

    try:
        check_destination(url, allow_loopback=allow_loopback, resolve=resolve)
    except CallbackRefused as exc:
        log.warning("callback for %s refused: %s", msg_id, exc)
        return CallbackOutcome("refused", 0, detail=str(exc))
    body = json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")
    http = session or callback_session()
    last_status: int | None = None
    detail: str | None = None
    for attempt in range(1, attempts + 1):
        headers = _signed(keys, msg_id, body, int(now()))
        try:
            response = http.post(url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False)
        except requests.RequestException as exc:
            last_status, detail = None, f"{type(exc).__name__}"
        else:
            last_status, detail = response.status_code, None
            response.close()
            if 200 <= response.status_code < 300:
                log.info(
                    "callback for %s delivered (HTTP %s, attempt %d)", msg_id, response.status_code, attempt
                )
                return CallbackOutcome("delivered", attempt, last_status)
            if response.status_code not in RETRY_STATUSES:
                break
        if attempt < attempts:
            sleep(backoff_s * (2 ** (attempt - 1)))
    log.warning(
        "callback for %s failed after %d attempt(s) (last: %s)", msg_id, attempt, last_status or detail
    )
    return CallbackOutcome("failed", attempt, last_status, detail)


def _signed(keys: Sequence[bytes], msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    signatures = " ".join(sw.sign(key, msg_id, timestamp, body) for key in keys)
    return {
        sw.HEADER_ID: msg_id,
        sw.HEADER_TIMESTAMP: str(timestamp),
        sw.HEADER_SIGNATURE: signatures,
        "Content-Type": "application/json",
        "User-Agent": f"mcas-functions/{APP_VERSION} (job callback)",
    }


_session_lock = threading.Lock()
_session: requests.Session | None = None


def callback_session() -> requests.Session:
    """A pooled session for callbacks, separate from the API session (different hosts, no auth header)."""
    global _session  # noqa: PLW0603 - a deliberate lazily built per-worker singleton
    with _session_lock:
        if _session is None:
            import requests

            _session = requests.Session()
        return _session


def reset_callback_session() -> None:
    global _session  # noqa: PLW0603
    with _session_lock:
        if _session is not None:
            _session.close()
        _session = None


def _register() -> None:
    from shared.caches import register_cache_reset

    register_cache_reset(reset_callback_session)


_register()
