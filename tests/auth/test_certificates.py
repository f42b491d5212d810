"""Key Vault certificates (PEM and PKCS#12 as their backing secret) become MSAL certificate credentials."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from shared.auth.certificates import PEM_CONTENT_TYPE, PKCS12_CONTENT_TYPE, parse_certificate
from shared.auth.errors import CertificateFormatError


@pytest.fixture(scope="module")
def key_and_cert() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcas-daemon")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> str:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return (cert.public_bytes(serialization.Encoding.PEM) + key_pem).decode()


def test_pem_certificate(key_and_cert) -> None:
    key, cert = key_and_cert
    parsed = parse_certificate(_pem(key, cert), PEM_CONTENT_TYPE, name="mcas-client-cert")
    assert parsed.thumbprint_sha1 == cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - x5t
    assert "BEGIN PRIVATE KEY" in parsed.private_key_pem
    credential = parsed.msal_credential(send_x5c=False)
    assert set(credential) == {"private_key", "thumbprint"}
    assert "public_certificate" in parsed.msal_credential(send_x5c=True)
    assert "PRIVATE" not in repr(parsed)


def test_pkcs12_certificate(key_and_cert) -> None:
    key, cert = key_and_cert
    pfx = pkcs12.serialize_key_and_certificates(b"x", key, cert, None, serialization.NoEncryption())
    parsed = parse_certificate(base64.b64encode(pfx).decode(), PKCS12_CONTENT_TYPE, name="c")
    assert parsed.thumbprint_sha1 == cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - x5t


def test_content_type_missing_is_detected(key_and_cert) -> None:
    key, cert = key_and_cert
    assert parse_certificate(_pem(key, cert), None, name="c").thumbprint_sha256


@pytest.mark.parametrize(
    ("value", "content_type"),
    [("not a certificate", PKCS12_CONTENT_TYPE), ("-----BEGIN CERTIFICATE-----\nxx\n", PEM_CONTENT_TYPE)],
)
def test_garbage_names_the_certificate(value: str, content_type: str) -> None:
    with pytest.raises(CertificateFormatError) as caught:
        parse_certificate(value, content_type, name="my-cert")
    assert "my-cert" in str(caught.value)
    assert value not in str(caught.value)


def test_key_without_matching_certificate(key_and_cert) -> None:
    _key, cert = key_and_cert
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(CertificateFormatError, match="matches"):
        parse_certificate(_pem(other, cert), PEM_CONTENT_TYPE, name="c")
