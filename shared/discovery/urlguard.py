"""SSRF guard for the upload URL the API hands back.

The PUT carries the whole log to whatever URL `upload_url` returned, so the URL is checked before any byte
leaves: https, no user info, the default port, and a host under a storage suffix for the provider (Azure
Blob in the public and US Government clouds, Amazon S3). Loopback (and plain http on loopback, for Azurite)
is allowed only in explicit local development mode (`MCAS_ALLOW_LOOPBACK=true`). Everything else is a
`TerminalError`: retrying would just ask for the same kind of URL again.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from shared.errors import TerminalError
from shared.settings import is_loopback_host

AZURE_BLOB_SUFFIXES = (".blob.core.windows.net", ".blob.core.usgovcloudapi.net")
# S3 endpoints only - not every *.amazonaws.com host (anyone can own an API Gateway or EC2 name there):
# s3.amazonaws.com, <bucket>.s3.amazonaws.com, s3.<region>.amazonaws.com, s3-<region>.amazonaws.com,
# s3-fips.<region>.amazonaws.com, s3.dualstack.<region>.amazonaws.com, <bucket>.s3-accelerate.amazonaws.com.
_S3_HOST = re.compile(
    r"^(?:[a-z0-9][a-z0-9.-]{0,62}\.)?"
    r"s3(?:-fips)?(?:-accelerate)?(?:[.-](?:dualstack\.)?[a-z]{2}(?:-gov)?-[a-z]+-\d)?"
    r"(?:\.dualstack)?\.amazonaws\.com$"
)
PROVIDERS = ("azure", "aws")


class UploadUrlRefused(TerminalError):
    """The API returned an upload URL this app will not send data to."""


def check_upload_url(url: object, provider: object, *, allow_loopback: bool) -> str:
    """Return the URL unchanged if it is safe to PUT to for `provider`; raise `UploadUrlRefused` otherwise."""
    if provider not in PROVIDERS:
        raise UploadUrlRefused(
            f"upload_url answered with unknown provider {provider!r} (expected azure or aws)"
        )
    if not isinstance(url, str) or not url:
        raise UploadUrlRefused("upload_url answered without an upload URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UploadUrlRefused("upload URL is malformed") from None
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise UploadUrlRefused("upload URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UploadUrlRefused(f"upload URL for {host} carries user info; refused")
    if is_loopback_host(host):
        if not allow_loopback:
            raise UploadUrlRefused(
                f"upload host {host} is a loopback address, allowed only when MCAS_ALLOW_LOOPBACK=true"
            )
        if parts.scheme not in ("https", "http"):
            raise UploadUrlRefused(f"upload URL scheme {parts.scheme!r} is not http(s)")
        return url
    if parts.scheme != "https":
        raise UploadUrlRefused(f"upload URL for {host} is not https; refused")
    if port not in (None, 443):
        raise UploadUrlRefused(f"upload URL for {host} uses port {port}; only 443 is allowed")
    if provider == "azure" and host.endswith(AZURE_BLOB_SUFFIXES) and _has_label(host, AZURE_BLOB_SUFFIXES):
        return url
    if provider == "aws" and _S3_HOST.match(host):
        return url
    allowed = (
        ", ".join(f"*{s}" for s in AZURE_BLOB_SUFFIXES) if provider == "azure" else "Amazon S3 endpoints"
    )
    raise UploadUrlRefused(
        f"upload host {host} is not an allowed {provider} storage host ({allowed}); refused"
    )


def _has_label(host: str, suffixes: tuple[str, ...]) -> bool:
    """`.blob.core.windows.net` alone is not an account host: require a non-empty account label."""
    return any(host.endswith(s) and len(host) > len(s) for s in suffixes)


def redact(url: str) -> str:
    """The URL without its query: SAS tokens and presigned signatures are credentials, never logged."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
