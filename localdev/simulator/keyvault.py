"""Simulated Azure Key Vault (secrets, and certificates readable as secrets) on the main port.

Mirrors what `SecretClient` depends on: the unauthenticated first request answered 401 with a Bearer
challenge naming the authority and resource (the SDK takes the tenant from it), tokens checked for
`aud=https://vault.azure.net`, secret versions (`/secrets/{name}/{version}`), any `api-version`, 404
`SecretNotFound`, and certificates stored the Key Vault way: the certificate's private key and chain are a
*managed secret* of the same name (`application/x-pem-file` or base64 PFX `application/x-pkcs12`).
Successful reads are counted per secret name so tests can prove caching.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from localdev.pki import b64url
from localdev.simulator.counters import Counters
from localdev.simulator.tokens import KEY_VAULT_RESOURCE, TokenIssuer
from localdev.simulator.wire import InvalidToken, SimRequest, SimResponse

PEM_CONTENT_TYPE = "application/x-pem-file"
PFX_CONTENT_TYPE = "application/x-pkcs12"
_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


@dataclass
class SecretVersion:
    name: str
    version: str
    value: str
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    created: int = field(default_factory=lambda: int(time.time()))
    certificate: x509.Certificate | None = None  # set for a certificate's managed secret


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> SimResponse:
    return SimResponse.json(status, {"error": {"code": code, "message": message}}, headers)


class KeyVaultService:
    """Secrets and certificates of one vault, plus its access checks."""

    def __init__(
        self,
        vault_url: str,
        *,
        authority: str,
        tenant_id: str,
        verifier: TokenIssuer,
        counters: Counters,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vault_url = vault_url.rstrip("/")
        self.authority = authority.rstrip("/")
        self.tenant_id = tenant_id
        self.verifier = verifier
        self.counters = counters
        self._clock = clock
        self._lock = threading.Lock()
        self._secrets: dict[str, list[SecretVersion]] = {}
        self.denied_principals: set[str] = set()

    # -- state ---------------------------------------------------------------------------------------

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        tags: dict[str, str] | None = None,
        certificate: x509.Certificate | None = None,
    ) -> SecretVersion:
        """Add a new version (the new latest) of `name`."""
        if not _NAME.match(name):
            raise ValueError(f"invalid secret name {name!r}")
        version = SecretVersion(
            name,
            uuid.uuid4().hex,
            value,
            content_type,
            dict(tags or {}),
            created=int(self._clock()),
            certificate=certificate,
        )
        with self._lock:
            self._secrets.setdefault(name.lower(), []).append(version)
        return version

    def get_secret(self, name: str, version: str | None = None) -> SecretVersion | None:
        with self._lock:
            versions = self._secrets.get(name.lower(), [])
            if not version:
                return versions[-1] if versions else None
            return next((v for v in versions if v.version == version.lower()), None)

    def names(self) -> list[str]:
        with self._lock:
            return [v[-1].name for v in self._secrets.values() if v]

    # -- wire shapes ---------------------------------------------------------------------------------

    def _attributes(self, v: SecretVersion) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "enabled": v.enabled,
            "created": v.created,
            "updated": v.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }
        if v.certificate is not None:
            attrs["nbf"] = int(v.certificate.not_valid_before_utc.timestamp())
            attrs["exp"] = int(v.certificate.not_valid_after_utc.timestamp())
        return attrs

    def _secret_bundle(self, v: SecretVersion, *, with_value: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": f"{self.vault_url}/secrets/{v.name}/{v.version}",
            "attributes": self._attributes(v),
            "tags": v.tags,
        }
        if with_value:
            out["value"] = v.value
        if v.content_type:
            out["contentType"] = v.content_type
        if v.certificate is not None:
            out["managed"] = True
            out["kid"] = f"{self.vault_url}/keys/{v.name}/{v.version}"
        return out

    def _certificate_bundle(self, v: SecretVersion) -> dict[str, Any]:
        cert = v.certificate
        assert cert is not None
        base = f"{self.vault_url}/certificates/{v.name}"
        return {
            "id": f"{base}/{v.version}",
            "kid": f"{self.vault_url}/keys/{v.name}/{v.version}",
            "sid": f"{self.vault_url}/secrets/{v.name}/{v.version}",
            "x5t": b64url(cert.fingerprint(hashes.SHA1())),  # noqa: S303 - x5t is SHA-1 by definition
            "cer": base64.b64encode(cert.public_bytes(Encoding.DER)).decode(),
            "attributes": self._attributes(v),
            "tags": v.tags,
            "policy": {
                "id": f"{base}/policy",
                "key_props": {"exportable": True, "kty": "RSA", "key_size": 2048, "reuse_key": False},
                "secret_props": {"contentType": v.content_type or PFX_CONTENT_TYPE},
                "x509_props": {"subject": cert.subject.rfc4514_string(), "validity_months": 12},
                "issuer": {"name": "Self"},
                "attributes": {"enabled": True, "created": v.created, "updated": v.created},
            },
        }

    # -- protocol ------------------------------------------------------------------------------------

    def endpoint_name(self, req: SimRequest) -> str:
        parts = [p for p in req.path.split("/") if p]
        if not parts:
            return "other"
        kind = parts[0]
        if len(parts) == 1:
            return f"{req.method} /{kind}"
        if len(parts) >= 3 and parts[2] == "versions":
            return f"{req.method} /{kind}/{{name}}/versions"
        suffix = "/{name}/{version}" if len(parts) >= 3 else "/{name}"
        return f"{req.method} /{kind}{suffix}"

    def _challenge(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": f'Bearer authorization="{self.authority}/{self.tenant_id}", '
            f'resource="{KEY_VAULT_RESOURCE}"'
        }

    def _authorize(self, req: SimRequest) -> dict[str, Any] | SimResponse:
        auth = req.header("authorization")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(
                401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", self._challenge()
            )
        try:
            claims = self.verifier.verify(token.strip(), audience=KEY_VAULT_RESOURCE)
        except InvalidToken as exc:
            reason = str(exc)
            message = {
                "wrong audience": f"AKV10022: Invalid audience. Expected {KEY_VAULT_RESOURCE}.",
                "token expired": "AKV10032: Invalid issuer or token expired.",
            }.get(reason, f"AKV10032: Invalid token: {reason}.")
            return _error(401, "Unauthorized", message, self._challenge())
        ids = {str(claims.get(k)) for k in ("oid", "appid", "azp") if claims.get(k)}
        if ids & self.denied_principals:
            return SimResponse.json(
                403,
                {
                    "error": {
                        "code": "Forbidden",
                        "message": "Caller is not authorized to perform action on resource. If role "
                        "assignments, deny assignments or role definitions were changed recently, please "
                        "observe propagation time.",
                        "innererror": {"code": "ForbiddenByRbac"},
                    }
                },
            )
        return claims

    def handle(self, req: SimRequest) -> SimResponse:
        parts = [p for p in req.path.split("/") if p]
        claims = self._authorize(req)
        if isinstance(claims, SimResponse):
            return claims
        if not req.arg("api-version"):
            return _error(400, "BadParameter", "The 'api-version' query parameter is missing.")
        kind = parts[0]
        name = parts[1] if len(parts) > 1 else ""
        if name and not _NAME.match(name):
            return _error(
                400,
                "BadParameter",
                "The request URI contains an invalid name: "
                f"{name}. Follow this link for more information on how to specify a valid name: "
                "https://aka.ms/keyvaultnames.",
            )
        if kind == "secrets":
            return self._secrets_request(req, parts, name)
        if kind == "certificates" and req.method == "GET" and name:
            return self._certificate_request(parts, name)
        return _error(405, "BadParameter", f"Method {req.method} is not supported on {req.path}.")

    def _secrets_request(self, req: SimRequest, parts: list[str], name: str) -> SimResponse:
        if req.method == "GET" and not name:
            items = [self.get_secret(n) for n in self.names()]
            value = [self._secret_bundle(v, with_value=False) for v in items if v]
            return SimResponse.json(200, {"value": value, "nextLink": None})
        if req.method == "GET" and len(parts) == 3 and parts[2] == "versions":
            with self._lock:
                versions = list(self._secrets.get(name.lower(), []))
            if not versions:
                return self._not_found(name)
            value = [self._secret_bundle(v, with_value=False) for v in versions]
            return SimResponse.json(200, {"value": value, "nextLink": None})
        if req.method == "GET":
            version = parts[2] if len(parts) > 2 else None
            found = self.get_secret(name, version)
            if found is None:
                return self._not_found(name, version)
            if not found.enabled:
                return _error(403, "Forbidden", f"Operation get is not allowed on a disabled secret {name}.")
            self.counters.incr("keyvault_reads", found.name)
            return SimResponse.json(200, self._secret_bundle(found, with_value=True))
        if req.method == "PUT" and len(parts) == 2:
            try:
                body = req.json()
            except ValueError:
                body = None
            if not isinstance(body, dict) or not isinstance(body.get("value"), str):
                return _error(400, "BadParameter", "The request body must contain a string 'value'.")
            existing = self.get_secret(name)
            if existing is not None and existing.certificate is not None:
                return _error(
                    409, "Conflict", f"Secret {name} is managed by a certificate and cannot be set directly."
                )
            created = self.set_secret(
                name,
                body["value"],
                content_type=body.get("contentType"),
                tags=body.get("tags") if isinstance(body.get("tags"), dict) else None,
            )
            return SimResponse.json(200, self._secret_bundle(created, with_value=True))
        return _error(405, "BadParameter", f"Method {req.method} is not supported on {req.path}.")

    def _certificate_request(self, parts: list[str], name: str) -> SimResponse:
        version = parts[2] if len(parts) > 2 else None
        found = self.get_secret(name, version)
        if found is None or found.certificate is None:
            return _error(
                404,
                "CertificateNotFound",
                f"A certificate with (name/id) {name} was not found in this key vault.",
            )
        self.counters.incr("keyvault_reads", f"certificate:{found.name}")
        return SimResponse.json(200, self._certificate_bundle(found))

    def _not_found(self, name: str, version: str | None = None) -> SimResponse:
        shown = f"{name}/{version}" if version else name
        return _error(
            404,
            "SecretNotFound",
            f"A secret with (name/id) {shown} was not found in this key vault. If you recently deleted this "
            "secret you may be able to recover it using the correct recovery command. For help resolving "
            "this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
        )
