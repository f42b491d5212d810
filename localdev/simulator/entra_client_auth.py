"""Entra ID client authentication: who is calling the token endpoint, and how it proved it.

The methods Entra accepts: a secret in the body (`client_secret_post`) or in HTTP Basic
(`client_secret_basic`), a certificate-signed assertion (`private_key_jwt`, self-issued: iss = sub = client
id, audience the token endpoint), a federated credential's token (here: a managed identity token from this
simulator, matched on issuer, audience and subject), or nothing for a public client.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from localdev.simulator.directory import App, Directory
from localdev.simulator.entra_errors import (
    EntraError,
    client_auth_error,
    missing,
    no_client_credential,
    unknown_client,
)
from localdev.simulator.tokens import TokenIssuer, audience_matches
from localdev.simulator.wire import InvalidToken, SimRequest

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class TokenRequest:
    """One call to a token endpoint, as every grant sees it: the request, its form (a v1 `resource` already
    turned into `scope`), the tenant segment of the URL and the directory that segment names."""

    req: SimRequest
    form: dict[str, str]
    tenant_seg: str
    directory: Directory


class ClientAuthenticator:
    """Authenticates token-endpoint callers of every directory served at `authority`."""

    def __init__(self, authority: str, issuer: TokenIssuer, clock: Callable[[], float]) -> None:
        self.authority = authority.rstrip("/")
        self.issuer = issuer
        self._clock = clock

    def _token_endpoints(self, tenant_seg: str, directory: Directory) -> set[str]:
        """Audiences accepted in a client assertion: the token endpoint under any name of the tenant."""
        names = {tenant_seg, directory.tenant_id, directory.domain}
        out: set[str] = set()
        for name in names:
            out.update(
                {
                    f"{self.authority}/{name}/oauth2/v2.0/token",
                    f"{self.authority}/{name}/oauth2/token",
                    f"{self.authority}/{name}/v2.0",
                }
            )
        return out

    def authenticate(self, call: TokenRequest) -> tuple[App, str]:
        """Identify and authenticate the client; returns (app, method) with method in
        secret / certificate / federated / public."""
        req, form, tenant_seg, directory = call.req, call.form, call.tenant_seg, call.directory
        client_id = form.get("client_id", "")
        secret = form.get("client_secret")
        auth = req.header("authorization")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise EntraError(
                    401, "invalid_client", 7000216, "'client_assertion' or 'client_secret' is required."
                ) from None
            basic_id, _, basic_secret = decoded.partition(":")
            client_id = client_id or unquote(basic_id.replace("+", " "))
            secret = unquote(basic_secret.replace("+", " "))
        if not client_id:
            raise missing("client_id")
        with directory.lock:
            app = directory.app(client_id)
            if app is None:
                raise unknown_client(
                    client_id,
                    directory.domain,
                    " This can happen if the application has not been installed by the administrator of the "
                    "tenant or consented to by any user in the tenant. You may have sent your authentication "
                    "request to the wrong tenant.",
                )
            assertion = form.get("client_assertion")
            if assertion is not None:
                if app.public_client:
                    raise self._public_with_credential()
                if form.get("client_assertion_type") != ASSERTION_TYPE:
                    raise EntraError(
                        400,
                        "invalid_request",
                        50027,
                        "JWT token is invalid or malformed: client_assertion_type must be "
                        f"'{ASSERTION_TYPE}'.",
                    )
                return app, self._verify_client_assertion(app, assertion, tenant_seg, directory)
            if secret is not None:
                if app.public_client:
                    raise self._public_with_credential()
                match = next((s for s in app.secrets if s.matches(secret)), None)
                if match is None:
                    raise client_auth_error(
                        7000215,
                        "Invalid client secret provided. Ensure the secret being sent in the request is the "
                        "client secret value, not the client secret ID, for a secret added to app "
                        f"'{app.client_id}'.",
                    )
                if match.expired:
                    raise client_auth_error(
                        7000222,
                        f"The provided client secret keys for app '{app.client_id}' are expired. Visit the "
                        "Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or "
                        "consider using certificate credentials for added security: https://aka.ms/certCreds.",
                    )
                return app, "secret"
            if app.public_client:
                return app, "public"
            raise no_client_credential()

    def authenticate_confidential(self, call: TokenRequest) -> tuple[App, str]:
        """`authenticate` for grants only a confidential client may use (client credentials, OBO)."""
        app, method = self.authenticate(call)
        if method == "public":
            raise no_client_credential()
        return app, method

    @staticmethod
    def _public_with_credential() -> EntraError:
        return client_auth_error(
            700025, "Client is public so neither 'client_assertion' nor 'client_secret' should be presented."
        )

    def _verify_client_assertion(
        self, app: App, assertion: str, tenant_seg: str, directory: Directory
    ) -> str:
        """Certificate assertions are self-issued (iss = sub = client id); anything else must be a federated
        credential's token (here: a managed identity token from this simulator)."""
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from None
        if unverified.get("iss") == app.client_id:
            self._verify_certificate_assertion(app, assertion, header, tenant_seg, directory)
            return "certificate"
        self._verify_federated_assertion(app, assertion)
        return "federated"

    def _verify_certificate_assertion(
        self, app: App, assertion: str, header: dict[str, Any], tenant_seg: str, directory: Directory
    ) -> None:
        def thumb(name: str) -> bytes | None:
            value = header.get(name)
            if not isinstance(value, str):
                return None
            try:
                return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            except (binascii.Error, ValueError):
                return None

        sha1, sha256 = thumb("x5t"), thumb("x5t#S256")
        cert = app.certificate_by_thumbprint(sha1=sha1, sha256=sha256)
        if cert is None:
            shown = (sha256 or sha1 or b"").hex().upper()
            raise client_auth_error(
                700027,
                "Client assertion contains an invalid signature. [Reason - The key was not found., "
                f"Thumbprint of key used by client: '{shown}', Please visit the Azure Portal, Graph "
                "Explorer or directly "
                f"use MS Graph to see configured keys for app Id '{app.client_id}'.]",
            )
        if cert.not_valid_after_utc.timestamp() < self._clock():
            raise client_auth_error(
                700027, "Client assertion contains an invalid signature. [Reason - The key used is expired.]"
            )
        public_key = cert.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise client_auth_error(700027, "Client assertion failed signature validation.")
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256", "PS256"],
                options={"verify_aud": False, "require": ["exp", "aud", "iss", "sub"]},
                leeway=300,
            )
        except jwt.ExpiredSignatureError:
            raise client_auth_error(700024, "Client assertion is not within its valid time range.") from None
        except jwt.InvalidSignatureError:
            raise client_auth_error(700027, "Client assertion failed signature validation.") from None
        except jwt.PyJWTError as exc:
            raise EntraError(
                400, "invalid_request", 50027, f"JWT token is invalid or malformed ({type(exc).__name__})."
            ) from None
        endpoints = self._token_endpoints(tenant_seg, directory)
        if not any(audience_matches(claims.get("aud"), e) for e in endpoints):
            raise client_auth_error(
                700212,
                f"Client assertion audience claim does not match the token endpoint. Audience: "
                f"'{claims.get('aud')}'.",
            )
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise client_auth_error(
                700023,
                "Client assertion issuer and subject must both be the client id of the application.",
            )

    def _verify_federated_assertion(self, app: App, assertion: str) -> None:
        try:
            claims = self.issuer.decode(assertion)
        except InvalidToken as exc:
            if "expired" in str(exc):
                raise client_auth_error(
                    700024, "Client assertion is not within its valid time range."
                ) from None
            raise client_auth_error(700027, "Client assertion failed signature validation.") from None
        if self.issuer.is_revoked(str(claims.get("jti", ""))):
            raise client_auth_error(
                700027, "Client assertion failed signature validation. [Reason - revoked]"
            )
        iss, sub, aud = str(claims.get("iss")), str(claims.get("sub")), claims.get("aud")
        records = [f for f in app.federated if f.issuer.rstrip("/") == iss.rstrip("/")]
        if not records:
            raise client_auth_error(
                700211, f"No matching federated identity record found for presented assertion issuer '{iss}'."
            )
        records = [f for f in records if any(audience_matches(aud, a) for a in f.audiences)]
        if not records:
            raise client_auth_error(
                700212,
                f"No matching federated identity record found for presented assertion audience '{aud}'.",
            )
        if not any(f.subject == sub for f in records):
            raise client_auth_error(
                700213,
                f"No matching federated identity record found for presented assertion subject '{sub}'.",
            )
