"""HTTPS POST over a connection to one already-checked address, verified against the URL's host name.

The socket connects to `Destination.address` (never resolving the name again); TLS sends the URL's host name
as SNI and the certificate must match that name, exactly as if the name had been resolved by the client.
No redirects, no proxies, no retries here (the sender decides), and at most `MAX_ANSWER_BYTES` of the
receiver's answer are read. urllib3 is imported on first use (cold start).

Trust: `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE` when set (what `requests` does), else certifi's bundle.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from shared.headers import header_value
from shared.outbound.addresses import Destination

if TYPE_CHECKING:
    import urllib3

MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """The receiver's status and headers (case-insensitive lookup through `header`)."""

    status_code: int
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


class Poster(Protocol):
    """What the sender needs: one POST to a checked destination (tests may pass a fake)."""

    def post(
        self, destination: Destination, *, data: bytes, headers: Mapping[str, str], timeout: float
    ) -> Answer: ...


def _ca_bundle() -> str:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        value = os.environ.get(name)
        if value and os.path.isfile(value):  # noqa: PTH113 - a plain existence check
            return value
    import certifi

    return str(certifi.where())


class PinnedPoster:
    """A pooled urllib3 client; pools are keyed by (address, port, host name), so pinning is per pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._manager: urllib3.PoolManager | None = None

    def _pools(self) -> urllib3.PoolManager:
        with self._lock:
            if self._manager is None:
                import urllib3

                self._manager = urllib3.PoolManager(
                    num_pools=16, cert_reqs="CERT_REQUIRED", ca_certs=_ca_bundle(), retries=False
                )
            return self._manager

    def post(
        self, destination: Destination, *, data: bytes, headers: Mapping[str, str], timeout: float
    ) -> Answer:
        import urllib3

        parts = urlsplit(destination.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        pool = self._pools().connection_from_host(
            destination.address,
            destination.port,
            "https",
            pool_kwargs={"server_hostname": destination.host, "assert_hostname": destination.host},
        )
        response = pool.urlopen(
            "POST",
            path,
            body=data,
            headers={**headers, "Host": parts.netloc},
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
        )
        try:
            response.read(MAX_ANSWER_BYTES, decode_content=False)
            return Answer(response.status, dict(response.headers.items()))
        finally:
            response.close()  # the connection is not reused: an unread answer must not be left behind

    def close(self) -> None:
        with self._lock:
            if self._manager is not None:
                self._manager.clear()
            self._manager = None


_shared = PinnedPoster()


def shared_poster() -> PinnedPoster:
    """The worker's poster for every signed delivery (pools survive between invocations)."""
    return _shared


def _register() -> None:
    from shared.caches import register_cache_reset

    register_cache_reset(_shared.close)


_register()
