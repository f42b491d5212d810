"""The cached credential every caller holds: a microsecond fast path in front of a single-flight token source.

- Fast path: the current header while it is fresher than the refresh margin (one clock read and a compare).
- Proactive refresh: inside the margin, one caller refreshes while the others keep using the still-valid
  token; if that refresh fails, the current token is used until it really expires.
- No usable token (cold start, after `invalidate()`): every caller joins one flight, so N concurrent callers
  cause one token request (and, below it, one Key Vault read).
- `invalidate()` after a 401 drops the token the *caller* used: callers that got the same rejected token do
  not throw away the replacement another caller already fetched (the header each context last received is
  remembered in a context variable, which works per thread and per asyncio task).
"""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.auth.errors import AuthenticationError
from shared.auth.singleflight import SingleFlight
from shared.telemetry import metrics

_log = logging.getLogger(__name__)
_MAX_SKEW = 30.0
_HITS_FLUSH_S = 1.0
_FLIGHT = "token"


@dataclass(frozen=True)
class AccessToken:
    """A credential for the API. `value` never appears in repr()."""

    value: str = field(repr=False)
    scheme: str = "Bearer"  # or "Token" (legacy)
    expires_on: float = math.inf  # epoch seconds
    source: str = "identity_provider"  # "identity_provider", "cache" or "key_vault"
    refresh_in: float | None = None  # seconds; for tokens without an expiry (legacy), when to re-read

    @property
    def header(self) -> str:
        return f"{self.scheme} {self.value}"


@dataclass(frozen=True)
class SourceInfo:
    """What a token source is, for `mcasctl token` and logs (never secret)."""

    mode: str  # application, user, on_behalf_of, legacy
    tenant_name: str
    tenant_id: str
    client_id: str
    credential: str  # e.g. "client secret (Key Vault secret 'mcas-client-secret')"
    authority: str


class TokenSource(Protocol):
    def fetch(self, *, force_refresh: bool) -> AccessToken:
        """A token from the source's own cache or the identity provider; `force_refresh` skips caches."""
        ...

    def info(self) -> SourceInfo: ...


@dataclass(frozen=True)
class TokenDescription:
    """`mcasctl token` output: everything about the token except the token."""

    mode: str
    tenant_name: str
    tenant_id: str
    client_id: str
    credential: str
    authority: str
    scheme: str
    audience: str | None
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    user: str | None
    expires_on: datetime | None
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "tenant": self.tenant_name,
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "credential": self.credential,
            "authority": self.authority,
            "scheme": self.scheme,
            "audience": self.audience,
            "roles": list(self.roles),
            "scopes": list(self.scopes),
            "user": self.user,
            "expires_on": self.expires_on.isoformat() if self.expires_on else None,
            "source": self.source,
        }


def unverified_claims(token: str) -> dict[str, Any]:
    """The JWT payload without signature checks - for describing our own token, never for authorization."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return {}
    return claims if isinstance(claims, dict) else {}


@dataclass(frozen=True)
class _Entry:
    token: AccessToken
    header: str
    refresh_at: float  # monotonic
    usable_until: float  # monotonic


class CachedCredential:
    """Implements the `ApiCredential` interface over a `TokenSource`; one instance per worker and profile."""

    def __init__(
        self,
        source: TokenSource,
        *,
        refresh_margin: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._margin = refresh_margin
        self._clock = clock
        self._wall = wall_clock
        self._entry: _Entry | None = None
        self._force = False
        self._lock = threading.Lock()
        self._flight: SingleFlight[_Entry] = SingleFlight()
        self._handed_out: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"mcas_auth_header_{id(self)}", default=None
        )
        self.hits = 0
        self.misses = 0
        self._tenant: str | None = None
        self._pending_hits = 0  # token_cache_hits not yet added to the metric (see _count_hit)
        self._hits_flush_at = 0.0

    # -- the ApiCredential interface -------------------------------------------------------------------------

    def authorization_header(self) -> str:
        """`Bearer <jwt>` or `Token <key>`; cached, refreshed before expiry, one flight on a miss."""
        entry = self._entry
        if entry is None or self._clock() >= entry.refresh_at:
            entry = self._slow_path()
        else:
            self.hits += 1
            if metrics.enabled:  # one attribute read when telemetry is off: the fast path stays fast
                self._count_hit()
        self._handed_out.set(entry.header)
        return entry.header

    async def authorization_header_async(self) -> str:
        """The same for async functions: the fast path inline; a refresh runs on a worker thread while the
        other coroutines await it without holding threads."""
        entry = self._entry
        if entry is None or self._clock() >= entry.refresh_at:
            entry = await self._slow_path_async()
        else:
            self.hits += 1
            if metrics.enabled:
                self._count_hit()
        self._handed_out.set(entry.header)
        return entry.header

    def invalidate(self, rejected_header: str | None = None) -> None:
        """Drop the token the API rejected (401); the next call fetches a fresh one from the identity
        provider.

        `rejected_header` defaults to the header this thread / task last received from this credential, so a
        burst of 401s for one old token causes one refresh, not one per caller.
        """
        rejected = rejected_header or self._handed_out.get()
        with self._lock:
            entry = self._entry
            if entry is None:
                return  # already dropped; the pending refresh is forced
            if rejected is not None and rejected != entry.header:
                return  # the rejected token was already replaced
            self._entry = None
            self._force = True
        _log.info(
            "API credential for %s invalidated after a 401; the next call gets a fresh token", self.label
        )

    # -- additions -------------------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        info = self._source.info()
        return f"{info.mode} client {info.client_id or '-'} (tenant {info.tenant_name})"

    def token(self) -> AccessToken:
        """The current token object (for diagnostics; prefer `authorization_header()`)."""
        entry = self._entry
        if entry is not None and self._clock() < entry.refresh_at:
            return AccessToken(entry.token.value, entry.token.scheme, entry.token.expires_on, "cache")
        return self._slow_path().token

    def describe(self) -> TokenDescription:
        """Acquire (or reuse) the token and describe it; the token itself is not part of the result."""
        token = self.token()
        info = self._source.info()
        claims = unverified_claims(token.value) if token.scheme == "Bearer" else {}
        scopes = tuple(str(claims.get("scp", "")).split()) if claims.get("scp") else ()
        roles = tuple(str(r) for r in claims.get("roles", ()) or ())
        expires = None if math.isinf(token.expires_on) else datetime.fromtimestamp(token.expires_on, UTC)
        audience = claims.get("aud")
        user = claims.get("preferred_username") or claims.get("upn") or claims.get("unique_name")
        return TokenDescription(
            mode=info.mode,
            tenant_name=info.tenant_name,
            tenant_id=str(claims.get("tid") or info.tenant_id),
            client_id=str(claims.get("appid") or claims.get("azp") or info.client_id),
            credential=info.credential,
            authority=info.authority,
            scheme=token.scheme,
            audience=str(audience) if audience else None,
            roles=roles,
            scopes=scopes,
            user=str(user) if user else None,
            expires_on=expires,
            source=token.source,
        )

    # -- internals -------------------------------------------------------------------------------------------

    def _slow_path(self) -> _Entry:
        entry = self._usable_entry()
        if entry is None:
            return self._flight.do(_FLIGHT, self._refresh)
        if self._flight.in_flight(_FLIGHT):
            self.hits += 1
            self._count_hit()
            return entry  # another caller is refreshing; the current token is still valid
        try:
            return self._flight.do(_FLIGHT, self._refresh)
        except AuthenticationError as exc:
            self._refresh_failed(exc)
            return entry

    async def _slow_path_async(self) -> _Entry:
        entry = self._usable_entry()
        if entry is None:
            return await self._flight.do_async(_FLIGHT, self._refresh)
        if self._flight.in_flight(_FLIGHT):
            self.hits += 1
            self._count_hit()
            return entry
        try:
            return await self._flight.do_async(_FLIGHT, self._refresh)
        except AuthenticationError as exc:
            self._refresh_failed(exc)
            return entry

    def _count_hit(self) -> None:
        """The `token_cache_hits` metric, only called when telemetry is on. Batched: one OpenTelemetry add
        with attributes costs ~5 us, far more than the cached header itself, so hits are summed here and
        added at most once a second (and before every refresh)."""
        self._pending_hits += 1
        now = self._clock()
        if now >= self._hits_flush_at:
            self._flush_hits(now)

    def _flush_hits(self, now: float) -> None:
        pending, self._pending_hits = self._pending_hits, 0
        if pending:
            self._hits_flush_at = now + _HITS_FLUSH_S
            metrics.add("token_cache_hits", pending, tenant=self._metric_tenant())

    def _metric_tenant(self) -> str:
        """The tenant profile name for metric attributes, looked up once (the source's info() is not free)."""
        tenant = self._tenant
        if tenant is None:
            try:
                tenant = self._source.info().tenant_name or "unknown"
            except Exception:  # a metric label is never worth failing a token request
                tenant = "unknown"
            self._tenant = tenant
        return tenant

    def _usable_entry(self) -> _Entry | None:
        """The current entry if it is still valid (only due for a proactive refresh), else None."""
        entry = self._entry
        if entry is not None and self._clock() < entry.usable_until:
            return entry
        return None

    def _refresh_failed(self, exc: AuthenticationError) -> None:
        _log.warning(
            "proactive token refresh for %s failed (%s: %s); using the current token until expiry",
            self.label,
            type(exc).__name__,
            exc,
        )

    def _refresh(self) -> _Entry:
        with self._lock:
            entry = self._entry
            if entry is not None and self._clock() < entry.refresh_at:
                return entry  # a flight that finished just before this one already refreshed it
            force, self._force = self._force, False
        self.misses += 1
        if metrics.enabled:
            self._flush_hits(self._clock())
            metrics.add("token_cache_misses", tenant=self._metric_tenant())
        try:
            token = self._source.fetch(force_refresh=force)
        except BaseException:
            if force:
                with self._lock:
                    self._force = True
            raise
        new = self._entry_for(token)
        with self._lock:
            self._entry = new
        return new

    def _entry_for(self, token: AccessToken) -> _Entry:
        now = self._clock()
        lifetime = math.inf if math.isinf(token.expires_on) else max(0.0, token.expires_on - self._wall())
        margin = min(self._margin, lifetime / 2)
        skew = min(_MAX_SKEW, lifetime / 10)
        refresh_in = token.refresh_in if token.refresh_in is not None else lifetime - margin
        return _Entry(
            token=token,
            header=token.header,
            refresh_at=now + refresh_in,
            usable_until=now + lifetime - skew,
        )
