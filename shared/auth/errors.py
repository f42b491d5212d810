"""Typed authentication errors. Callers branch on these types (and TransientError / TerminalError), not text.

Messages name the setting, Key Vault secret, client id or tenant involved and say what to check; they never
carry a secret value, token or assertion.
"""

from __future__ import annotations

from shared.errors import McasError, TerminalError, TransientError


class AuthenticationError(McasError):
    """Base of every failure to obtain API credentials."""


class KeyVaultUnavailableError(AuthenticationError, TransientError):
    """Key Vault could not be reached (or kept failing) after the bounded retries."""


class SecretNotFoundError(AuthenticationError, TerminalError):
    """The named secret (or certificate) does not exist in the vault, or the identity may not read it."""


class SecretAccessDeniedError(SecretNotFoundError):
    """Key Vault refused the read (403): the app's identity lacks the 'Key Vault Secrets User' role."""


class IdentityProviderUnavailableError(AuthenticationError, TransientError):
    """The Entra ID token endpoint (or the managed identity endpoint) kept failing after bounded retries."""


class CredentialRejectedError(AuthenticationError, TerminalError):
    """Entra ID rejected the client credential even after re-reading it from Key Vault (wrong, expired)."""


class TokenRequestError(AuthenticationError, TerminalError):
    """Entra ID refused the token request for another reason (unknown app, missing consent, bad scope, ...).

    `error` is the OAuth error (e.g. `invalid_grant`) and `codes` the AADSTS numbers, for callers that branch.
    """

    def __init__(self, message: str, *, error: str = "", codes: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.error = error
        self.codes = codes


class InteractionRequiredError(AuthenticationError, TerminalError):
    """User context needs a sign-in the helper cannot do silently (`mcasctl login`; MFA blocks ROPC)."""


class CertificateFormatError(AuthenticationError, TerminalError):
    """The Key Vault certificate could not be parsed into a private key and certificate."""
