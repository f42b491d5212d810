"""The SSRF guard on the upload URL the API returns (no network needed: the guard runs before any PUT)."""

from __future__ import annotations

import pytest

from shared.discovery.urlguard import UploadUrlRefused, check_upload_url, redact
from shared.errors import TerminalError

SAS = "?sv=2021-08-06&sr=b&sp=cw&sig=abc"


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        (f"https://acct.blob.core.windows.net/c/f.log{SAS}", "azure"),
        (f"https://acct.blob.core.usgovcloudapi.net/c/f.log{SAS}", "azure"),
        (f"https://acct.blob.core.windows.net:443/c/f.log{SAS}", "azure"),
        ("https://bucket.s3.amazonaws.com/k?X-Amz-Signature=1", "aws"),
        ("https://bucket.s3.us-east-1.amazonaws.com/k?X-Amz-Signature=1", "aws"),
        ("https://s3.eu-west-1.amazonaws.com/bucket/k?X-Amz-Signature=1", "aws"),
        ("https://bucket.s3-fips.us-gov-west-1.amazonaws.com/k?X-Amz-Signature=1", "aws"),
        ("https://s3-us-west-2.amazonaws.com/bucket/k?X-Amz-Signature=1", "aws"),
    ],
)
def test_storage_hosts_are_allowed(url: str, provider: str) -> None:
    assert check_upload_url(url, provider, allow_loopback=False) == url


@pytest.mark.parametrize(
    ("url", "provider", "reason"),
    [
        ("http://acct.blob.core.windows.net/c/f", "azure", "not https"),
        ("https://evil.example.com/c/f", "azure", "not an allowed azure storage host"),
        ("https://blob.core.windows.net.evil.com/c/f", "azure", "not an allowed azure storage host"),
        ("https://.blob.core.windows.net/c/f", "azure", "not an allowed azure storage host"),
        ("https://acct.blob.core.windows.net:8443/c/f", "azure", "port 8443"),
        ("https://user:pw@acct.blob.core.windows.net/c/f", "azure", "user info"),
        ("https://acct.blob.core.windows.net/c/f", "aws", "not an allowed aws storage host"),
        ("https://bucket.s3.amazonaws.com/k", "azure", "not an allowed azure storage host"),
        ("https://x.execute-api.us-east-1.amazonaws.com/k", "aws", "not an allowed aws storage host"),
        ("https://ec2-1-2-3-4.compute-1.amazonaws.com/k", "aws", "not an allowed aws storage host"),
        ("https://169.254.169.254/latest/meta-data", "aws", "not an allowed aws storage host"),
        ("https://127.0.0.1:10000/devstoreaccount1/c/f", "azure", "allowed only when MCAS_ALLOW_LOOPBACK"),
        ("https://localhost/c/f", "azure", "allowed only when MCAS_ALLOW_LOOPBACK"),
        ("https://acct.blob.core.windows.net/c/f", "gcp", "unknown provider"),
        (None, "azure", "without an upload URL"),
        ("https://[::1", "azure", "malformed"),
    ],
)
def test_anything_else_is_refused_as_terminal(url: str | None, provider: str, reason: str) -> None:
    with pytest.raises(UploadUrlRefused, match=reason) as info:
        check_upload_url(url, provider, allow_loopback=False)
    assert isinstance(info.value, TerminalError)


def test_loopback_and_http_only_in_explicit_local_mode() -> None:
    azurite = f"http://127.0.0.1:10000/devstoreaccount1/c/f{SAS}"
    assert check_upload_url(azurite, "azure", allow_loopback=True) == azurite
    assert check_upload_url("https://[::1]:9/blob/x", "aws", allow_loopback=True)
    with pytest.raises(UploadUrlRefused, match="scheme 'ftp'"):
        check_upload_url("ftp://127.0.0.1/x", "azure", allow_loopback=True)
    with pytest.raises(UploadUrlRefused, match="not https"):
        check_upload_url("http://acct.blob.core.windows.net/c/f", "azure", allow_loopback=True)


def test_redact_drops_the_sas() -> None:
    assert (
        redact(f"https://acct.blob.core.windows.net/c/f.log{SAS}")
        == "https://acct.blob.core.windows.net/c/f.log"
    )
