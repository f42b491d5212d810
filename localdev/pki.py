"""Test PKI for the local world: a throwaway CA, a loopback server certificate, and client certificates.

MSAL, azure-identity and Key Vault bearer auth all insist on HTTPS, so the simulator serves TLS with a CA
generated here. Clients trust it through `bundle.pem` (the normal trust store plus the test CA) set as
REQUESTS_CA_BUNDLE, because in `requests` that variable overrides `Session.verify` (https://requests.readthedocs.io/en/latest/user/advanced/#ssl-cert-verification).
Nothing here is ever used outside local development and tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class TestPki:
    """Paths of one generated PKI directory."""

    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path
    bundle_file: Path

    __test__ = False  # not a pytest test class despite the name

    @classmethod
    def at(cls, directory: Path) -> TestPki:
        return cls(
            directory,
            directory / "ca.pem",
            directory / "server.pem",
            directory / "server.key",
            directory / "bundle.pem",
        )

    def exists(self) -> bool:
        return all(p.is_file() for p in (self.ca_file, self.cert_file, self.key_file, self.bundle_file))


@dataclass(frozen=True)
class ClientCertificate:
    """An RSA key pair with a self-signed certificate, as registered on an Entra app for certificate auth."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def private_key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(PEM)

    @property
    def combined_pem(self) -> bytes:
        """Key then certificate, the layout Key Vault returns for a PEM certificate's secret."""
        return self.private_key_pem + self.certificate_pem

    def pkcs12(self, password: bytes | None = None) -> bytes:
        """PFX bytes (unencrypted unless a password is given), as Key Vault stores a PKCS#12 certificate."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(
            b"client", self.private_key, self.certificate, None, encryption
        )

    @property
    def thumbprint_sha1(self) -> str:
        """Upper-case hex SHA-1 thumbprint, as the Azure portal shows it."""
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - x5t is SHA-1 by spec

    @property
    def thumbprint_sha256(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex().upper()

    @property
    def x5t(self) -> str:
        return b64url(self.certificate.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1 by spec

    @property
    def x5t_s256(self) -> str:
        return b64url(self.certificate.fingerprint(hashes.SHA256()))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def self_signed_certificate(key: rsa.RSAPrivateKey, common_name: str, *, days: int = 365) -> x509.Certificate:
    """A self-signed leaf certificate for `key` (client auth, token signing key publication)."""
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def make_client_certificate(common_name: str = "mcas-client", *, days: int = 365) -> ClientCertificate:
    """A fresh RSA-2048 key and self-signed certificate for an app's certificate credential."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ClientCertificate(key, self_signed_certificate(key, common_name, days=days))


def load_client_certificate(pem: bytes) -> ClientCertificate:
    """Parse a key+certificate PEM (the inverse of `ClientCertificate.combined_pem`)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("expected an RSA private key")
    return ClientCertificate(key, x509.load_pem_x509_certificate(pem))


def trust_store_path() -> Path | None:
    """The trust store the bundle starts from: REQUESTS_CA_BUNDLE etc. if the file exists, else certifi."""
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with requests
        return None
    return Path(certifi.where())


def write_test_pki(directory: Path, *, days: int = 30) -> TestPki:
    """Create ca.pem, server.pem/server.key (SANs localhost, 127.0.0.1, ::1) and bundle.pem in `directory`.

    Files are written to temporary names and renamed, so a concurrent reader never sees half a file.
    """
    pki = TestPki.at(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = _now()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    srv_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("mcas-localdev-test-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    srv_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(PEM)
    store = trust_store_path()
    trust = store.read_bytes() if store else b""
    if trust and not trust.endswith(b"\n"):
        trust += b"\n"
    key_pem = srv_key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _atomic_write(pki.key_file, key_pem, mode=0o600)
    _atomic_write(pki.cert_file, srv_cert.public_bytes(PEM))
    _atomic_write(pki.ca_file, ca_pem)
    _atomic_write(pki.bundle_file, trust + ca_pem)
    return pki


def ensure_test_pki(directory: Path) -> TestPki:
    """Reuse the PKI in `directory` if complete (so several simulators share one CA), else create it."""
    pki = TestPki.at(directory)
    return pki if pki.exists() else write_test_pki(directory)


def _atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)
