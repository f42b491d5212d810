"""Shared MSAL plumbing: error classification, transient-failure detection, bounded retries, the app
constructor options and turning a result into an `AccessToken`.

Kept apart so the confidential (application, on-behalf-of) and public (device code, ROPC) clients classify
Entra responses, give up on an unreachable identity provider and read tokens the same way.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.auth.errors import IdentityProviderUnavailableError, TokenRequestError
from shared.auth.redaction import redact
from shared.auth.retry import RetryableError, with_retries
from shared.auth.tokens import AccessToken

T = TypeVar("T")

HTTP_TIMEOUT = 30  # seconds, per request to the token endpoint

# `error` values worth another try (RFC 6749 + Entra), as opposed to a wrong request or credential.
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
# AADSTS codes that mean "the user must interact" (MFA, consent, password change) - ROPC cannot satisfy them.
INTERACTION_CODES = frozenset({50076, 50079, 50158, 50072, 50074, 65001, 50055, 50173, 700082, 50078})
# AADSTS codes for a rejected password / bad user credential (worth one re-read of the Key Vault secrets).
BAD_PASSWORD_CODES = frozenset({50126, 50034})


class NoHttpCache(dict[Any, Any]):
    """An `http_cache` that never stores: turns off MSAL's 5xx/429 response replay, so our bounded retries
    actually reach the token endpoint again (MSAL would otherwise replay the error for Retry-After or 5s)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


def error_codes(result: dict[str, Any]) -> tuple[int, ...]:
    codes = result.get("error_codes") or []
    found = [int(c) for c in codes if isinstance(c, int) or (isinstance(c, str) and c.isdigit())]
    if not found:
        found = [int(m) for m in re.findall(r"AADSTS(\d+)", str(result.get("error_description", "")))]
    return tuple(found)


def error_summary(result: dict[str, Any]) -> str:
    """`invalid_client (AADSTS7000215: Invalid client secret provided.)` - first sentence only, redacted."""
    error = str(result.get("error") or "error")
    description = str(result.get("error_description") or "").strip().splitlines()
    first = description[0] if description else ""
    first = first.split(". ")[0].rstrip(".") + "." if first else ""
    return redact(f"{error} ({first[:200]})" if first else error)


def authority_problem(exc: Exception, authority: str) -> str:
    """MSAL's ValueError from an app constructor, said so an operator knows which setting to fix.

    MSAL's own text is long and generic; an unknown tenant gets a sentence naming the setting, anything
    else (bad key material, a malformed authority) MSAL's first sentence, whole words only.
    """
    text = " ".join(redact(str(exc)).split())
    if "authority configuration" in text or "tenant" in text.lower():
        tenant = authority.rstrip("/").rsplit("/", 1)[-1]
        host = authority.rstrip("/").rsplit("/", 1)[0]
        return (
            f"Entra ID at {host} does not know the tenant {tenant!r} (tenant discovery failed). Check "
            "MCAS_TENANT_ID (or tenant_id in MCAS_TENANT_PROFILES): the Directory (tenant) ID of your Entra "
            "tenant, a GUID, or a verified domain such as contoso.onmicrosoft.com; and MCAS_AUTHORITY_HOST "
            "for sovereign clouds"
        )
    first = text.split(". ")[0].rstrip(".")
    if len(first) > 240:
        first = first[:240].rsplit(" ", 1)[0] + " ..."
    return f"{first}."


def is_invalid_client(result: dict[str, Any]) -> bool:
    return result.get("error") == "invalid_client"


def is_transient_exception(exc: BaseException) -> bool:
    """Network failures and 5xx answers MSAL surfaces as exceptions (requests errors, MsalServiceError)."""
    import requests
    from msal.exceptions import MsalServiceError

    if isinstance(exc, requests.RequestException):
        return True
    if isinstance(exc, MsalServiceError):
        return True
    try:
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

        # The managed identity endpoint behind a federated client assertion.
        return isinstance(exc, ClientAuthenticationError | ServiceRequestError)
    except ImportError:  # pragma: no cover - azure-core is a dependency
        return False


def call_token_endpoint(call: Callable[[], dict[str, Any] | None], *, what: str) -> dict[str, Any]:
    """One attempt: raise `RetryableError` for transient failures, return the MSAL result dict otherwise
    (an empty dict when MSAL answered None, e.g. a silent acquisition with nothing cached)."""
    try:
        result = call() or {}
    except Exception as exc:
        if is_transient_exception(exc):
            raise RetryableError(f"{what}: {type(exc).__name__}") from None
        raise
    if result.get("error") in TRANSIENT_ERRORS:
        raise RetryableError(f"{what}: {error_summary(result)}")
    return result


@dataclass(frozen=True)
class IdentityProviderRetry:
    """How a client retries its calls to the identity provider: bounded retries of `RetryableError`, then one
    `IdentityProviderUnavailableError` naming the authority (and, with `reachable_from`, where it must be
    reachable from) instead of the last transient failure."""

    authority: str
    attempts: int
    backoff: float
    sleep: Callable[[float], None] = time.sleep
    reachable_from: str | None = None

    def __call__(self, attempt: Callable[[], T], *, what: str) -> T:
        try:
            return with_retries(
                attempt, attempts=self.attempts, backoff=self.backoff, what=what, sleep=self.sleep
            )
        except RetryableError as exc:
            where = f" from {self.reachable_from}" if self.reachable_from else ""
            raise IdentityProviderUnavailableError(
                f"{what} failed after {self.attempts} attempts ({exc.reason}); check that {self.authority} "
                f"is reachable{where}"
            ) from None

    def build_app(self, construct: Callable[[], T], *, client: str, transient: str) -> T:
        """An MSAL app from `construct`, which runs tenant discovery: retried while it fails transiently
        (`transient` names that in the error); an authority MSAL cannot use names `client` in the error."""

        def attempt() -> T:
            try:
                return construct()
            except ValueError as exc:  # MSAL: unknown tenant / unusable authority / bad key material
                problem = authority_problem(exc, self.authority)
                raise TokenRequestError(
                    f"cannot use authority {self.authority} for {client}: {problem}"
                ) from None
            except Exception as exc:
                if is_transient_exception(exc):
                    raise RetryableError(f"{transient}: {type(exc).__name__}") from None
                raise

        return self(attempt, what=f"tenant discovery at {self.authority}")


def access_token_from(result: dict[str, Any]) -> AccessToken:
    """The bearer token of a successful MSAL result (an hour's lifetime when it carries no `expires_in`)."""
    return AccessToken(
        value=str(result["access_token"]),
        scheme="Bearer",
        expires_on=time.time() + float(result.get("expires_in") or 3600),
        source="cache" if result.get("token_source") == "cache" else "identity_provider",
    )
