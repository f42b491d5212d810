"""One log file end to end: plan -> claim -> for each part: put, then finalise -> finish the claim.

The steps: the claim marks the file's origin in progress in the ledger (then records per-part progress and
the outcome); put is `upload_url` -> URL guard -> streamed PUT, repeated with a fresh URL after a failure;
finalise is `done_upload` for the part, recorded in the ledger's content rows.

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
from shared.discovery.content import ByteSource, ContentPlan, Part, plan_content
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
        # The one retry rule (equal jitter, so a struggling service gets a real pause), on the API's clock.
        self._retry = Backoff(config.retry_base_s, BACKOFF_CAP_S, "equal", rng, clock=api.clock, sleep=sleep)
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
        claim = self._claim(key, request, plan, known=known, started=started)
        run = _Run(request, target, len(plan.parts), deadline, _Meter(plan.upload_bytes, progress))
        outcomes = self._send_parts(run, plan, claim)
        sha = outcomes[0].sha256 if len(outcomes) == 1 else run.whole.hexdigest()
        overall = "duplicate" if all(o.outcome == "duplicate" for o in outcomes) else "uploaded"
        ended = utc_now()
        claim.finish(replace(claim.origin, outcome=UPLOADED, sha256=sha, end=ended, error=""))
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

    # -- claim: one worker per origin, progress that survives a redelivery ---------------------------------

    def _claim(
        self,
        key: str,
        request: UploadRequest,
        plan: ContentPlan,
        *,
        known: OriginRecord | None,
        started: str,
    ) -> _Claim:
        """Mark the origin in progress (another worker's fresh claim raises `UploadInProgress`), carrying
        over the parts an interrupted earlier delivery finalized with the same plan."""
        source = request.source
        origin = OriginRecord(
            identity=source.identity,
            file=source.name,
            source=request.source_type,
            stream=request.stream,
            tenant=request.tenant,
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
        return _Claim(self._ledger, key, origin)

    def _send_parts(self, run: _Run, plan: ContentPlan, claim: _Claim) -> list[PartOutcome]:
        """Every part in order: put and finalise it, or only hash it when an earlier delivery did both; a
        failure releases the claim (recorded as failed) before it propagates."""
        outcomes: list[PartOutcome] = []
        session = self._session_factory(self._config.concurrency)
        try:
            for part in plan.parts:
                done = claim.origin.part_hashes[part.index - 1]
                if done:
                    outcomes.append(_resume(run, part, done))
                    continue
                outcome = self._part(session, run, part)
                outcomes.append(outcome)
                claim.part_done(part.index, outcome.sha256, save=run.count > 1)
        except BaseException as exc:
            claim.fail(exc)
            raise
        finally:
            session.close()
        return outcomes

    # -- one part: put, then finalise ----------------------------------------------------------------------

    def _part(self, session: requests.Session, run: _Run, part: Part) -> PartOutcome:
        name = part_name(run.request.source.name, part.index, run.count)
        started = utc_now()
        sent = self._put(session, run, part, name)
        outcome = self._finalise(run, part, name, sent, started)
        run.whole = sent.whole
        return outcome

    def _put(self, session: requests.Session, run: _Run, part: Part, name: str) -> _Sent:
        """The part in storage: each attempt gets a fresh upload URL and re-reads the part from its start."""
        attempts = 0
        while True:
            attempts += 1
            try:
                return self._put_once(session, run, part, name, attempts)
            except PutFailed as exc:
                run.meter.rewind()
                if attempts >= self._config.put_attempts:
                    raise TransientError(f"{name}: the PUT failed {attempts} times; last: {exc}") from None
                wait = self._retry.delay(attempts)
                log.warning(
                    "%s: %s; asking for a fresh upload URL (attempt %d) in %.2f s",
                    name,
                    exc,
                    attempts + 1,
                    wait,
                )
                self._wait(wait, run.deadline, exc)

    def _put_once(self, session: requests.Session, run: _Run, part: Part, name: str, attempts: int) -> _Sent:
        """upload_url -> URL guard -> one streamed PUT, hashing the part (and the whole file) on the way."""
        source = run.request.source
        upload = self._api.upload_url(name, run.target.source, deadline=self._call_deadline(run.deadline))
        url = check_upload_url(upload.url, upload.provider, allow_loopback=self._allow_loopback)
        part_hash = hashlib.sha256()
        whole = run.whole.copy()  # dropped if this attempt fails
        hashers = (part_hash,) if run.count == 1 else (part_hash, whole)  # one file, one hash
        began = time.monotonic()
        method = put_part(
            session,
            url,
            upload.provider,
            _hashed(source.open(part.start, part.length), *hashers),
            length=part.length,
            options=self._options,
            on_bytes=run.meter.add,
        )
        seconds = time.monotonic() - began
        run.meter.commit()
        sha = part_hash.hexdigest()
        log.info(
            "%s: %d bytes sent to %s (%s, %s) in %.2f s, sha256 %s",
            name,
            part.length,
            redact(url),
            upload.provider,
            method,
            seconds,
            sha[:12],
        )
        return _Sent(upload.url, redact(url), sha, method, attempts, seconds, whole)

    def _finalise(self, run: _Run, part: Part, name: str, sent: _Sent, started: str) -> PartOutcome:
        """done_upload for a part in storage, unless identical content was already finalized for this
        target; the content row records the outcome either way."""
        request, target, sha = run.request, run.target, sent.sha256
        report = report_name(request.stream, part.index, run.count, snapshot=request.snapshot)
        prior = self._ledger.get_content(sha, target)
        if prior is not None and prior.outcome == UPLOADED:
            log.info(
                "%s: identical content was already finalized for %s/%s; not finalizing again",
                name,
                target.source,
                target.stream,
            )
            return sent.outcome(part, "duplicate", name, report)
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
            parts=run.count,
            origin=request.source.identity,
            upload_host=sent.host,
            attempts=sent.attempts,
        )
        try:
            self._done(sent.upload_url, report, request.snapshot, run.deadline)
        except TerminalError as exc:
            self._ledger.put_content(replace(record, end=utc_now(), outcome=FAILED, error=_reason(exc)))
            raise
        self._ledger.put_content(replace(record, end=utc_now()))
        metrics.add("upload_bytes", part.length, tenant=target.tenant)
        return sent.outcome(part, "uploaded", name, report)

    def _done(self, url: str, report: str, snapshot: bool, deadline: float) -> None:
        """done_upload with the exact URL; an ambiguous failure is retried with that same URL, and a refusal
        after one is terminal (the first call may have succeeded)."""
        ambiguous: McasError | None = None
        for attempt in range(1, DONE_UPLOAD_ATTEMPTS + 1):
            try:
                self._api.done_upload(url, report, snapshot, deadline=self._call_deadline(deadline))
                return
            except (ServerError, ApiUnavailableError) as exc:
                ambiguous = exc
                if attempt == DONE_UPLOAD_ATTEMPTS:
                    raise
                wait = self._retry.delay(attempt)
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

    # -- time ----------------------------------------------------------------------------------------------

    def _call_deadline(self, deadline: float) -> float:
        return max(deadline, self._api.clock() + min(MIN_CALL_S, self._config.time_budget_s))

    def _wait(self, seconds: float, deadline: float, cause: Exception) -> None:
        """Sleep before the next attempt, or give up now if the wait would pass the time budget."""
        if not self._retry.sleep_within(seconds, deadline):
            raise TransientError(f"time budget spent while retrying: {cause}") from None


@dataclass
class _Run:
    """One file's upload in progress: what every part step needs, and the whole file's running hash."""

    request: UploadRequest
    target: Target
    count: int  # parts in the plan
    deadline: float
    meter: _Meter
    whole: Any = field(default_factory=hashlib.sha256)


@dataclass(frozen=True)
class _Sent:
    """A part that is in storage but not finalised yet."""

    upload_url: str  # exactly as `upload_url` returned it: `done_upload` needs this URL
    host: str  # the URL without its credential, for the record
    sha256: str
    method: str
    attempts: int
    seconds: float
    whole: Any  # the whole file's hash including this part

    def outcome(self, part: Part, outcome: str, name: str, report: str) -> PartOutcome:
        return PartOutcome(
            part.index,
            part.length,
            self.sha256,
            outcome,
            self.method,
            self.attempts,
            self.seconds,
            name,
            report,
        )


@dataclass
class _Claim:
    """This worker's claim on an origin in the ledger: per-part progress, then the final outcome."""

    ledger: Ledger
    key: str
    origin: OriginRecord

    def part_done(self, index: int, sha256: str, *, save: bool) -> None:
        self.origin.part_hashes[index - 1] = sha256
        if save:
            self.ledger.finish_origin(self.key, self.origin)  # progress survives a redelivery

    def finish(self, record: OriginRecord) -> None:
        self.ledger.finish_origin(self.key, record)

    def fail(self, exc: BaseException) -> None:
        """Record the failure (the original error matters more than a failure to record it: the claim then
        expires on its own)."""
        record = replace(self.origin, outcome=FAILED, end=utc_now(), error=_reason(exc))
        try:
            self.ledger.finish_origin(self.key, record)
        except Exception:
            log.exception("could not record the failed upload of %s", record.file)


def _resume(run: _Run, part: Part, sha256: str) -> PartOutcome:
    """A part finalized by an earlier delivery (same blob version, same plan): only hashed, not sent."""
    _hash_only(run.request.source, part, run.whole, run.meter)
    name = part_name(run.request.source.name, part.index, run.count)
    return PartOutcome(part.index, part.length, sha256, "resumed", "", 0, name=name)


def report_name(stream: str, index: int, count: int, *, snapshot: bool) -> str:
    """The `inputStreamName` of one part: the data source itself, or for a snapshot split into several
    parts one report per part, `<name>-part<i>of<n>`."""
    if not snapshot or count == 1:
        return stream
    return f"{stream}-part{index}of{count}"


def _staleness(source: ByteSource, plan: ContentPlan) -> str | None:
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


def _hash_only(source: ByteSource, part: Part, whole: Any, meter: _Meter) -> None:
    for chunk in source.open(part.start, part.length):
        whole.update(chunk)
        meter.add(len(chunk))
    meter.commit()


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
