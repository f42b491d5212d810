"""Typed errors of the Defender for Cloud Apps API client.

Callers branch on the type (throttled, server, auth, not found, bad request), never on message text. Every
error carries the HTTP status, the API's own message, its error code and correlation id when the API gave
them - and never a header value or a token.
"""

from __future__ import annotations

from shared.errors import McasError, TerminalError, TransientError


class ApiError(McasError):
    """The API (or the way to it) failed a request. `status` is None when no response arrived."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        correlation_id: str | None = None,
        retry_after: float | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.error_code = error_code
        self.correlation_id = correlation_id
        self.retry_after = retry_after
        self.method = method
        self.path = path
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        status = f"HTTP {self.status}: " if self.status is not None else ""
        code = f" [{self.error_code}]" if self.error_code else ""
        corr = f" (correlation id {self.correlation_id})" if self.correlation_id else ""
        return f"{where}{status}{self.message}{code}{corr}"


class ThrottledError(ApiError, TransientError):
    """429: the tenant's request budget is spent; `retry_after` says for how many seconds."""


class ServerError(ApiError, TransientError):
    """5xx: the service failed; worth retrying for idempotent calls."""


class ApiUnavailableError(ApiError, TransientError):
    """No usable response: connection refused/reset, TLS failure, read timeout."""


class MalformedResponseError(ApiError, TransientError):
    """A 2xx answer this client cannot use: not JSON where JSON was due, truncated, missing or mistyped
    fields, or larger than the client accepts. Treated as transient (a gateway or a cut connection usually
    explains it); queue-driven work retries a bounded number of times, then lands in the dead-letter store."""


class BudgetExhaustedError(ApiError, TransientError):
    """The caller's time budget ends before the next attempt (or the next free rate-limit slot)."""


class AuthError(ApiError, TerminalError):
    """401 (after one token refresh) or 403 (the app or user lacks the permission)."""


class NotFoundError(ApiError, TerminalError):
    """404: unknown id or path."""


class BadRequestError(ApiError, TerminalError):
    """400: the API rejected the request's content; retrying the same request cannot help."""


class ClientRequestError(ApiError, TerminalError):
    """Any other 4xx answer (405, 409, 413, ...)."""


# Which API permission a call needs (learn.microsoft.com/defender-cloud-apps/api-authentication-application,
# "Supported permission scopes"), so a 403 can say what to grant. Order matters: first match wins.
_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("POST", "/api/v1/alerts/close_", "Investigation.manage (or Discovery.manage)"),
    ("POST", "/api/v1/alerts/reopen", "Investigation.manage"),
    ("POST", "/api/v1/alerts/", "Investigation.read"),  # list, and <id>/read/ or <id>/unread/
    ("GET", "/api/v1/alerts/", "Investigation.read"),
    ("", "/api/v1/discovery/", "Discovery.manage"),
    ("", "/api/discovery_block_scripts/", "Discovery.manage"),
    ("", "/api/discovery/streams/", "Discovery.read"),
    ("", "/api/v1/activities/", "Investigation.read"),
    ("", "/api/v1/entities/", "Investigation.read"),
    ("", "/api/v1/files/", "a legacy API token (files are not available in application context)"),
)


def required_permission(method: str | None, path: str | None) -> str | None:
    """The permission (app role or delegated scope) a call needs, when known."""
    if not path:
        return None
    for verb, prefix, permission in _PERMISSIONS:
        if path.startswith(prefix) and (not verb or verb == (method or "").upper()):
            return permission
    return None


def is_ambiguous(error: BaseException) -> bool:
    """True when a non-idempotent request may or may not have taken effect (sent, but no clear answer).

    429, 4xx and auth failures are definite refusals; 5xx, timeouts and dropped connections are not.
    """
    return isinstance(error, ServerError | ApiUnavailableError)
