"""Uploader policies with a scripted API (done_upload failures the simulator cannot stage deterministically)
and real PUTs to Azurite SAS URLs."""

from __future__ import annotations

import datetime as dt
import itertools
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from localdev.azurite import ACCOUNT_KEY, ACCOUNT_NAME
from shared.discovery.api import UploadTarget
from shared.discovery.config import DiscoveryConfig
from shared.discovery.content import FileSource
from shared.discovery.ledger import MemoryLedger
from shared.discovery.uploader import Uploader, UploadRequest
from shared.errors import TerminalError, TransientError
from shared.mda.errors import ApiUnavailableError, BadRequestError, ServerError
from tests.fixtures.discovery import log_lines, sha256

CONTAINER = "policy-tests"


class ScriptedApi:
    """upload_url hands out fresh Azurite SAS URLs; done_upload answers from a script of outcomes."""

    def __init__(self, azurite: Any, done_script: list[Exception | None]) -> None:
        self.azurite = azurite
        self.done_script = list(done_script)
        self.issued: list[str] = []
        self.done_calls: list[dict[str, Any]] = []

    def clock(self) -> float:
        return time.monotonic()

    def upload_url(self, filename: str, source: str, *, deadline: float | None) -> UploadTarget:
        name = f"{uuid.uuid4().hex}/{filename}"
        sas = generate_blob_sas(
            ACCOUNT_NAME,
            CONTAINER,
            name,
            account_key=ACCOUNT_KEY,
            permission=BlobSasPermissions(create=True, write=True, read=True),
            expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        )
        url = f"{self.azurite.blob_endpoint}/{CONTAINER}/{name}?{sas}"
        self.issued.append(url)
        return UploadTarget(url, "azure")

    def done_upload(self, url: str, stream: str, snapshot: bool, *, deadline: float | None) -> Any:
        self.done_calls.append({"url": url, "stream": stream, "snapshot": snapshot})
        outcome = self.done_script.pop(0) if self.done_script else None
        if outcome is not None:
            raise outcome
        return {"success": True}


@pytest.fixture
def azurite_container(azurite: Any) -> Any:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client(CONTAINER)
    if not container.exists():
        container.create_container()
    return container


def _uploader(api: ScriptedApi, ledger: MemoryLedger | None = None, **config: Any) -> Uploader:
    settings = {"retry_base_s": 0.001, "single_put_bytes": 4096, "block_bytes": 1024, **config}
    return Uploader(api, DiscoveryConfig(**settings), ledger or MemoryLedger(), allow_loopback=True)


def _file(tmp_path: Path, size: int) -> tuple[FileSource, bytes]:
    data = log_lines(size)
    path = tmp_path / f"{uuid.uuid4().hex}.log"
    path.write_bytes(data)
    return FileSource(path, chunk_bytes=1024), data


def test_staged_blocks_land_intact_in_azurite(azurite: Any, azurite_container: Any, tmp_path: Path) -> None:
    api = ScriptedApi(azurite, [])
    source, data = _file(tmp_path, 10_000)
    seen: list[tuple[int, int]] = []
    result = _uploader(api, concurrency=3).upload(
        UploadRequest(source, "SQUID", "s"), progress=lambda sent, total: seen.append((sent, total))
    )
    assert result.parts[0].method == "blocks" and result.sha256 == sha256(data)
    blob_name = api.issued[0].split(f"/{CONTAINER}/")[1].split("?")[0]
    assert azurite_container.download_blob(blob_name).readall() == data
    assert seen[-1] == (len(data), len(data))
    assert all(a <= b for (a, _), (b, _) in itertools.pairwise(seen))
    assert api.done_calls == [{"url": api.issued[0], "stream": "s", "snapshot": False}]  # the exact URL


def test_ambiguous_done_upload_is_retried_with_the_same_url(
    azurite: Any, azurite_container: Any, tmp_path: Path
) -> None:
    api = ScriptedApi(azurite, [ServerError("boom", status=502), ApiUnavailableError("reset")])
    source, _ = _file(tmp_path, 500)
    result = _uploader(api).upload(UploadRequest(source, "SQUID", "s"))
    assert result.outcome == "uploaded"
    assert len(api.issued) == 1 and [c["url"] for c in api.done_calls] == api.issued * 3


def test_ambiguous_then_refused_done_upload_is_terminal_and_says_so(
    azurite: Any, azurite_container: Any, tmp_path: Path
) -> None:
    api = ScriptedApi(
        azurite, [ServerError("boom", status=503), BadRequestError("already processed", status=400)]
    )
    source, _ = _file(tmp_path, 500)
    with pytest.raises(TerminalError, match="done_upload outcome unknown"):
        _uploader(api).upload(UploadRequest(source, "SQUID", "s"))


def test_done_upload_still_failing_is_transient_for_the_queue(
    azurite: Any, azurite_container: Any, tmp_path: Path
) -> None:
    api = ScriptedApi(azurite, [ServerError("down", status=500)] * 3)
    source, _ = _file(tmp_path, 500)
    ledger = MemoryLedger()
    with pytest.raises(TransientError):
        _uploader(api, ledger).upload(UploadRequest(source, "SQUID", "s"))
    assert [o.outcome for o in ledger.origins.values()] == ["failed"]  # the claim is released for the retry


def test_a_put_to_a_dead_url_asks_for_fresh_urls_then_gives_up_transiently(
    azurite: Any, azurite_container: Any, tmp_path: Path
) -> None:
    class DeadUrls(ScriptedApi):
        def upload_url(self, filename: str, source: str, *, deadline: float | None) -> UploadTarget:
            target = super().upload_url(filename, source, deadline=deadline)
            return UploadTarget(target.url.replace("sig=", "sig=X"), "azure")  # Azurite refuses: 403

    api = DeadUrls(azurite, [])
    source, _ = _file(tmp_path, 500)
    with pytest.raises(TransientError, match=r"the PUT failed 3 times.*HTTP 403"):
        _uploader(api).upload(UploadRequest(source, "SQUID", "s"))
    assert len(set(api.issued)) == 3 and api.done_calls == []


def test_retry_waits_stay_inside_the_time_budget(
    azurite: Any, azurite_container: Any, tmp_path: Path
) -> None:
    class DeadUrls(ScriptedApi):
        def upload_url(self, filename: str, source: str, *, deadline: float | None) -> UploadTarget:
            target = super().upload_url(filename, source, deadline=deadline)
            return UploadTarget(target.url.replace("sig=", "sig=X"), "azure")

    api = DeadUrls(azurite, [])
    source, _ = _file(tmp_path, 500)
    started = time.monotonic()
    with pytest.raises(TransientError, match="time budget spent"):
        _uploader(api, retry_base_s=30.0, put_attempts=5, time_budget_s=1.0).upload(
            UploadRequest(source, "SQUID", "s")
        )
    # One 30 s backoff would already pass the 1 s budget: the uploader gave up instead of sleeping.
    assert time.monotonic() - started < 25 and len(api.issued) == 1
