"""API credentials for Defender for Cloud Apps: one cached, single-flight helper for every caller.

Interface used by the API client and every function:
    credential = api_credential(profile)                 # application / user / legacy, from settings
    credential = api_credential(profile, user_assertion=bearer)   # on-behalf-of a calling analyst
    headers["Authorization"] = credential.authorization_header()
    ...on a 401: credential.invalidate(); retry once

The returned object also offers `await authorization_header_async()` for async functions, `invalidate(header)`
to name the exact header the API rejected, and `describe()` (what `mcasctl token` prints - never the token).

Importing this package is cheap: MSAL, azure-identity and the Key Vault SDK load on the first token request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from shared.auth.errors import (
    AuthenticationError,
    CertificateFormatError,
    CredentialRejectedError,
    IdentityProviderUnavailableError,
    InteractionRequiredError,
    KeyVaultUnavailableError,
    SecretAccessDeniedError,
    SecretNotFoundError,
    TokenRequestError,
)
from shared.auth.redaction import install_redaction, redact
from shared.settings import Settings, TenantProfile, get_settings

if TYPE_CHECKING:
    from shared.auth.tokens import CachedCredential, TokenDescription


def __getattr__(name: str) -> Any:
    """`CachedCredential` and `TokenDescription` load on first use: importing the package (which the
    logging setup does at app start, for redaction) stays cheap."""
    if name in ("CachedCredential", "TokenDescription"):
        from shared.auth import tokens

        return getattr(tokens, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ApiCredential(Protocol):
    def authorization_header(self) -> str:
        """`Bearer <jwt>` or `Token <key>`; cached, refreshed before expiry."""
        ...

    def invalidate(self) -> None:
        """Drop the cached token (after the API answered 401) so the next call fetches a fresh one."""
        ...


def api_credential(
    profile: TenantProfile, *, user_assertion: str | None = None, settings: Settings | None = None
) -> CachedCredential:
    """The worker's credential for `profile` (built once, then shared by every invocation and thread).

    With `user_assertion` (the bearer token a request arrived with), the credential acts on behalf of that
    user. Raises `ConfigurationError` for unusable settings; token errors surface from
    `authorization_header()` as `AuthenticationError` subclasses (transient ones are also `TransientError`,
    terminal ones `TerminalError`).
    """
    from shared.auth.factory import credential_for, obo_credential_for

    settings = settings or get_settings()
    if user_assertion is not None:
        return obo_credential_for(settings, profile, user_assertion)
    return credential_for(settings, profile)


def resource_credential(
    profile: TenantProfile, scope: str, *, settings: Settings | None = None
) -> CachedCredential:
    """The worker's application-context credential for `scope` (e.g. `https://graph.microsoft.com/.default`):
    same app registration, Key Vault credential and single-flight cache as `api_credential`."""
    from shared.auth.factory import resource_credential_for

    return resource_credential_for(settings or get_settings(), profile, scope)


__all__ = [
    "ApiCredential",
    "AuthenticationError",
    "CachedCredential",
    "CertificateFormatError",
    "CredentialRejectedError",
    "IdentityProviderUnavailableError",
    "InteractionRequiredError",
    "KeyVaultUnavailableError",
    "SecretAccessDeniedError",
    "SecretNotFoundError",
    "TokenDescription",
    "TokenRequestError",
    "api_credential",
    "install_redaction",
    "redact",
    "resource_credential",
]
