"""The PUT of one part to the upload URL: Azure single PUT or staged blocks, or an S3 presigned PUT.

- azure, part <= single-PUT limit: one `PUT` with `x-ms-blob-type: BlockBlob` and a Content-Length, the body
  streamed from the source chunk by chunk;
- azure, above: Put Block for each block (bounded parallelism: at most `concurrency` blocks in memory and
  in flight), then Put Block List - the raw REST calls the SDK's `stage_block`/`commit_block_list` make,
  without the SDK's own retries (a failed PUT must lead to a fresh upload URL, not a retry on the same one);
- aws: one streamed `PUT` to the presigned URL with a Content-Length (S3 refuses chunked uploads).
No MDA credential goes to storage: the SAS / presigned URL is the credential, and it is never logged.
Any failure raises `PutFailed` (transient: the caller asks `upload_url` for a fresh URL) or `PutRefused`.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from shared.discovery.urlguard import redact
from shared.errors import TerminalError, TransientError

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

OnBytes = Callable[[int], None]
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 300.0  # storage may take a while to answer after the last byte of a large PUT
AZURE_MAX_BLOCKS = 50_000  # committed blocks per block blob


class PutFailed(TransientError):
    """A PUT (or block) failed; the URL is considered spent and the part is sent again to a fresh one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class PutRefused(TerminalError):
    """Storage refused the content itself (e.g. 413 too large); a fresh URL would be refused the same way."""


@dataclass(frozen=True)
class TransferOptions:
    single_put_bytes: int
    block_bytes: int
    concurrency: int


def new_session(concurrency: int) -> requests.Session:
    """A pooled session without any API credential, for storage PUTs only (one per upload run)."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(2, concurrency + 1), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)  # loopback Azurite only: the URL guard refuses http elsewhere
    return session


def put_part(
    session: requests.Session,
    url: str,
    provider: str,
    chunks: Iterable[bytes],
    *,
    length: int,
    options: TransferOptions,
    on_bytes: OnBytes | None = None,
) -> str:
    """Send `length` bytes from `chunks` to `url`; return the method used ("single" or "blocks")."""
    if provider == "aws":
        _single_put(session, url, chunks, length=length, headers={}, on_bytes=on_bytes)
        return "single"
    if length <= options.single_put_bytes:
        _single_put(
            session, url, chunks, length=length, headers={"x-ms-blob-type": "BlockBlob"}, on_bytes=on_bytes
        )
        return "single"
    _staged_blocks(
        session,
        url,
        chunks,
        block_bytes=block_size(length, options.block_bytes),
        options=options,
        on_bytes=on_bytes,
    )
    return "blocks"


def _counted(chunks: Iterable[bytes], on_bytes: OnBytes | None) -> Iterator[bytes]:
    for chunk in chunks:
        if chunk:
            yield chunk
            if on_bytes is not None:
                on_bytes(len(chunk))


def _single_put(
    session: requests.Session,
    url: str,
    chunks: Iterable[bytes],
    *,
    length: int,
    headers: dict[str, str],
    on_bytes: OnBytes | None,
) -> None:
    import requests

    prepared = session.prepare_request(
        requests.Request("PUT", url, data=_counted(chunks, on_bytes), headers=headers)
    )
    # A generator body would go out chunked; storage wants the length up front, and we know it.
    prepared.headers.pop("Transfer-Encoding", None)
    prepared.headers["Content-Length"] = str(length)
    environment = session.merge_environment_settings(prepared.url, {}, None, None, None)
    response = _send(
        session,
        url,
        lambda: session.send(
            prepared, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), allow_redirects=False, **environment
        ),
    )
    _check(response, url, "PUT")


def _send(session: requests.Session, url: str, call: Callable[[], Any]) -> Any:
    import requests

    try:
        return call()
    except requests.RequestException as exc:
        raise PutFailed(f"PUT to {redact(url)} failed: {type(exc).__name__}") from None


def _check(response: Any, url: str, what: str) -> None:
    status = int(response.status_code)
    if status in (200, 201):
        return
    code = response.headers.get("x-ms-error-code") or ""
    detail = f"{what} to {redact(url)} answered HTTP {status}" + (f" {code}" if code else "")
    if status == 413:
        raise PutRefused(detail + ": the storage refused the size; lower MCAS_DISCOVERY_SINGLE_PUT_BYTES")
    raise PutFailed(detail, status=status)


def block_size(length: int, preferred: int) -> int:
    """The preferred block size, grown if needed so a blob of `length` bytes fits in 50,000 blocks."""
    return max(preferred, -(-length // AZURE_MAX_BLOCKS))


def block_id(index: int) -> str:
    """Block ids must all have the same length within a blob: base64 of a zero-padded counter."""
    return base64.b64encode(f"block-{index:08d}".encode("ascii")).decode("ascii")


def _with_query(url: str, extra: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{extra}"


def rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Blocks of exactly `size` bytes (the last may be shorter); passes through chunks that already fit."""
    buffer = bytearray()
    for chunk in chunks:
        if not buffer and len(chunk) == size:
            yield chunk
            continue
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _staged_blocks(
    session: requests.Session,
    url: str,
    chunks: Iterable[bytes],
    *,
    block_bytes: int,
    options: TransferOptions,
    on_bytes: OnBytes | None,
) -> None:
    def stage(index: int, data: bytes) -> int:
        target = _with_query(url, f"comp=block&blockid={quote(block_id(index), safe='')}")
        response = _send(
            session,
            url,
            lambda: session.put(
                target, data=data, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), allow_redirects=False
            ),
        )
        _check(response, url, f"Put Block {index}")
        if on_bytes is not None:
            on_bytes(len(data))
        return index

    ids: list[str] = []
    with ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="discovery-block") as pool:
        pending: set[Future[int]] = set()
        try:
            for index, data in enumerate(rechunk(chunks, block_bytes)):
                while len(pending) >= options.concurrency:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
                ids.append(block_id(index))
                pending.add(pool.submit(stage, index, data))
                del data
            for future in pending:
                future.result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    body = "".join(f"<Latest>{escape(i)}</Latest>" for i in ids)
    xml = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{body}</BlockList>'.encode()
    response = _send(
        session,
        url,
        lambda: session.put(
            _with_query(url, "comp=blocklist"),
            data=xml,
            headers={"Content-Type": "application/xml"},
            timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            allow_redirects=False,
        ),
    )
    _check(response, url, "Put Block List")
    log.debug("committed %d blocks to %s", len(ids), redact(url))
