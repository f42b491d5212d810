"""Upload targets handed out by the simulated Cloud Discovery `upload_url`: self-served Azure blob and S3.

Why self-served: tests and the demo must exercise both upload providers
(https://learn.microsoft.com/defender-cloud-apps/api-discovery-initiate) without cloud
storage. The blob endpoint behaves like Azure Put Blob / Put Block / Put Block List with a SAS:
`x-ms-blob-type: BlockBlob` required, 201, 413 `RequestBodyTooLarge` for one Put Blob above
`single_put_limit` (blocks may be larger, as on Azure), no blob above `max_file_size`, `Content-Length`
required. The S3 endpoint behaves like a presigned PUT: 200, 403 `SignatureDoesNotMatch` XML, 411 without
`Content-Length`. Bodies are streamed to temp files and hashed on the way, never held whole in memory.
Put Block List accepts `Latest` / `Uncommitted` ids of staged blocks; re-committing `Committed` blocks is
not simulated. Rejected bodies are drained (up to 512 MiB) so clients read the error instead of a reset.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
import secrets
import tempfile
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from localdev.simulator.mda_common import bad_request
from localdev.simulator.wire import SimRequest, SimResponse

MIB = 1024 * 1024
SINGLE_PUT_LIMIT = 64 * MIB
MAX_FILE_SIZE = 5 * 1024 * MIB
CHUNK = MIB
MAX_BLOCK_SIZE = 4000 * MIB  # Azure's Put Block limit; the 64 MiB rule is for a single Put Blob only
DRAIN_LIMIT = 512 * MIB  # rejected bodies up to this size are read and discarded
SAS_LIFETIME_S = 3600
AZURE_STORAGE_VERSION = "2021-08-06"  # x-ms-version answered by the self-served blob
# Self-served blob URLs are /blob/<container>/<upload id>: for an IP host the Azure SDK reads URLs path-style
# (account / container / blob), so `BlobClient.from_blob_url()` round-trips them unchanged.
BLOB_CONTAINER = "uploads"


class BodyReader(Protocol):
    """What the server hands over for streamed uploads: a file-like limited to the request body."""

    def read(self, size: int = -1, /) -> bytes: ...


# -- temp-file object storage --------------------------------------------------------------------------------


class TooLarge(Exception):
    """A body exceeded the limit while streaming."""


@dataclass
class StoredObject:
    path: Path
    size: int
    sha256: str
    md5: bytes
    head: bytes  # first bytes, for the BOM check
    modified: float


class ObjectStore:
    """Blobs and staged blocks as temp files; bodies are copied in 1 MiB chunks and hashed as they stream."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="mda-sim-uploads-")
        self.root = Path(self._dir.name)

    def _new_path(self) -> Path:
        return self.root / uuid.uuid4().hex

    def write(self, body: BodyReader, length: int, limit: int, now: float) -> StoredObject:
        """Store exactly `length` bytes from `body`; refuse (and delete) anything beyond `limit`."""
        if length > limit:
            raise TooLarge
        return self._copy([body], length, now)

    def concat(self, parts: list[StoredObject], limit: int, now: float) -> StoredObject:
        total = sum(p.size for p in parts)
        if total > limit:
            raise TooLarge
        files = [p.path.open("rb") for p in parts]
        try:
            return self._copy(files, total, now)
        finally:
            for f in files:
                f.close()

    def _copy(self, sources: list[Any], length: int, now: float) -> StoredObject:
        path = self._new_path()
        sha, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324 - Content-MD5/ETag, not security
        head = b""
        written = 0
        with path.open("wb") as out:
            for src in sources:
                while written < length:
                    chunk = src.read(min(CHUNK, length - written))
                    if not chunk:
                        break
                    out.write(chunk)
                    sha.update(chunk)
                    md5.update(chunk)
                    if len(head) < 8:
                        head = (head + chunk)[:8]
                    written += len(chunk)
        if written != length:
            path.unlink(missing_ok=True)
            raise bad_request("request body shorter than Content-Length")
        return StoredObject(path, written, sha.hexdigest(), md5.digest(), head, now)

    @staticmethod
    def discard(obj: StoredObject | None) -> None:
        if obj is not None:
            obj.path.unlink(missing_ok=True)

    def cleanup(self) -> None:
        self._dir.cleanup()


# -- state ---------------------------------------------------------------------------------------------------


@dataclass
class DiscoveryConfig:
    provider: str = "azure"
    azurite_blob_endpoint: str | None = None
    single_put_limit: int = SINGLE_PUT_LIMIT
    max_file_size: int = MAX_FILE_SIZE

    def public(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "azurite_blob_endpoint": self.azurite_blob_endpoint,
            "single_put_limit": self.single_put_limit,
            "max_file_size": self.max_file_size,
        }


@dataclass
class Upload:
    upload_id: str
    url: str
    provider: str  # "azure" | "aws"
    backend: str  # "simulator" | "azurite"
    filename: str
    source: str
    expires: float
    key: str = ""  # s3 object key
    blob: StoredObject | None = None
    blocks: dict[str, StoredObject] = field(default_factory=dict)
    finalized: bool = False


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _azure_error(status: int, code: str, message: str, extra: dict[str, str] | None = None) -> SimResponse:
    request_id = str(uuid.uuid4())
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}\n'
        f"RequestId:{request_id}\nTime:{now}</Message></Error>"
    )
    headers = {
        "Content-Type": "application/xml",
        "x-ms-error-code": code,
        "x-ms-request-id": request_id,
        "x-ms-version": AZURE_STORAGE_VERSION,
        **(extra or {}),
    }
    return SimResponse(status, body.encode(), headers)


def _s3_error(status: int, code: str, message: str, resource: str) -> SimResponse:
    request_id = secrets.token_hex(8).upper()
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"<Resource>{resource}</Resource><RequestId>{request_id}</RequestId></Error>"
    )
    return SimResponse(
        status, body.encode(), {"Content-Type": "application/xml", "x-amz-request-id": request_id}
    )


def _content_length(req: SimRequest) -> int | None:
    raw = req.header("content-length")
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


class UploadTargets:
    """Issued uploads and the self-served blob / S3 endpoints on the tenant port; thread-safe."""

    def __init__(self, *, api_url: str, bucket: str, clock: Callable[[], float]) -> None:
        self.api_url = api_url.rstrip("/")
        self.bucket = bucket
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self.lock = threading.RLock()  # shared with DiscoveryService: one lock per tenant's discovery state
        self.config = DiscoveryConfig()
        self.store = ObjectStore()
        self.uploads: dict[str, Upload] = {}

    def _sign(self, *parts: str) -> bytes:
        return hmac.new(self._key, "\n".join(parts).encode(), hashlib.sha256).digest()

    def blob_url(self, upload_id: str, expires: float) -> str:
        se = dt.datetime.fromtimestamp(expires, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        sig = base64.b64encode(self._sign("blob", upload_id, se)).decode()
        return (
            f"{self.api_url}/blob/{BLOB_CONTAINER}/{upload_id}"
            f"?sv={AZURE_STORAGE_VERSION}&sr=b&sp=cwr&se={quote(se, safe='')}"
            f"&sig={quote(sig, safe='')}"
        )

    def s3_url(self, key: str, expires: float) -> str:
        issued = dt.datetime.fromtimestamp(expires - SAS_LIFETIME_S, dt.UTC)
        amz_date = issued.strftime("%Y%m%dT%H%M%SZ")
        credential = f"AKIASIMULATOR0000000/{issued:%Y%m%d}/us-east-1/s3/aws4_request"
        signature = self._sign("s3", self.bucket, key, amz_date, str(SAS_LIFETIME_S)).hex()
        return (
            f"{self.api_url}/s3/{self.bucket}/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={quote(credential, safe='')}&X-Amz-Date={amz_date}"
            f"&X-Amz-Expires={SAS_LIFETIME_S}&X-Amz-SignedHeaders=host&X-Amz-Signature={signature}"
        )

    @staticmethod
    def storage_kind(path: str) -> str | None:
        """ "blob" / "s3" for the upload-target paths served on the tenant port, else None."""
        if path.startswith("/blob/"):
            return "blob"
        if path.startswith("/s3/"):
            return "s3"
        return None

    def handle(self, req: SimRequest, body: BodyReader) -> SimResponse:
        if req.path.startswith("/blob/"):
            response = self._handle_blob(req, body)
        else:
            response = self._handle_s3(req, body)
        if response.status >= 400:
            # Read what the client is still sending so it gets this answer instead of a reset mid-upload
            # (a 70 MiB single PUT must see 413, not a broken pipe); huge bodies are left to the server.
            drained = 0
            while drained < DRAIN_LIMIT:
                chunk = body.read(CHUNK)
                if not chunk:
                    break
                drained += len(chunk)
        return response

    def _blob_auth(self, req: SimRequest) -> tuple[Upload | None, SimResponse | None]:
        upload_id = req.path.rstrip("/").rsplit("/", 1)[-1]
        se = req.arg("se") or ""
        sig = req.arg("sig") or ""
        upload = self.uploads.get(upload_id)
        try:
            given = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            given = b""
        if (
            upload is None
            or upload.backend != "simulator"
            or upload.provider != "azure"
            or not hmac.compare_digest(given, self._sign("blob", upload_id, se))
        ):
            return None, _azure_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. "
                "Make sure the value of Authorization header is formed correctly including "
                "the signature.",
            )
        if self._clock() > upload.expires:
            return None, _azure_error(
                403,
                "AuthenticationFailed",
                "Signed expiry time has to be after signed start time; the SAS has expired.",
            )
        return upload, None

    def _handle_blob(self, req: SimRequest, body: BodyReader) -> SimResponse:
        with self.lock:
            upload, error = self._blob_auth(req)
        if error is not None:
            return error
        assert upload is not None
        comp = req.arg("comp")
        method = req.method.upper()
        if method == "PUT" and comp is None:
            return self._put_blob(req, upload, body)
        if method == "PUT" and comp == "block":
            return self._put_block(req, upload, body)
        if method == "PUT" and comp == "blocklist":
            return self._put_block_list(req, upload, body)
        if method in ("GET", "HEAD") and comp == "blocklist":
            return self._get_block_list(upload)
        if method in ("GET", "HEAD") and comp is None:
            return self._get_blob(req, upload, head_only=method == "HEAD")
        return _azure_error(
            405 if comp is None else 400,
            "UnsupportedHttpVerb" if comp is None else "InvalidQueryParameterValue",
            "The resource doesn't support the specified HTTP verb or query parameter.",
        )

    def _length_or_error(self, req: SimRequest) -> tuple[int, SimResponse | None]:
        length = _content_length(req)
        if length is None:
            return 0, _azure_error(
                411,
                "MissingContentLengthHeader",
                "Content-Length HTTP header is missing (chunked transfer encoding is not supported).",
            )
        if length > self.config.single_put_limit:
            return length, _azure_error(
                413,
                "RequestBodyTooLarge",
                "The request body is too large and exceeds the maximum permissible limit.",
            )
        return length, None

    def _created(self, obj: StoredObject | None, *, md5: bytes | None = None) -> SimResponse:
        headers = {
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-version": AZURE_STORAGE_VERSION,
            "x-ms-request-server-encrypted": "true",
            "Date": _http_date(self._clock()),
        }
        if obj is not None:
            headers["ETag"] = f'"0x{obj.sha256[:16].upper()}"'
            headers["Last-Modified"] = _http_date(obj.modified)
        if md5 is not None:
            headers["Content-MD5"] = base64.b64encode(md5).decode()
        return SimResponse(201, b"", headers)

    def _put_blob(self, req: SimRequest, upload: Upload, body: BodyReader) -> SimResponse:
        blob_type = req.header("x-ms-blob-type")
        if not blob_type:
            return _azure_error(
                400,
                "MissingRequiredHeader",
                "An HTTP header that's mandatory for this request is not specified.",
            )
        if blob_type != "BlockBlob":
            return _azure_error(
                400,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the "
                "correct format (the simulator supports x-ms-blob-type: BlockBlob only).",
            )
        length, error = self._length_or_error(req)
        if error is not None:
            return error
        try:
            obj = self.store.write(body, length, self.config.single_put_limit, self._clock())
        except TooLarge:
            return _azure_error(
                413,
                "RequestBodyTooLarge",
                "The request body is too large and exceeds the maximum permissible limit.",
            )
        with self.lock:
            self.store.discard(upload.blob)
            for block in upload.blocks.values():
                self.store.discard(block)
            upload.blocks.clear()
            upload.blob = obj
        return self._created(obj, md5=obj.md5)

    def _put_block(self, req: SimRequest, upload: Upload, body: BodyReader) -> SimResponse:
        block_id = req.arg("blockid") or ""
        try:
            raw = base64.b64decode(block_id, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        with self.lock:
            same_length = all(len(k) == len(block_id) for k in upload.blocks)
        if not raw or len(raw) > 64 or not same_length:
            return _azure_error(
                400,
                "InvalidQueryParameterValue",
                "Value for one of the query parameters "
                "specified in the request URI is invalid (blockid: base64, at most 64 bytes, "
                "all ids of a blob the same length).",
            )
        length = _content_length(req)
        if length is None:
            return _azure_error(411, "MissingContentLengthHeader", "Content-Length HTTP header is missing.")
        with self.lock:
            staged = sum(b.size for k, b in upload.blocks.items() if k != block_id)
        if length > MAX_BLOCK_SIZE or staged + length > self.config.max_file_size:
            return _azure_error(
                413, "RequestBodyTooLarge", "The block or the blob would exceed the size limit."
            )
        try:
            obj = self.store.write(body, length, MAX_BLOCK_SIZE, self._clock())
        except TooLarge:  # pragma: no cover - the length was checked above
            return _azure_error(413, "RequestBodyTooLarge", "The block exceeds the maximum block size.")
        with self.lock:
            self.store.discard(upload.blocks.get(block_id))
            upload.blocks[block_id] = obj
        return self._created(None, md5=obj.md5)

    def _put_block_list(self, req: SimRequest, upload: Upload, body: BodyReader) -> SimResponse:
        length = _content_length(req)
        if length is None or length > 4 * MIB:
            return _azure_error(400, "InvalidXmlDocument", "XML specified is not syntactically valid.")
        text = body.read(length)
        try:
            # Loopback-only test double; expat does not resolve external entities.
            root = ET.fromstring(text)  # noqa: S314
        except ET.ParseError:
            return _azure_error(400, "InvalidXmlDocument", "XML specified is not syntactically valid.")
        if root.tag != "BlockList":
            return _azure_error(400, "InvalidXmlDocument", "XML specified is not syntactically valid.")
        with self.lock:
            parts: list[StoredObject] = []
            for element in root:
                block = upload.blocks.get((element.text or "").strip())
                if element.tag not in ("Latest", "Uncommitted") or block is None:
                    return _azure_error(400, "InvalidBlockList", "The specified block list is invalid.")
                parts.append(block)
            try:
                obj = self.store.concat(parts, self.config.max_file_size, self._clock())
            except TooLarge:
                return _azure_error(
                    413, "RequestBodyTooLarge", "The blob would exceed the maximum file size."
                )
            self.store.discard(upload.blob)
            for block in upload.blocks.values():
                self.store.discard(block)
            upload.blocks.clear()
            upload.blob = obj
        return self._created(obj)

    def _get_block_list(self, upload: Upload) -> SimResponse:
        with self.lock:
            staged = "".join(
                f"<Block><Name>{k}</Name><Size>{b.size}</Size></Block>" for k, b in upload.blocks.items()
            )
        xml = (
            f'<?xml version="1.0" encoding="utf-8"?><BlockList><CommittedBlocks/>'
            f"<UncommittedBlocks>{staged}</UncommittedBlocks></BlockList>"
        )
        return SimResponse(
            200, xml.encode(), {"Content-Type": "application/xml", "x-ms-version": AZURE_STORAGE_VERSION}
        )

    def _get_blob(self, req: SimRequest, upload: Upload, *, head_only: bool) -> SimResponse:
        obj = upload.blob
        if obj is None:
            return _azure_error(404, "BlobNotFound", "The specified blob does not exist.")
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"0x{obj.sha256[:16].upper()}"',
            "Last-Modified": _http_date(obj.modified),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-version": AZURE_STORAGE_VERSION,
            "Accept-Ranges": "bytes",
            "x-ms-request-id": str(uuid.uuid4()),
        }
        start, end, status = 0, obj.size - 1, 200
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", req.header("x-ms-range") or req.header("range"))
        if match and obj.size:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else obj.size - 1, obj.size - 1)
            if start > end:
                return _azure_error(
                    416,
                    "InvalidRange",
                    "The range specified is invalid for the current size of the resource.",
                )
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{obj.size}"
        if head_only:
            headers["Content-Length"] = str(obj.size)
            return SimResponse(200, b"", headers)
        with obj.path.open("rb") as f:
            f.seek(start)
            data = f.read(end - start + 1) if obj.size else b""
        return SimResponse(status, data, headers)

    def _handle_s3(self, req: SimRequest, body: BodyReader) -> SimResponse:
        rest = req.path[len("/s3/") :]
        bucket, _, key = rest.partition("/")
        resource = f"/{bucket}/{key}"
        upload_id = key.split("/", 1)[0]
        with self.lock:
            upload = self.uploads.get(upload_id)
        amz_date = req.arg("X-Amz-Date") or ""
        expires = req.arg("X-Amz-Expires") or ""
        expected = self._sign("s3", bucket, key, amz_date, expires).hex()
        if (
            upload is None
            or upload.provider != "aws"
            or upload.key != key
            or not hmac.compare_digest(expected, req.arg("X-Amz-Signature") or "")
        ):
            return _s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match "
                "the signature you provided. Check your key and signing method.",
                resource,
            )
        if self._clock() > upload.expires:
            return _s3_error(403, "AccessDenied", "Request has expired", resource)
        method = req.method.upper()
        if method == "PUT":
            length = _content_length(req)
            if length is None:
                return _s3_error(
                    411, "MissingContentLength", "You must provide the Content-Length HTTP header.", resource
                )
            try:
                obj = self.store.write(body, length, self.config.max_file_size, self._clock())
            except TooLarge:
                return _s3_error(
                    400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", resource
                )
            with self.lock:
                self.store.discard(upload.blob)
                upload.blob = obj
            return SimResponse(
                200, b"", {"ETag": f'"{obj.md5.hex()}"', "x-amz-request-id": secrets.token_hex(8)}
            )
        if method in ("GET", "HEAD"):
            stored = upload.blob
            if stored is None:
                return _s3_error(404, "NoSuchKey", "The specified key does not exist.", resource)
            data = b"" if method == "HEAD" else stored.path.read_bytes()
            return SimResponse(
                200,
                data,
                {
                    "Content-Type": "application/octet-stream",
                    "ETag": f'"{stored.md5.hex()}"',
                    "Content-Length": str(stored.size),
                },
            )
        return _s3_error(
            405, "MethodNotAllowed", "The specified method is not allowed against this resource.", resource
        )
