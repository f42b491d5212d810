"""One log file end to end: plan -> for each part: upload_url -> guard -> streamed PUT -> done_upload.

Policies that matter here:
- a failed PUT is never retried on the same URL: the part is re-read from its start and sent to a fresh URL
  from a new `upload_url` call (up to `put_attempts`), with backoff inside the time budget;
- the SHA-256 of every part (and of the whole upload) is computed while the bytes stream past; a part whose
  bytes were already finalized for this tenant, source and data source is not finalized twice, and a job whose
  origin (blob + ETag) is recorded as uploaded is acknowledged without reading anything;
- `done_upload` gets the exact URL `upload_url` returned. It is not idempotent: a 429 is retried by the
  client; an ambiguous failure (5xx, dropped connection) is retried with the SAME URL - the blob behind it is
  the same, so a repeat cannot add data twice, whereas a fresh upload could;
- transient failures that outlast the budget propagate (the queue redelivers the job), terminal ones carry a
  reason for the dead-letter store;
- before any byte is sent, the data source is looked up in the tenant's streams (listed once per uploader):
  an unknown one is refused at once instead of after the whole file went out;
- a snapshot split into several parts gives each part its own report, `<name>-part<i>of<n>` (one report
  per `done_upload`; the same name for every part would make them collide);
- a text log whose newest dated event is more than 90 days old is uploaded with a warning (in the result and
  the log): Cloud Discovery does not process such events.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from shared.backoff import Backoff
from shared.discovery.api import DataSourceLister, DiscoveryApi, UnknownDataSource
from shared.discovery.config import DiscoveryConfig
from shared.discovery.content import ByteSource, Part, plan_content
from shared.discovery.ledger import (
    FAILED,
    IN_PROGRESS,
    UPLOADED,
    Ledger,
    OriginRecord,
    Target,
    UploadRecord,
    new_claim,
    origin_key,
    utc_now,
)
from shared.discovery.transfer import PutFailed, TransferOptions, new_session, put_part
from shared.discovery.urlguard import check_upload_url, redact
from shared.errors import McasError, TerminalError, TransientError
from shared.mda.errors import ApiUnavailableError, BadRequestError, ServerError
from shared.telemetry import metrics

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (bytes sent so far, bytes to send)
BACKOFF_CAP_S = 30.0
DONE_UPLOAD_ATTEMPTS = 3
# An API call right after a long transfer still gets this long, even past the retry budget: finalizing an
# upload that is already in storage is worth more than the budget's slack (functionTimeout > budget).
MIN_CALL_S = 30.0


@dataclass(frozen=True)
class UploadRequest:
    source: ByteSource
    source_type: str  # validated id (shared.discovery.sources)
    stream: str  # data source name (inputStreamName)
    snapshot: bool = False
    tenant: str = "default"


@dataclass(frozen=True)
class PartOutcome:
    index: int
    size: int
    sha256: str
    outcome: str  # "uploaded" | "duplicate" (already finalized) | "resumed" (done by an earlier delivery)
    method: str  # "single" | "blocks" | ""
    attempts: int
    put_seconds: float = 0.0  # the successful PUT (or blocks + commit) alone
    name: str = ""  # the file name sent to upload_url
    report: str = ""  # the data source (or snapshot report) name sent to done_upload


@dataclass
class UploadResult:
    file: str
    outcome: str  # "uploaded" | "already_uploaded" | "duplicate"
    size: int
    sha256: str
    kind: str  # "text" | "gzip" | "zip" ("" when nothing was read)
    started: str
    ended: str
    seconds: float
    parts: list[PartOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Uploader:
    def __init__(
        self,
        api: DiscoveryApi,
        config: DiscoveryConfig,
        ledger: Ledger,
        *,
        allow_loopback: bool,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        session_factory: Callable[[int], requests.Session] = new_session,
    ) -> None:
        self._api = api
        self._config = config
        self._ledger = ledger
        self._allow_loopback = allow_loopback
        self._sleep = sleep
        self._rng = rng
        self._session_factory = session_factory
        self._options = TransferOptions(config.single_put_bytes, config.block_bytes, config.concurrency)
        self._data_sources: frozenset[str] | None = None  # listed once per uploader (one job or CLI run)
        self._data_sources_checked = False

    def upload(
        self, request: UploadRequest, *, deadline: float | None = None, progress: Progress | None = None
    ) -> UploadResult:
        """Upload one file (all its parts); see the module docstring for the policies."""
        began = time.monotonic()
        started = utc_now()
        if deadline is None:
            deadline = self._api.clock() + self._config.time_budget_s
        source = request.source
        target = Target(request.tenant, request.source_type, request.stream)
        key = origin_key(source.identity, target)
        known = self._ledger.get_origin(key)
        if known is not None and known.outcome == UPLOADED:  # a redelivery: not even the head is read
            log.info(
                "%s was already uploaded to %s/%s; nothing to do", source.name, target.source, target.stream
            )
            return UploadResult(
                source.name,
                "already_uploaded",
                known.size,
                known.sha256,
                "",
                started,
                utc_now(),
                time.monotonic() - began,
            )
        if not request.snapshot:
            self._check_data_source(request.stream, deadline)
        plan = plan_content(source, self._config.max_file_bytes)
        warnings = [w for w in (_staleness(source, plan),) if w]
        for warning in warnings:
            log.warning("%s", warning)
        origin = OriginRecord(
            identity=source.identity,
            file=source.name,
            source=target.source,
            stream=target.stream,
            tenant=target.tenant,
            snapshot=request.snapshot,
            outcome=IN_PROGRESS,
            claim=new_claim(),
            claimed_at=time.time(),
            size=plan.upload_bytes,
            parts=len(plan.parts),
            start=started,
            plan_bytes=self._config.max_file_bytes,
            part_hashes=_resumable(known, len(plan.parts), self._config.max_file_bytes),
        )
        self._ledger.claim_origin(key, origin, lease_s=self._config.time_budget_s + 60)
        meter = _Meter(plan.upload_bytes, progress)
        whole = hashlib.sha256()
        outcomes: list[PartOutcome] = []
        session = self._session_factory(self._config.concurrency)
        try:
            for part in plan.parts:
                done = origin.part_hashes[part.index - 1]
                if done:
                    # Finalized by an earlier delivery (same blob version, same plan): only hash it.
                    whole = _hash_only(source, part, whole, meter)
                    name = part_name(source.name, part.index, len(plan.parts))
                    outcomes.append(PartOutcome(part.index, part.length, done, "resumed", "", 0, name=name))
                    continue
                outcome, whole = self._part(
                    session,
                    request,
                    target=target,
                    part=part,
                    count=len(plan.parts),
                    whole=whole,
                    meter=meter,
                    deadline=deadline,
                )
                outcomes.append(outcome)
                origin.part_hashes[part.index - 1] = outcome.sha256
                if len(plan.parts) > 1:
                    self._ledger.finish_origin(key, origin)  # progress survives a redelivery
        except BaseException as exc:
            self._finish_quietly(key, replace(origin, outcome=FAILED, end=utc_now(), error=_reason(exc)))
            raise
        finally:
            session.close()
        sha = outcomes[0].sha256 if len(outcomes) == 1 else whole.hexdigest()
        overall = "duplicate" if all(o.outcome == "duplicate" for o in outcomes) else "uploaded"
        ended = utc_now()
        self._ledger.finish_origin(key, replace(origin, outcome=UPLOADED, sha256=sha, end=ended, error=""))
        return UploadResult(
            source.name,
            overall,
            plan.upload_bytes,
            sha,
            plan.kind,
            started,
            ended,
            time.monotonic() - began,
            outcomes,
            warnings,
        )

    # -- one part ------------------------------------------------------------------------------------------

    def _part(
        self,
        session: requests.Session,
        request: UploadRequest,
        *,
        target: Target,
        part: Part,
        count: int,
        whole: Any,
        meter: _Meter,
        deadline: float,
    ) -> tuple[PartOutcome, Any]:
        source = request.source
        name = part_name(source.name, part.index, count)
        report = report_name(request.stream, part.index, count, snapshot=request.snapshot)
        started = utc_now()
        attempts = 0
        while True:
            attempts += 1
            upload = self._api.upload_url(name, target.source, deadline=self._call_deadline(deadline))
            url = check_upload_url(upload.url, upload.provider, allow_loopback=self._allow_loopback)
            part_hash = hashlib.sha256()
            whole_after = whole.copy()  # restored from `whole` if this attempt fails
            hashers = (part_hash,) if count == 1 else (part_hash, whole_after)  # one file, one hash
            began = time.monotonic()
            try:
                method = put_part(
                    session,
                    url,
                    upload.provider,
                    _hashed(source.open(part.start, part.length), *hashers),
                    length=part.length,
                    options=self._options,
                    on_bytes=meter.add,
                )
            except PutFailed as exc:
                meter.rewind()
                if attempts >= self._config.put_attempts:
                    raise TransientError(f"{name}: the PUT failed {attempts} times; last: {exc}") from None
                wait = self._backoff(attempts)
                log.warning(
                    "%s: %s; asking for a fresh upload URL (attempt %d) in %.2f s",
                    name,
                    exc,
                    attempts + 1,
                    wait,
                )
                self._wait(wait, deadline, exc)
                continue
            put_seconds = time.monotonic() - began
            meter.commit()
            sha = part_hash.hexdigest()
            log.info(
                "%s: %d bytes sent to %s (%s, %s) in %.2f s, sha256 %s",
                name,
                part.length,
                redact(url),
                upload.provider,
                method,
                put_seconds,
                sha[:12],
            )
            record = UploadRecord(
                file=name,
                size=part.length,
                sha256=sha,
                source=target.source,
                stream=target.stream,
                snapshot=request.snapshot,
                tenant=target.tenant,
                start=started,
                end="",
                outcome=UPLOADED,
                part=part.index,
                parts=count,
                origin=source.identity,
                upload_host=redact(url),
                attempts=attempts,
            )
            prior = self._ledger.get_content(sha, target)
            if prior is not None and prior.outcome == UPLOADED:
                log.info(
                    "%s: identical content was already finalized for %s/%s; not finalizing again",
                    name,
                    target.source,
                    target.stream,
                )
                outcome = PartOutcome(
                    part.index, part.length, sha, "duplicate", method, attempts, put_seconds, name, report
                )
                return outcome, whole_after
            try:
                self._done(upload.url, request, deadline, report)
            except TerminalError as exc:
                self._ledger.put_content(replace(record, end=utc_now(), outcome=FAILED, error=_reason(exc)))
                raise
            self._ledger.put_content(replace(record, end=utc_now()))
            metrics.add("upload_bytes", part.length, tenant=target.tenant)
            return PartOutcome(
                part.index, part.length, sha, "uploaded", method, attempts, put_seconds, name, report
            ), whole_after

    def _done(self, url: str, request: UploadRequest, deadline: float, report: str) -> None:
        ambiguous: McasError | None = None
        for attempt in range(1, DONE_UPLOAD_ATTEMPTS + 1):
            try:
                self._api.done_upload(url, report, request.snapshot, deadline=self._call_deadline(deadline))
                return
            except (ServerError, ApiUnavailableError) as exc:
                ambiguous = exc
                if attempt == DONE_UPLOAD_ATTEMPTS:
                    raise
                wait = self._backoff(attempt)
                log.warning(
                    "done_upload failed ambiguously (%s); retrying with the same upload URL in %.2f s",
                    exc,
                    wait,
                )
                self._wait(wait, deadline, exc)
            except BadRequestError as exc:
                if ambiguous is None:
                    raise
                raise TerminalError(
                    f"done_upload outcome unknown: an attempt failed ambiguously ({ambiguous}) and the "
                    f"retry was refused ({exc}); check the Governance log before replaying"
                ) from exc

    def _check_data_source(self, stream: str, deadline: float) -> None:
        """Refuse an unknown data source before any byte is sent (listed once; listing trouble only warns:
        `done_upload` still checks)."""
        if not isinstance(self._api, DataSourceLister):
            return
        if not self._data_sources_checked:
            self._data_sources_checked = True
            try:
                self._data_sources = self._api.data_sources(deadline=self._call_deadline(deadline))
            except McasError as exc:
                log.warning(
                    "could not list the tenant's data sources (%s); done_upload will check %r", exc, stream
                )
        if self._data_sources is not None and stream not in self._data_sources:
            known = ", ".join(sorted(self._data_sources)) or "none"
            raise UnknownDataSource(
                f"unknown data source {stream!r} (the tenant has: {known}); nothing was sent. Create it in "
                "the portal (Settings > Cloud Apps > Cloud Discovery > Automatic log upload > Data sources) "
                "or upload as a snapshot"
            )

    # -- helpers -------------------------------------------------------------------------------------------

    def _call_deadline(self, deadline: float) -> float:
        return max(deadline, self._api.clock() + min(MIN_CALL_S, self._config.time_budget_s))

    def _backoff(self, attempt: int) -> float:
        return Backoff(self._config.retry_base_s, BACKOFF_CAP_S, "equal", self._rng).delay(attempt)

    def _wait(self, seconds: float, deadline: float, cause: Exception) -> None:
        if self._api.clock() + seconds > deadline:
            raise TransientError(f"time budget spent while retrying: {cause}") from None
        self._sleep(seconds)

    def _finish_quietly(self, key: str, record: OriginRecord) -> None:
        try:
            self._ledger.finish_origin(key, record)
        except Exception:  # the original error matters more; the claim expires on its own
            log.exception("could not record the failed upload of %s", record.file)


def report_name(stream: str, index: int, count: int, *, snapshot: bool) -> str:
    """The `inputStreamName` of one part: the data source itself, or for a snapshot split into several
    parts one report per part, `<name>-part<i>of<n>`."""
    if not snapshot or count == 1:
        return stream
    return f"{stream}-part{index}of{count}"


def _staleness(source: ByteSource, plan: Any) -> str | None:
    from shared.discovery.freshness import SAMPLE_BYTES, staleness_warning

    if plan.kind != "text":
        return None
    first, last = plan.parts[0], plan.parts[-1]
    head = source.read(first.start, min(SAMPLE_BYTES, first.length))
    tail_start = max(last.start, last.end - SAMPLE_BYTES)
    tail = source.read(tail_start, last.end - tail_start) if last.end - tail_start > 0 else b""
    return staleness_warning(source.name, (head, tail))


def part_name(name: str, index: int, count: int) -> str:
    """`fw.log` -> `fw.part2of3.log`; a single part keeps its name."""
    if count == 1:
        return name
    path = PurePosixPath(name)
    return f"{path.stem}.part{index}of{count}{path.suffix}"


def _resumable(known: OriginRecord | None, parts: int, plan_bytes: int) -> list[str]:
    """Part hashes an earlier, interrupted delivery finalized - usable only if it planned the same parts."""
    if known is None or known.parts != parts or known.plan_bytes != plan_bytes:
        return [""] * parts
    hashes = list(known.part_hashes)
    return hashes if len(hashes) == parts else [""] * parts


def _hash_only(source: ByteSource, part: Part, whole: Any, meter: _Meter) -> Any:
    for chunk in source.open(part.start, part.length):
        whole.update(chunk)
        meter.add(len(chunk))
    meter.commit()
    return whole


def _hashed(chunks: Iterator[bytes], *hashers: Any) -> Iterator[bytes]:
    for chunk in chunks:
        for hasher in hashers:
            hasher.update(chunk)
        yield chunk


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:1000]


class _Meter:
    """Bytes sent for the progress callback; a failed attempt's bytes are taken back (thread-safe)."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self._total = total
        self._progress = progress
        self._lock = threading.Lock()
        self._committed = 0
        self._current = 0

    def add(self, count: int) -> None:
        with self._lock:
            self._current += count
            sent = self._committed + self._current
        if self._progress is not None:
            self._progress(sent, self._total)

    def rewind(self) -> None:
        with self._lock:
            self._current = 0
            sent = self._committed
        if self._progress is not None:
            self._progress(sent, self._total)

    def commit(self) -> None:
        with self._lock:
            self._committed += self._current
            self._current = 0
