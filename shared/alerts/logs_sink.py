"""The `logs` sink: alert rows into a Log Analytics custom table through the Azure Monitor Logs Ingestion API.

POST {endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01 with a gzip JSON array and a
bearer token for `https://monitor.azure.com/.default`; success is 204 and says nothing per record
(https://learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview).

Why not `azure-monitor-ingestion`'s `LogsIngestionClient.upload`: it encodes every record twice, its chunker
leaves the `, ` separators out of its size count (a bulk chunk can exceed 1 MiB decompressed), its retry
policy neither retries connection resets on POST nor knows the run's deadline (it sleeps out `Retry-After`
past the checkpoint lease), and without `on_error` it stops at the first failed chunk. `bench/bench_logs.py`
compares the two on the simulator. What this sender guarantees instead:
- each call carries at most `MAX_REQUEST_BYTES` (1 MiB) both before and after gzip, and one record is never
  split across calls (rows are capped at 64 KB per column by `logs_records.project`);
- 413 splits the chunk further; 400 (a record the service refuses) bisects down to the one record, which is
  dead-lettered with the service's reason so it never blocks the page;
- 429 waits `Retry-After`, 5xx/408 and connection resets or timeouts back off (`shared.backoff`), 401 fetches
  a fresh token once; every wait stays within the caller's deadline;
- anything else (403 missing role, 404 unknown rule or stream, retries exhausted) raises `SinkError`, so the
  page's checkpoint does not commit and the whole page is delivered again by a later run.

Duplicates: at-least-once. A row is sent again when (a) its page is redelivered - a run crashed or any chunk
of the page failed, and then every chunk of that page goes again, at most once per uncommitted delivery - or
(b) a call whose answer was lost (reset or timeout after the service accepted it) is retried, at most
`max_attempts - 1` times per chunk. So a row appears at most `deliveries x max_attempts` times, in
practice once; `(AlertId, AlertVersion)` identifies a row and queries dedupe on it (README, "Sentinel").
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shared.alerts.logs_records import encode, project
from shared.alerts.sinks import AlertBatch, SinkError
from shared.backoff import Backoff, parse_retry_after
from shared.caches import KeptObjects

if TYPE_CHECKING:
    import requests

    from shared.alerts.config import LogsConfig
    from shared.settings import Settings

log = logging.getLogger(__name__)

API_VERSION = "2023-01-01"
MAX_REQUEST_BYTES = 1024 * 1024  # 413 ContentLengthLimitExceeded above this
DEAD_LETTER_SOURCE = "logs-ingestion"
_RETRY_STATUS = frozenset({408, 500, 502, 503, 504})


class Authorizer(Protocol):
    def authorization_header(self) -> str: ...

    def invalidate(self, rejected_header: str | None = None) -> None: ...


class DeadLetterFn(Protocol):
    def __call__(self, *, source: str, reason: str, body: str | bytes, message_id: str | None) -> Any: ...


@dataclass
class _Chunk:
    indexes: list[int]  # positions in the page


@dataclass(frozen=True)
class _Outcome:
    kind: str  # accepted | too_large | refused
    detail: str = ""


@dataclass
class LogsStats:
    """What the sink did since it was built (read by tests, the benchmark and the demo)."""

    calls: int = 0
    rows: int = 0
    wire_bytes: int = 0
    max_call_bytes: int = 0
    retries: int = 0
    splits: int = 0
    dead_lettered: int = 0


def plan_chunks(sizes: Sequence[int], limit: int = MAX_REQUEST_BYTES) -> list[list[int]]:
    """Consecutive groups of row indexes whose JSON array (`[` rows joined by `,` `]`) fits in `limit` bytes.
    A row too big on its own is returned alone; the caller decides what to do with it."""
    chunks: list[list[int]] = []
    current: list[int] = []
    used = 2
    for index, size in enumerate(sizes):
        extra = size + (1 if current else 0)
        if current and used + extra > limit:
            chunks.append(current)
            current, used, extra = [], 2, size
        current.append(index)
        used += extra
    if current:
        chunks.append(current)
    return chunks


def gzip_bytes(data: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip container
    return compressor.compress(data) + compressor.flush()


def _service_error(response: requests.Response) -> str:
    """`code: message` from the service's error body (never headers: they may echo request details)."""
    try:
        payload = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or response.headers.get("x-ms-error-code") or response.status_code)
        return f"{code}: {str(error.get('message') or '')[:500]}"
    return f"HTTP {response.status_code}"


class LogsIngestionSink:
    """Writes each page's alerts as rows of the custom table; see the module docstring for the guarantees."""

    name = "logs"
    order = 40  # after the idempotent blob/file/webhook sinks, before the queue

    def __init__(
        self,
        endpoint: str,
        dcr_immutable_id: str,
        stream: str,
        credential: Callable[[], Authorizer],
        *,
        session: requests.Session | None = None,
        dead_letter: DeadLetterFn | None = None,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff: Backoff | None = None,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        gzip_level: int = 1,  # bench_logs.py: vs 6, about a third less CPU for a third more wire bytes
    ) -> None:
        self.url = (
            f"{endpoint.rstrip('/')}/dataCollectionRules/{dcr_immutable_id}/streams/{stream}"
            f"?api-version={API_VERSION}"
        )
        self._credential = credential
        self._session = session
        self._dead_letter = dead_letter
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff = backoff or Backoff(base=1.0, cap=20.0, jitter="full")
        self._limit = max_request_bytes
        self._level = gzip_level
        self._lock = threading.Lock()
        self.stats = LogsStats()

    # -- the Sink interface ---------------------------------------------------------------------------

    def deliver(self, batch: AlertBatch, *, deadline: float | None) -> None:
        rows = [encode(project(alert)) for alert in batch.alerts]
        pending: deque[_Chunk] = deque()
        for indexes in plan_chunks([len(r) for r in rows], self._limit):
            if len(indexes) == 1 and len(rows[indexes[0]]) + 2 > self._limit:
                self._reject(batch, rows, indexes[0], f"row of {len(rows[indexes[0]])} bytes exceeds 1 MiB")
                continue
            pending.append(_Chunk(indexes))
        while pending:
            chunk = pending.popleft()
            body = b"[" + b",".join(rows[i] for i in chunk.indexes) + b"]"
            wire = gzip_bytes(body, self._level)
            outcome = (
                _Outcome("too_large", "compressed body over 1 MiB")
                if len(wire) > self._limit
                else self._post(wire, len(chunk.indexes), deadline)
            )
            if outcome.kind == "accepted":
                continue
            if len(chunk.indexes) > 1:  # split and try the halves first, in order
                half = len(chunk.indexes) // 2
                pending.appendleft(_Chunk(chunk.indexes[half:]))
                pending.appendleft(_Chunk(chunk.indexes[:half]))
                with self._lock:
                    self.stats.splits += 1
                continue
            self._reject(batch, rows, chunk.indexes[0], outcome.detail)

    # -- one call, with retries -----------------------------------------------------------------------

    def _post(self, wire: bytes, count: int, deadline: float | None) -> _Outcome:
        import requests

        from shared.auth.errors import AuthenticationError

        session = self._session or _ingestion_session()
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                credential = self._credential()
                header = credential.authorization_header()
            except AuthenticationError as exc:
                raise SinkError(self.name, f"no token for Azure Monitor ({exc})") from exc
            headers = {
                "Authorization": header,
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "x-ms-client-request-id": str(uuid.uuid4()),
            }
            timeout = self._timeout
            if deadline is not None:
                timeout = min(timeout, max(0.5, deadline - self._backoff.clock()))
            retry_after: float | None = None
            try:
                response = session.post(
                    self.url, data=wire, headers=headers, timeout=timeout, allow_redirects=False
                )
            except requests.RequestException as exc:
                problem = f"request failed ({type(exc).__name__})"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    with self._lock:
                        stats = self.stats
                        stats.calls += 1
                        stats.rows += count
                        stats.wire_bytes += len(wire)
                        stats.max_call_bytes = max(stats.max_call_bytes, len(wire))
                    return _Outcome("accepted")
                detail = _service_error(response)
                if status == 413:
                    return _Outcome("too_large", detail)
                if status == 400:
                    return _Outcome("refused", detail)
                problem = f"HTTP {status} ({detail})"
                if status == 401 and not refreshed:
                    refreshed = True
                    credential.invalidate(header)
                    continue
                if status == 429:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                elif status not in _RETRY_STATUS:
                    raise SinkError(self.name, f"{problem}; the page stays uncommitted")
            if attempt >= self._max_attempts:
                raise SinkError(self.name, f"{problem} after {attempt} attempts")
            wait = self._backoff.wait_for(attempt, retry_after, told_jitter=0.1)
            if not self._backoff.sleep_within(wait, deadline):
                raise SinkError(self.name, f"{problem}; no time left in this run's budget to retry")
            with self._lock:
                self.stats.retries += 1
            log.warning("logs ingestion: %s; retry %d in %.1f s", problem, attempt, wait)

    def _reject(self, batch: AlertBatch, rows: Sequence[bytes], index: int, reason: str) -> None:
        """Dead-letter one record the service will never accept; the rest of the page goes on."""
        alert = batch.alerts[index]
        row = json.loads(rows[index])
        message_id = f"{batch.tenant}:{row['AlertId']}:{row['AlertVersion']}"
        text = (
            f"the Logs Ingestion API refused alert {row['AlertId']} version {row['AlertVersion']}: {reason}"
        )
        dead_letter = self._dead_letter or _store_dead_letter
        try:
            dead_letter(
                source=DEAD_LETTER_SOURCE,
                reason=text,
                body=batch.lines[index] if batch.lines else encode(alert),
                message_id=message_id,
            )
        except Exception as exc:  # without a stored letter the record would be lost: keep the page
            raise SinkError(
                self.name, f"could not dead-letter a refused record ({type(exc).__name__})"
            ) from exc
        with self._lock:
            self.stats.dead_lettered += 1
        log.error("%s; dead-lettered", text)


def _store_dead_letter(*, source: str, reason: str, body: str | bytes, message_id: str | None) -> Any:
    from shared.deadletters import dead_letter

    return dead_letter(source=source, reason=reason, body=body, message_id=message_id)


_session_lock = threading.Lock()
_session_holder: list[requests.Session] = []


def _ingestion_session() -> requests.Session:
    """A pooled session for the ingestion endpoint (keep-alive across pages and runs)."""
    with _session_lock:
        if not _session_holder:
            import requests

            _session_holder.append(requests.Session())
        return _session_holder[0]


def logs_sink(
    config: LogsConfig | None = None, *, settings: Settings | None = None, **options: Any
) -> LogsIngestionSink:
    """The sink from settings: token for the configured (or first) tenant profile's app identity. `options`
    go to `LogsIngestionSink` (tests and benchmarks tune the backoff)."""
    from shared.alerts.config import logs_config
    from shared.errors import ConfigurationError
    from shared.settings import get_settings

    settings = settings or get_settings()
    config = config or logs_config(settings)
    if config is None:
        raise ConfigurationError("MCAS_LOGS_INGESTION_ENDPOINT", "is required for the logs sink")
    profile = settings.tenant(config.tenant_profile) if config.tenant_profile else settings.default_tenant
    scope = config.scope
    use_managed_identity = config.credential == "managed_identity"

    def credential() -> Authorizer:
        if use_managed_identity:
            return managed_identity_authorizer(scope)
        from shared.auth import resource_credential

        return resource_credential(profile, scope)

    return LogsIngestionSink(config.endpoint, config.dcr_immutable_id, config.stream, credential, **options)


# -- the worker's own managed identity (MCAS_LOGS_CREDENTIAL=managed_identity) ------------------------------


class _ManagedIdentitySource:
    """Tokens of the Function App's managed identity for `scope` (azure-identity; `AZURE_CLIENT_ID` selects a
    user-assigned identity). The role on the data collection rule is then assigned to that identity."""

    def __init__(self, scope: str) -> None:
        self._scope = scope
        self._credential: Any = None

    def _client(self, fresh: bool) -> Any:
        if self._credential is None or fresh:  # a fresh instance skips azure-identity's token cache
            import os

            from azure.identity import ManagedIdentityCredential

            client_id = os.environ.get("AZURE_CLIENT_ID") or None
            self._credential = (
                ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
            )
        return self._credential

    def fetch(self, *, force_refresh: bool) -> Any:
        from azure.core.exceptions import ClientAuthenticationError

        from shared.auth.errors import IdentityProviderUnavailableError
        from shared.auth.tokens import AccessToken

        try:
            token = self._client(force_refresh).get_token(self._scope)
        except ClientAuthenticationError as exc:
            raise IdentityProviderUnavailableError(
                f"managed identity token for {self._scope} failed ({type(exc).__name__})"
            ) from exc
        return AccessToken(token.token, "Bearer", float(token.expires_on))

    def info(self) -> Any:
        import os

        from shared.auth.tokens import SourceInfo

        return SourceInfo(
            mode="managed_identity",
            tenant_name="-",
            tenant_id="-",
            client_id=os.environ.get("AZURE_CLIENT_ID") or "system-assigned",
            credential=f"managed identity ({self._scope})",
            authority="managed identity endpoint",
        )


_mi_credentials: KeptObjects[str, Authorizer] = KeptObjects()


def managed_identity_authorizer(scope: str) -> Authorizer:
    """One cached, single-flight credential per scope over the worker's managed identity."""

    def build() -> Authorizer:
        from shared.auth.tokens import CachedCredential

        return CachedCredential(_ManagedIdentitySource(scope), refresh_margin=300.0)

    return _mi_credentials.get(scope, build)
