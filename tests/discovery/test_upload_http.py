"""Uploads end to end over real HTTP: the simulator's upload_url/done_upload, its self-served blob and S3
targets or Azurite behind SAS URLs, the app's storage in Azurite (source blobs, ledger, dead letters)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from azure.functions.queue import QueueMessage

from localdev.host.invoke import LocalContext
from shared.deadletters import list_letters
from shared.discovery.api import MdaDiscoveryApi, UploadTarget
from shared.discovery.config import discovery_config
from shared.discovery.content import UTF8_BOM
from shared.discovery.handler import MessageOutcome, handle_discovery_message
from shared.discovery.ledger import MemoryLedger
from shared.discovery.uploader import Uploader, UploadRequest
from shared.discovery.urlguard import UploadUrlRefused
from shared.errors import TransientError
from shared.settings import get_settings
from shared.storage import CONTAINER_DISCOVERY_LOGS, QUEUE_DISCOVERY_JOBS, container_client, queue_client
from tests.fixtures.discovery import SimDiscovery, log_lines, sha256

KIB = 1024


def _put_log(name: str, data: bytes, metadata: dict[str, str] | None = None) -> str:
    container_client(CONTAINER_DISCOVERY_LOGS).upload_blob(name, data, overwrite=True, metadata=metadata)
    return f"{CONTAINER_DISCOVERY_LOGS}/{name}"


def _job(blob: str, *, source: str = "PALO_ALTO", stream: str = "paloalto-hq", snapshot: bool = False) -> str:
    return json.dumps(
        {"action": "discovery.upload", "blob": blob, "source": source, "stream": stream, "snapshot": snapshot}
    )


def _letters_for(marker: str) -> list[Any]:
    return [letter for letter in list_letters() if marker in letter.body]


def _handle(body: str) -> MessageOutcome:
    return handle_discovery_message(body, message_id=uuid.uuid4().hex, dequeue_count=1)


class TestProviders:
    def test_azure_self_served_single_put_strips_the_bom(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery
    ) -> None:
        data = log_lines(10 * KIB)
        blob = _put_log(f"manual/{uuid.uuid4().hex}.log", UTF8_BOM + data)
        outcome = _handle(_job(blob))
        [result] = outcome.uploaded
        assert (result.outcome, result.size, result.sha256) == ("uploaded", len(data), sha256(data))
        assert result.parts[0].method == "single"
        [finished] = sim_discovery.uploads(
            sha256(data)
        )  # the simulator refuses a BOM, and hashed what it got
        assert (finished["stream"], finished["provider"], finished["backend"]) == (
            "paloalto-hq",
            "azure",
            "simulator",
        )

    def test_aws_presigned_put(self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery) -> None:
        sim_discovery.configure(provider="aws")
        data = log_lines(20 * KIB)
        outcome = _handle(
            _job(_put_log(f"manual/{uuid.uuid4().hex}.log", data), source="zscaler", stream="zscaler-cloud")
        )
        assert outcome.uploaded[0].outcome == "uploaded"
        [finished] = sim_discovery.uploads(sha256(data))
        assert (finished["provider"], finished["source"], finished["size"]) == ("aws", "ZSCALER", len(data))

    @pytest.mark.parametrize(("extra", "method"), [(0, "single"), (1, "blocks")])
    def test_azurite_single_put_boundary(
        self,
        discovery_env: Callable[..., None],
        sim_discovery: SimDiscovery,
        azurite: Any,
        extra: int,
        method: str,
    ) -> None:
        """Scaled: 8 KiB stands in for 64 MB. At the limit one PUT; one byte more, staged blocks."""
        limit = 8 * KIB
        discovery_env(
            MCAS_DISCOVERY_SINGLE_PUT_BYTES=str(limit),
            MCAS_DISCOVERY_BLOCK_BYTES=str(KIB),
            MCAS_DISCOVERY_UPLOAD_CONCURRENCY="3",
        )
        sim_discovery.configure(azurite_blob_endpoint=azurite.blob_endpoint, single_put_limit=limit)
        data = log_lines(limit + extra)
        outcome = _handle(_job(_put_log(f"manual/{uuid.uuid4().hex}.log", data)))
        assert outcome.uploaded[0].parts[0].method == method
        [finished] = sim_discovery.uploads(sha256(data))  # read back from Azurite by the simulator
        assert (finished["backend"], finished["size"]) == ("azurite", len(data))

    def test_self_served_blob_refuses_an_oversized_single_put(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery
    ) -> None:
        """The other side of the boundary: above the limit our blocks go through where one PUT would not."""
        limit = 4 * KIB
        discovery_env(MCAS_DISCOVERY_SINGLE_PUT_BYTES=str(limit), MCAS_DISCOVERY_BLOCK_BYTES=str(KIB))
        sim_discovery.configure(single_put_limit=limit)
        data = log_lines(3 * limit + 5)
        outcome = _handle(_job(_put_log(f"manual/{uuid.uuid4().hex}.log", data)))
        assert outcome.uploaded[0].parts[0].method == "blocks"
        assert sim_discovery.requests("blob", "comp=block") >= 13
        assert len(sim_discovery.uploads(sha256(data))) == 1


class TestSplitting:
    def test_text_above_the_scaled_limit_is_split_at_lines_and_each_part_finalized(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery, azurite: Any
    ) -> None:
        limit = 3000
        discovery_env(
            MCAS_DISCOVERY_MAX_FILE_BYTES=str(limit),
            MCAS_DISCOVERY_SINGLE_PUT_BYTES="1024",
            MCAS_DISCOVERY_BLOCK_BYTES="512",
        )
        sim_discovery.configure(
            azurite_blob_endpoint=azurite.blob_endpoint, single_put_limit=1024, max_file_size=limit
        )
        data = log_lines(8000)
        [result] = _handle(_job(_put_log(f"manual/{uuid.uuid4().hex}.log", UTF8_BOM + data))).uploaded
        assert len(result.parts) == 3 and result.sha256 == sha256(data)
        offset = 0
        for part in result.parts:
            chunk = data[offset : offset + part.size]
            assert part.size <= limit and chunk.endswith(b"\n") and part.sha256 == sha256(chunk)
            [finished] = sim_discovery.uploads(part.sha256)
            assert finished["filename"].endswith(f".part{part.index}of3.log")
            offset += part.size
        assert offset == len(data)


class TestIdempotencyAndRetries:
    def test_redelivered_job_is_acknowledged_without_uploading_again(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery
    ) -> None:
        data = log_lines(5 * KIB)
        body = _job(_put_log(f"manual/{uuid.uuid4().hex}.log", data))
        assert _handle(body).uploaded[0].outcome == "uploaded"
        calls_before = sim_discovery.requests("mda", "upload_url")
        again = _handle(body)
        assert again.uploaded[0].outcome == "already_uploaded"
        assert sim_discovery.requests("mda", "upload_url") == calls_before  # no new upload started
        assert len(sim_discovery.uploads(sha256(data))) == 1

    def test_same_content_in_another_blob_is_not_finalized_twice(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery
    ) -> None:
        data = log_lines(3 * KIB)
        _handle(_job(_put_log(f"manual/{uuid.uuid4().hex}.log", data)))
        copy = _handle(_job(_put_log(f"manual/{uuid.uuid4().hex}-copy.log", data)))
        assert copy.uploaded[0].outcome == "duplicate"
        assert len(sim_discovery.uploads(sha256(data))) == 1

    def test_a_failed_put_gets_a_fresh_upload_url(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery, simulator: Any
    ) -> None:
        simulator.add_fault(service="blob", error_rate=1.0, status=500, count=1)
        data = log_lines(4 * KIB)
        [result] = _handle(_job(_put_log(f"manual/{uuid.uuid4().hex}.log", data))).uploaded
        assert result.parts[0].attempts == 2
        assert sim_discovery.requests("mda", "upload_url") == 2  # a new URL, not a retry on the spent one
        assert sim_discovery.requests("blob", "PUT") == 2
        assert len(sim_discovery.uploads(sha256(data))) == 1

    def test_transient_failure_beyond_the_budget_raises_for_the_queue_to_retry(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery, simulator: Any
    ) -> None:
        discovery_env(MCAS_DISCOVERY_TIME_BUDGET_SECONDS="1")
        simulator.add_fault(service="blob", error_rate=1.0, status=503)
        blob = _put_log(f"manual/{uuid.uuid4().hex}.log", log_lines(KIB))
        with pytest.raises(TransientError):
            _handle(_job(blob))
        simulator.clear_faults()
        assert _handle(_job(blob)).uploaded[0].outcome == "uploaded"  # the redelivery starts afresh


class TestTerminalErrors:
    def test_unknown_data_source_is_dead_lettered_and_acknowledged(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery
    ) -> None:
        """Found from the tenant's streams before any byte is sent (not at done_upload, after the file)."""
        marker = uuid.uuid4().hex
        blob = _put_log(f"manual/{marker}.log", log_lines(KIB))
        parts = ("upload_url", "done_upload", "streams")
        before = {part: sim_discovery.requests("mda", part) for part in parts}
        outcome = _handle(_job(blob, stream=f"no-such-{marker}"))
        assert outcome.uploaded == [] and len(outcome.dead_lettered) == 1
        [letter] = _letters_for(marker)
        assert "unknown data source" in letter.reason and "nothing was sent" in letter.reason
        assert "paloalto-hq" in letter.reason  # the data sources the tenant has
        after = {part: sim_discovery.requests("mda", part) for part in before}
        assert after["upload_url"] == before["upload_url"] and after["done_upload"] == before["done_upload"]
        assert after["streams"] == before["streams"] + 1
        assert (
            letter.source == QUEUE_DISCOVERY_JOBS and json.loads(letter.body)["stream"] == f"no-such-{marker}"
        )

    def test_the_same_stream_as_a_snapshot_needs_no_data_source(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery
    ) -> None:
        data = log_lines(KIB)
        outcome = _handle(
            _job(_put_log(f"manual/{uuid.uuid4().hex}.log", data), stream="adhoc", snapshot=True)
        )
        assert outcome.uploaded[0].outcome == "uploaded"
        assert sim_discovery.uploads(sha256(data))[0]["snapshot"] is True

    def test_invalid_job_is_dead_lettered_with_its_reason(self, discovery_env: Callable[..., None]) -> None:
        marker = uuid.uuid4().hex
        outcome = _handle(_job(f"{CONTAINER_DISCOVERY_LOGS}/{marker}.log", source="NOT_A_FORMAT"))
        assert outcome.dead_lettered and "unknown source type" in outcome.dead_lettered[0]
        assert _letters_for(marker)

    def test_refused_upload_host_sends_nothing(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """upload_url is real; its answer is rewritten to a non-storage host: refused, dead-lettered."""
        real = MdaDiscoveryApi.for_profile

        class Redirected(MdaDiscoveryApi):
            def upload_url(self, filename: str, source: str, *, deadline: float | None) -> UploadTarget:
                issued = super().upload_url(filename, source, deadline=deadline)
                rewritten = re.sub(r"//127\.0\.0\.1:\d+", "//attacker.example.net", issued.url)
                return UploadTarget(rewritten, issued.provider)

        monkeypatch.setattr(
            MdaDiscoveryApi, "for_profile", classmethod(lambda cls, p: Redirected(real(p)._client))
        )
        marker = uuid.uuid4().hex
        outcome = _handle(_job(_put_log(f"manual/{marker}.log", log_lines(KIB))))
        assert "not an allowed azure storage host" in outcome.dead_lettered[0]
        assert sim_discovery.requests("blob", "PUT") == 0
        assert _letters_for(marker)

    def test_loopback_upload_url_is_refused_outside_local_mode(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery
    ) -> None:
        settings = get_settings()
        uploader = Uploader(
            MdaDiscoveryApi.for_profile(settings.default_tenant),
            discovery_config(),
            MemoryLedger(),
            allow_loopback=False,
        )
        from shared.discovery.content import FileSource

        path = __import__("pathlib").Path(__file__)
        with pytest.raises(UploadUrlRefused, match="MCAS_ALLOW_LOOPBACK"):
            uploader.upload(UploadRequest(FileSource(path), "PALO_ALTO", "paloalto-hq"))
        assert sim_discovery.requests("blob", "PUT") == 0


class TestEventGridThroughTheFunction:
    def _deliver(self, body: str) -> None:
        """Send through the real queue (base64, as Event Grid and the host do) and invoke the function."""
        import function_app
        from localdev.host.index import app_functions

        queue = queue_client(QUEUE_DISCOVERY_JOBS)
        queue.send_message(body)
        [received] = list(queue.receive_messages(max_messages=1, visibility_timeout=30))
        handler = {f.get_function_name(): f for f in app_functions(function_app.app)}["discovery_upload"]
        msg = QueueMessage(
            id=received.id,
            body=received.content.encode(),
            dequeue_count=received.dequeue_count,
            pop_receipt=received.pop_receipt,
            insertion_time=dt.datetime.now(dt.UTC),
        )
        handler.get_user_function()(msg, context=LocalContext("discovery_upload", "."))
        queue.delete_message(received)

    def _event(self, blob_url: str) -> dict[str, Any]:
        return {
            "topic": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/dev",
            "subject": "/blobServices/default/containers/mcas-discovery-logs/blobs/x",
            "eventType": "Microsoft.Storage.BlobCreated",
            "id": uuid.uuid4().hex,
            "eventTime": dt.datetime.now(dt.UTC).isoformat(),
            "data": {"api": "PutBlob", "url": blob_url, "blobType": "BlockBlob", "contentLength": 1},
            "dataVersion": "",
            "metadataVersion": "1",
        }

    def test_blob_landing_in_the_container_ends_in_done_upload(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery
    ) -> None:
        data = log_lines(6 * KIB)
        name = f"PALO_ALTO/paloalto-hq/{uuid.uuid4().hex}.log"
        _put_log(name, data)
        url = container_client(CONTAINER_DISCOVERY_LOGS).get_blob_client(name).url
        self._deliver(json.dumps(self._event(url)))
        [finished] = sim_discovery.uploads(sha256(data))
        assert (finished["stream"], finished["source"], finished["snapshot"]) == (
            "paloalto-hq",
            "PALO_ALTO",
            False,
        )

    def test_metadata_names_the_target_and_an_array_is_processed_item_by_item(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery
    ) -> None:
        data = log_lines(2 * KIB)
        good = f"incoming/{uuid.uuid4().hex}.log"
        _put_log(good, data, {"mcas_source": "ZSCALER", "mcas_stream": "zscaler-cloud"})
        marker = uuid.uuid4().hex
        bad = f"incoming/{marker}.log"  # no metadata and no <SOURCE>/<stream>/ path: dead-lettered alone
        _put_log(bad, log_lines(KIB))
        client = container_client(CONTAINER_DISCOVERY_LOGS)
        self._deliver(
            json.dumps(
                [self._event(client.get_blob_client(good).url), self._event(client.get_blob_client(bad).url)]
            )
        )
        assert sim_discovery.uploads(sha256(data))[0]["stream"] == "zscaler-cloud"
        [letter] = _letters_for(marker)
        assert "mcas_source and mcas_stream" in letter.reason

    def test_poison_messages_go_to_the_dead_letter_store(self, discovery_env: Callable[..., None]) -> None:
        import function_app
        from localdev.host.index import app_functions

        marker = uuid.uuid4().hex
        handler = {f.get_function_name(): f for f in app_functions(function_app.app)}[
            "discovery_upload_poison"
        ]
        handler.get_user_function()(
            QueueMessage(id=marker, body=_job(f"x/{marker}").encode(), dequeue_count=1),
            context=LocalContext("discovery_upload_poison", "."),
        )
        [letter] = _letters_for(marker)
        assert (letter.reason, letter.source) == ("exhausted retries", f"{QUEUE_DISCOVERY_JOBS}-poison")


class TestResume:
    def test_a_redelivery_resumes_after_the_parts_already_finalized(
        self, discovery_env: Callable[..., None], sim_discovery: SimDiscovery, simulator: Any
    ) -> None:
        discovery_env(MCAS_DISCOVERY_MAX_FILE_BYTES="3000", MCAS_DISCOVERY_PUT_ATTEMPTS="1")
        data = log_lines(8000)
        body = _job(_put_log(f"manual/{uuid.uuid4().hex}.log", data))
        simulator.add_fault(service="blob", error_rate=0.5, status=500)  # the 2nd PUT (part 2) fails
        with pytest.raises(TransientError, match="part2of3"):
            _handle(body)
        simulator.clear_faults()
        before = sim_discovery.requests("mda", "upload_url")
        [result] = _handle(body).uploaded
        assert [p.outcome for p in result.parts] == ["resumed", "uploaded", "uploaded"]
        assert sim_discovery.requests("mda", "upload_url") - before == 2
        assert result.sha256 == sha256(data)
        assert sum(len(sim_discovery.uploads(p.sha256)) for p in result.parts) == 3


class TestLedgerClaims:
    def test_a_fresh_claim_by_another_worker_defers_the_job(self, discovery_env: Callable[..., None]) -> None:
        from shared.discovery.ledger import (
            IN_PROGRESS,
            OriginRecord,
            TableLedger,
            UploadInProgress,
            new_claim,
        )

        ledger = TableLedger.default()
        key = uuid.uuid4().hex

        def claim() -> OriginRecord:
            return OriginRecord(
                identity="blob:x",
                file="f.log",
                source="SQUID",
                stream="s",
                tenant="contoso",
                snapshot=False,
                outcome=IN_PROGRESS,
                claim=new_claim(),
                claimed_at=__import__("time").time(),
                size=6_000_000_000,
            )

        ledger.claim_origin(key, claim(), lease_s=60)
        with pytest.raises(UploadInProgress):
            ledger.claim_origin(key, claim(), lease_s=60)
        ledger.claim_origin(key, claim(), lease_s=0)  # an expired lease is taken over
        stored = ledger.get_origin(key)
        assert stored is not None and stored.size == 6_000_000_000  # Int64 round trip
