"""What gets uploaded: a readable source (blob or local file), sniffed and planned into parts.

Sources are read in ranges and streamed, never held whole in memory. The plan is decided before any byte is
sent, from the size and a few small ranged reads:
- gzip / zip (by magic bytes) pass through unchanged and cannot be split;
- a UTF-8 BOM at the start is skipped (the service refuses it), which is how it is "stripped on the fly";
- text above the per-file limit is cut after the last line break before each limit, so every part is a byte
  range with a known length (the PUT can send Content-Length, which Azure and S3 require).
A part that fails is re-read from its start for the retry, so sources must support ranged reads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from shared.errors import TerminalError, TransientError, ValidationError

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

log = logging.getLogger(__name__)

UTF8_BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
LINE_SCAN_BYTES = 1024 * 1024  # read this much at a time when looking back for a line break
MAX_LINE_BYTES = 16 * 1024 * 1024  # give up looking for a line break after this many bytes
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024

Kind = Literal["text", "gzip", "zip"]


class ByteSource(Protocol):
    """A log to upload: a name, a size, a stable identity and ranged streaming reads."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def identity(self) -> str:
        """Where the bytes come from and which version (no secrets): redeliveries map to the same value."""
        ...

    def open(self, offset: int, length: int) -> Iterator[bytes]:
        """Yield exactly `length` bytes from `offset`, in chunks."""
        ...

    def read(self, offset: int, length: int) -> bytes:
        """A small ranged read (sniffing, line-break search)."""
        ...


class SourceChanged(TransientError):
    """The source returned fewer bytes than planned (it changed or the read broke); retry the job."""


class FileSource:
    """A local file (mcasctl, benchmarks)."""

    def __init__(self, path: str | os.PathLike[str], *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.path = Path(path)
        stat = self.path.stat()
        if not self.path.is_file():
            raise ValidationError(f"{self.path} is not a regular file")
        self.size = stat.st_size
        self.identity = f"file:{self.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        self.chunk_bytes = chunk_bytes

    @property
    def name(self) -> str:
        return self.path.name

    def open(self, offset: int, length: int) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            handle.seek(offset)
            remaining = length
            while remaining > 0:
                chunk = handle.read(min(self.chunk_bytes, remaining))
                if not chunk:
                    raise SourceChanged(
                        f"{self.path.name} is shorter than planned (it changed while uploading)"
                    )
                remaining -= len(chunk)
                yield chunk

    def read(self, offset: int, length: int) -> bytes:
        with self.path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(length)


class BlobSource:
    """A blob in the app's storage account, pinned to the ETag seen when the job started.

    Every ranged read is conditional on that ETag, so a blob overwritten mid-upload fails the job (and its
    retry sees the new version as new content) instead of mixing two versions into one upload.
    """

    def __init__(self, blob: BlobClient, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        from azure.storage.blob import BlobClient

        # Own client so the first GET is one chunk, not the SDK's 32 MiB default (memory stays bounded).
        self._blob = BlobClient.from_blob_url(
            blob.url,
            credential=blob.credential,
            max_single_get_size=chunk_bytes,
            max_chunk_get_size=chunk_bytes,
        )
        props = self._blob.get_blob_properties()
        self.properties = props
        self.metadata: dict[str, str] = dict(props.metadata or {})
        self.etag: str = str(props.etag)
        self.size = int(props.size)
        self.container: str = str(props.container)
        self.blob_name: str = str(props.name)
        self.identity = f"blob:{self._blob.account_name}/{self.container}/{self.blob_name}@{self.etag}"

    @property
    def name(self) -> str:
        return self.blob_name.rsplit("/", 1)[-1]

    def _download(self, offset: int, length: int) -> Any:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        try:
            return self._blob.download_blob(
                offset=offset, length=length, etag=self.etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:
            raise SourceChanged(f"blob {self.blob_name} changed while it was being uploaded") from None
        except ResourceNotFoundError:
            raise TerminalError(
                f"blob {self.container}/{self.blob_name} was deleted before it was uploaded"
            ) from None

    def open(self, offset: int, length: int) -> Iterator[bytes]:
        if length <= 0:
            return
        sent = 0
        for chunk in self._download(offset, length).chunks():
            sent += len(chunk)
            yield chunk
        if sent != length:
            raise SourceChanged(f"blob {self.blob_name} returned {sent} of {length} bytes")

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        data: bytes = self._download(offset, length).readall()
        return data


@dataclass(frozen=True)
class Part:
    """A byte range [start, end) of the source, uploaded on its own. `index` counts from 1."""

    index: int
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class ContentPlan:
    kind: Kind
    bom_bytes: int
    parts: tuple[Part, ...]

    @property
    def upload_bytes(self) -> int:
        return sum(p.length for p in self.parts)


def sniff(head: bytes) -> Kind:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZIP_MAGICS):
        return "zip"
    return "text"


def plan_content(source: ByteSource, max_file_bytes: int) -> ContentPlan:
    """Decide what to send: skip a BOM, pass archives through, split text at line breaks under the limit."""
    size = source.size
    if size <= 0:
        raise ValidationError(f"{source.name} is empty; there is nothing to upload")
    head = source.read(0, min(size, 4))
    kind = sniff(head)
    bom = len(UTF8_BOM) if kind == "text" and head.startswith(UTF8_BOM) else 0
    if bom and size == bom:
        raise ValidationError(f"{source.name} holds only a byte order mark; there is nothing to upload")
    if kind != "text":
        if size > max_file_bytes:
            raise TerminalError(
                f"{source.name} is a {kind} archive of {size} bytes, above the {max_file_bytes}-byte "
                "per-file limit; compressed files cannot be split at line boundaries - upload it "
                "uncompressed or in smaller archives"
            )
        return ContentPlan(kind, 0, (Part(1, 0, size),))
    parts: list[Part] = []
    start = bom
    while size - start > max_file_bytes:
        end = _last_line_end(source, start, start + max_file_bytes)
        parts.append(Part(len(parts) + 1, start, end))
        start = end
    parts.append(Part(len(parts) + 1, start, size))
    if len(parts) > 1:
        log.info("%s: %d bytes split at line boundaries into %d parts", source.name, size, len(parts))
    return ContentPlan("text", bom, tuple(parts))


def _last_line_end(source: ByteSource, start: int, limit: int) -> int:
    """Offset just after the last b"\\n" in [start, limit); the next part starts there."""
    floor = max(start, limit - MAX_LINE_BYTES)
    high = limit
    while high > floor:
        low = max(floor, high - LINE_SCAN_BYTES)
        window = source.read(low, high - low)
        cut = window.rfind(b"\n")
        if cut >= 0:
            return low + cut + 1
        high = low
    raise TerminalError(
        f"{source.name}: no line break in the {limit - floor} bytes before offset {limit}; a text log "
        "above the per-file limit can only be split at line boundaries"
    )
