"""RS256 access tokens shaped like Entra ID's v2.0 tokens, and their verification.

One `TokenIssuer` per simulator signs every token (Entra grants, managed identity) with one RSA key published
in the JWKS, so the app can validate tokens exactly as it would against Entra (issuer, audience, signature,
expiry). `verify()` also knows about revocation, which a JWKS-only validator cannot: Key Vault and the MDA
API use it so `POST /_admin/tokens/revoke` makes issued tokens fail with 401, as after a credential reset.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from localdev.pki import b64url, self_signed_certificate
from localdev.simulator.wire import InvalidToken

MDA_RESOURCE = "05a65629-4c1b-48c1-a78b-804c4abdd4af"
KEY_VAULT_RESOURCE = "https://vault.azure.net"
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
ALGORITHM = "RS256"


def audience_matches(aud: Any, audience: str) -> bool:
    """True if the token's `aud` (string or list) names `audience`, ignoring a trailing slash."""
    wanted = audience.rstrip("/")
    values = aud if isinstance(aud, list) else [aud]
    return any(isinstance(v, str) and v.rstrip("/") == wanted for v in values)


class TokenIssuer:
    """Issues and verifies the simulator's tokens; thread-safe.

    `authority` is the simulator's authority host (https://127.0.0.1:P): issuers are `{authority}/{tid}/v2.0`.
    """

    def __init__(
        self,
        authority: str,
        *,
        lifetime_s: int = 3599,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.authority = authority.rstrip("/")
        self.default_lifetime_s = lifetime_s
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._cert = self_signed_certificate(self._key, "mcas-localdev-token-signing")
        self.kid = b64url(self._cert.fingerprint(hashes.SHA1()))  # noqa: S303 - Entra's kid is the x5t
        self._cert_der_b64 = base64.b64encode(self._cert.public_bytes(Encoding.DER)).decode()
        self._lock = threading.Lock()
        self._issued: dict[str, str] = {}  # jti -> client id (appid)
        self._revoked: set[str] = set()

    # -- issuing ---------------------------------------------------------------------------------------------

    def issuer(self, tenant_id: str) -> str:
        return f"{self.authority}/{tenant_id}/v2.0"

    def v1_issuer(self, tenant_id: str) -> str:
        return f"https://sts.windows.net/{tenant_id}/"

    def now(self) -> int:
        return int(self._clock())

    def issue(
        self,
        *,
        tenant_id: str,
        audience: str,
        client_id: str,
        subject: str,
        object_id: str,
        roles: list[str] | None = None,
        scp: str | None = None,
        user: dict[str, str] | None = None,
        lifetime_s: int | None = None,
        extra: dict[str, Any] | None = None,
        issued_at: int | None = None,
        acr: str = "1",
    ) -> tuple[str, dict[str, Any]]:
        """Sign an access token; returns (jwt, claims). `user` carries upn / name for delegated tokens.

        `acr` is the client authentication method (azpacr): "0" public client, "1" secret, "2" certificate
        or assertion.
        """
        iat = self.now() if issued_at is None else issued_at
        lifetime = self.lifetime_s if lifetime_s is None else lifetime_s
        jti = uuid.uuid4().hex
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer(tenant_id),
            "iat": iat,
            "nbf": iat,
            "exp": iat + lifetime,
            "tid": tenant_id,
            "appid": client_id,
            "azp": client_id,
            "azpacr": acr,
            "appidacr": acr,
            "oid": object_id,
            "sub": subject,
            "jti": jti,
            "uti": jti[:22],
            "ver": "2.0",
            "idtyp": "user" if user else "app",
        }
        if roles:
            claims["roles"] = sorted(roles)
        if scp:
            claims["scp"] = scp
        if user:
            claims.update(
                {
                    "upn": user["upn"],
                    "preferred_username": user["upn"],
                    "unique_name": user["upn"],
                    "name": user.get("name", user["upn"]),
                }
            )
        if extra:
            claims.update(extra)
        token = self.sign(claims)
        with self._lock:
            self._issued[jti] = client_id
        return token, claims

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign arbitrary claims with the simulator's key (id tokens, tests minting odd tokens)."""
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid, "x5t": self.kid})

    # -- revocation ------------------------------------------------------------------------------------------

    def revoke(self, client_id: str | None = None) -> int:
        """Revoke every token issued so far (to `client_id` only, if given); returns how many were revoked."""
        with self._lock:
            jtis = [j for j, c in self._issued.items() if client_id is None or c == client_id]
            new = [j for j in jtis if j not in self._revoked]
            self._revoked.update(new)
            return len(new)

    def is_revoked(self, jti: str) -> bool:
        with self._lock:
            return jti in self._revoked

    # -- publication and verification ------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()

        def _int(value: int) -> str:
            return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "x5t": self.kid,
                    "n": _int(numbers.n),
                    "e": _int(numbers.e),
                    "x5c": [self._cert_der_b64],
                }
            ]
        }

    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def decode(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """Check the signature (and expiry) of one of our tokens, without audience or revocation checks."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        if header.get("kid") != self.kid:
            raise InvalidToken("unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=[ALGORITHM],
                # time checks below use the issuer's clock (injectable in tests), not PyJWT's
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token ({type(exc).__name__})") from None
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if not isinstance(exp, int | float):
            raise InvalidToken("token has no expiry")
        now = self._clock()
        if verify_exp and now >= exp:
            raise InvalidToken("token expired")
        if isinstance(nbf, int | float) and now < nbf - 300:
            raise InvalidToken("token not yet valid")
        iss = str(claims.get("iss", ""))
        tid = str(claims.get("tid", ""))
        if iss not in (self.issuer(tid), self.v1_issuer(tid)):
            raise InvalidToken("unexpected issuer")
        return claims

    def verify(self, token: str, *, audience: str) -> dict[str, Any]:
        """`TokenVerifier`: signature, expiry, audience, revocation; InvalidToken says which check failed."""
        claims = self.decode(token)
        if not audience_matches(claims.get("aud"), audience):
            raise InvalidToken("wrong audience")
        if self.is_revoked(str(claims.get("jti", ""))):
            raise InvalidToken("token revoked")
        return claims
