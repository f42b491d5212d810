"""Entra ID bearer tokens for the jobs API, validated with PyJWT against the tenant's JWKS.

Checks: RS256 signature with a key from `{authority}/{tenant}/discovery/v2.0/keys` (PyJWKClient, keys cached,
a refetch on an unknown `kid` with a cool-down), issuer (v2.0 or v1.0 form of the configured tenant), audience
(the app's client id and/or app id URI), `exp` / `nbf` / `iat` with a small leeway, and `tid`. Then
authorization: a user token (`idtyp=user`, or delegated scopes without `idtyp`) needs the configured scope
and becomes a `user` principal; an app-only token (`idtyp=app`, or roles without scopes) needs the
configured role and becomes an `application` principal. A token whose `idtyp` contradicts its claims (a
"user" with roles only, an "app" with scopes) is refused. `idtyp` is described at
https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference.

PyJWKClient fetches with urllib, which ignores REQUESTS_CA_BUNDLE, so the SSL context is built from that
bundle when set (tests, the local simulator) and from the system store otherwise.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Sequence
from typing import Any

from shared.jobs.principal import AuthFailure, AuthUnavailable, Principal

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256"]
MAX_TOKEN_LENGTH = 16 * 1024
JWKS_LIFESPAN_S = 3600  # keys rotate rarely; an unknown kid triggers a refetch anyway


def ssl_context() -> ssl.SSLContext:
    """Trust REQUESTS_CA_BUNDLE when set (what `requests` does), else the system defaults."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
    if bundle and os.path.isfile(bundle):  # noqa: PTH113 - a plain existence check
        return ssl.create_default_context(cafile=bundle)
    return ssl.create_default_context()


class BearerValidator:
    """Validates `Authorization: Bearer` headers; one per worker (it owns the JWKS cache)."""

    def __init__(
        self,
        *,
        jwks_url: str,
        issuers: Sequence[str],
        audiences: Sequence[str],
        tenant_id: str,
        required_role: str | None,
        required_scope: str | None,
        leeway_s: int = 60,
        jwks_client: Any = None,
    ) -> None:
        if not jwks_url.startswith("https://"):
            raise ValueError("the JWKS URL must be https://")
        self.jwks_url = jwks_url
        self.issuers = list(issuers)
        self.audiences = list(audiences)
        self.tenant_id = tenant_id
        self.required_role = required_role
        self.required_scope = required_scope
        self.leeway_s = leeway_s
        self._jwks_client = jwks_client
        self._lock = threading.Lock()

    def _jwks(self) -> Any:
        with self._lock:
            if self._jwks_client is None:
                import jwt

                self._jwks_client = jwt.PyJWKClient(
                    self.jwks_url,
                    cache_keys=True,
                    lifespan=JWKS_LIFESPAN_S,
                    timeout=10,
                    ssl_context=ssl_context(),
                )
            return self._jwks_client

    def authenticate(self, authorization: str) -> Principal:
        """`authorization` is the full header value. Raises AuthFailure (401/403) or AuthUnavailable."""
        import jwt

        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthFailure(401, "invalid_request", "the Authorization header must be 'Bearer <token>'")
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise AuthFailure(401, "invalid_token", "the bearer token is malformed")
        try:
            signing_key = self._jwks().get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError:
            log.warning("could not fetch the signing keys from %s", self.jwks_url)
            raise AuthUnavailable("the token signing keys could not be fetched") from None
        except (jwt.PyJWKClientError, jwt.DecodeError, jwt.InvalidTokenError):
            raise AuthFailure(401, "invalid_token", "the bearer token is not signed by a known key") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                signing_key.key,
                algorithms=ALGORITHMS,
                audience=self.audiences,
                issuer=self.issuers,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud"], "verify_signature": True},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailure(401, "invalid_token", "the bearer token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthFailure(401, "invalid_token", "the bearer token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise AuthFailure(401, "invalid_token", "the bearer token was not issued for this API") from None
        except jwt.InvalidIssuerError:
            raise AuthFailure(401, "invalid_token", "the bearer token has an unexpected issuer") from None
        except jwt.InvalidSignatureError:
            raise AuthFailure(401, "invalid_token", "the bearer token signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthFailure(401, "invalid_token", f"the bearer token lacks the {exc.claim} claim") from None
        except jwt.InvalidTokenError:
            raise AuthFailure(401, "invalid_token", "the bearer token is invalid") from None
        if str(claims.get("tid", "")).lower() != self.tenant_id.lower():
            raise AuthFailure(401, "invalid_token", "the bearer token was issued by another tenant")
        return self._principal(claims, token)

    def _principal(self, claims: dict[str, Any], token: str) -> Principal:
        """User or application, decided by `idtyp` when present, and never against the token's own claims:
        a user token carries delegated scopes (`scp`), an app-only token roles and no scopes."""
        client_id = _text(claims.get("azp") or claims.get("appid"))
        subject = _text(claims.get("oid")) or _text(claims.get("sub"))
        if not subject:
            raise AuthFailure(401, "invalid_token", "the bearer token names no subject")
        scp = claims.get("scp")
        scopes = set(scp.split()) if isinstance(scp, str) else set()
        roles = claims.get("roles")
        role_list = [str(r) for r in roles] if isinstance(roles, list) else []
        kind = claims.get("idtyp")
        if kind not in (None, "user", "app"):
            raise AuthFailure(401, "invalid_token", "the bearer token has an unknown token type (idtyp)")
        if kind == "user" or (kind is None and scopes):
            if not scopes:
                raise AuthFailure(
                    401, "invalid_token", "the bearer token claims a user but carries no delegated scopes"
                )
            if self.required_scope and self.required_scope not in scopes:
                raise AuthFailure(
                    403, "insufficient_scope", f"the delegated token lacks the {self.required_scope} scope"
                )
            name = _text(claims.get("preferred_username") or claims.get("upn") or claims.get("unique_name"))
            return Principal(
                kind="user",
                subject=subject,
                tenant_id=_text(claims.get("tid")),
                client_id=client_id,
                name=name,
                expires_at=int(claims["exp"]),
                assertion=token,
            )
        if kind == "app" and scopes:
            raise AuthFailure(
                401, "invalid_token", "an app-only bearer token must not carry delegated scopes"
            )
        if role_list:
            if self.required_role and self.required_role not in role_list:
                raise AuthFailure(
                    403, "insufficient_role", f"the application token lacks the {self.required_role} role"
                )
            if not client_id:
                raise AuthFailure(401, "invalid_token", "the application token names no client (azp/appid)")
            return Principal(
                kind="application", subject=client_id, tenant_id=_text(claims.get("tid")), client_id=client_id
            )
        raise AuthFailure(
            403, "insufficient_scope", "the token carries neither delegated scopes nor app roles"
        )


def _text(value: Any) -> str | None:
    return str(value)[:256] if value not in (None, "") else None
