"""Turn a Key Vault certificate (read as its backing secret) into what MSAL needs for a client assertion.

Key Vault serves a certificate's private key through `GET /secrets/{certificate name}` with content type
`application/x-pkcs12` (base64 PFX, empty password) or `application/x-pem-file` (PEM key + chain). We extract
the private key (PKCS#8 PEM), the leaf certificate and its SHA-1 thumbprint (the `x5t` Entra ID matches
against the app registration); the PEM certificate goes along as `x5c` only when asked (subject name / issuer
auth).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from shared.auth.errors import CertificateFormatError
from shared.auth.redaction import register_secret

PKCS12_CONTENT_TYPE = "application/x-pkcs12"
PEM_CONTENT_TYPE = "application/x-pem-file"


@dataclass(frozen=True)
class ClientCertificate:
    private_key_pem: str = field(repr=False)
    certificate_pem: str
    thumbprint_sha1: str  # upper-case hex, as the portal shows it
    thumbprint_sha256: str

    def msal_credential(self, *, send_x5c: bool) -> dict[str, str]:
        credential = {"private_key": self.private_key_pem, "thumbprint": self.thumbprint_sha1}
        if send_x5c:
            credential["public_certificate"] = self.certificate_pem
        return credential


def parse_certificate(value: str, content_type: str | None, *, name: str) -> ClientCertificate:
    """Parse a Key Vault certificate secret (PEM or base64 PKCS#12); errors name it, never show the bytes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key: Any
    certs: list[Any]
    looks_pem = "-----BEGIN" in value
    if content_type == PEM_CONTENT_TYPE or (content_type != PKCS12_CONTENT_TYPE and looks_pem):
        try:
            key = serialization.load_pem_private_key(_pem_block(value, "PRIVATE KEY").encode(), password=None)
            certs = x509.load_pem_x509_certificates(value.encode())
        except (ValueError, TypeError) as exc:
            raise CertificateFormatError(
                f"Key Vault certificate {name!r} is not a usable unencrypted PEM key and certificate "
                f"({type(exc).__name__})"
            ) from None
    else:
        try:
            raw = base64.b64decode(value, validate=False)
            key, leaf, extra = pkcs12.load_key_and_certificates(raw, None)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise CertificateFormatError(
                f"Key Vault certificate {name!r} is not a PKCS#12 file without a password "
                f"({type(exc).__name__})"
            ) from None
        certs = ([leaf] if leaf is not None else []) + list(extra or [])
    if key is None or not certs:
        raise CertificateFormatError(
            f"Key Vault certificate {name!r} must hold both a private key and a certificate"
        )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    leaf_cert = next(
        (
            c
            for c in certs
            if c.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == public
        ),
        None,
    )
    if leaf_cert is None:
        raise CertificateFormatError(
            f"no certificate in Key Vault certificate {name!r} matches its private key"
        )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    register_secret(private_pem)
    return ClientCertificate(
        private_key_pem=private_pem,
        certificate_pem=leaf_cert.public_bytes(serialization.Encoding.PEM).decode(),
        thumbprint_sha1=leaf_cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - x5t is SHA-1 by spec
        thumbprint_sha256=leaf_cert.fingerprint(hashes.SHA256()).hex().upper(),
    )


def _pem_block(text: str, kind: str) -> str:
    """The first PEM block whose label ends with `kind` (PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY...)."""
    import re

    match = re.search(rf"-----BEGIN ([A-Z ]*{kind})-----.*?-----END \1-----", text, re.DOTALL)
    if match is None:
        raise ValueError("no private key block")
    return match.group(0)
