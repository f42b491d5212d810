"""Discovery queue messages: explicit jobs and Event Grid events, parsed and validated."""

from __future__ import annotations

import json

import pytest

from shared.discovery.jobs import (
    BlobRef,
    Skip,
    StorageAccount,
    UploadJob,
    parse_blob_ref,
    parse_message,
    resolve,
)
from shared.errors import ValidationError

AZURE = StorageAccount("acct", "https://acct.blob.core.windows.net/")
AZURITE = StorageAccount("devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1/")
CONTAINER = "mcas-discovery-logs"


def _event(url: str, *, api: str = "PutBlob", schema: str = "eventgrid") -> dict[str, object]:
    data = {"api": api, "url": url, "contentLength": 10, "blobType": "BlockBlob", "eTag": "0x1"}
    if schema == "cloudevents":
        return {
            "specversion": "1.0",
            "type": "Microsoft.Storage.BlobCreated",
            "id": "e1",
            "data": data,
            "source": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/acct",
        }
    return {
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": "e1",
        "data": data,
        "subject": "/blobServices/default/containers/x/blobs/y",
        "dataVersion": "",
        "metadataVersion": "1",
    }


class TestExplicitJobs:
    def test_container_path_job(self) -> None:
        body = json.dumps(
            {
                "action": "discovery.upload",
                "blob": f"{CONTAINER}/fw/a.log",
                "source": "squid",
                "stream": "proxy eu",
                "snapshot": True,
            }
        )
        [job] = parse_message(body, container=CONTAINER, account=AZURE)
        assert job == UploadJob(BlobRef(CONTAINER, "fw/a.log"), "SQUID", "proxy eu", True, None, "job")

    @pytest.mark.parametrize(
        ("account", "url", "expected"),
        [
            (AZURE, "https://acct.blob.core.windows.net/logs/a%20b.log", BlobRef("logs", "a b.log")),
            (AZURE, "https://acct.dfs.core.windows.net/logs/dir/a.log", BlobRef("logs", "dir/a.log")),
            (AZURITE, "http://127.0.0.1:10000/devstoreaccount1/logs/x/y.log", BlobRef("logs", "x/y.log")),
        ],
    )
    def test_blob_url_in_the_apps_own_account(
        self, account: StorageAccount, url: str, expected: BlobRef
    ) -> None:
        assert parse_blob_ref(url, account) == expected

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("https://other.blob.core.windows.net/logs/a.log", "not the app's storage account"),
            ("https://acct.blob.core.windows.net/logs/a.log?sv=1&sig=x", "must not carry a query"),
            ("https://acct.blob.core.windows.net/logs", "must name a container and a blob"),
            ("Logs/a.log", "not a valid container name"),
        ],
    )
    def test_foreign_or_malformed_blob_references_are_refused(self, url: str, reason: str) -> None:
        with pytest.raises(ValidationError, match=reason):
            parse_blob_ref(url, AZURE)

    def test_every_problem_is_named_at_once(self) -> None:
        body = json.dumps(
            {"action": "discovery.upload", "blob": "", "source": "NOPE", "stream": " ", "snapshot": "yes"}
        )
        with pytest.raises(ValidationError) as info:
            parse_message(body, container=CONTAINER, account=AZURE)
        assert set(info.value.field_errors) == {"blob", "source", "stream", "snapshot"}
        assert "invalid discovery job" in info.value.reason

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            ("not json", "not JSON"),
            ("[]", "empty list"),
            ('{"action": "alerts.pull"}', "unknown action"),
            ('{"hello": 1}', "unrecognised discovery message"),
            ('"text"', "must be a JSON object"),
        ],
    )
    def test_malformed_messages(self, body: str, reason: str) -> None:
        with pytest.raises(ValidationError, match=reason):
            parse_message(body, container=CONTAINER, account=AZURE)


class TestEventGrid:
    @pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
    def test_blob_created_takes_source_and_stream_from_the_path(self, schema: str) -> None:
        url = "https://acct.blob.core.windows.net/mcas-discovery-logs/PALO_ALTO/paloalto-hq/2024/fw.log"
        [job] = parse_message(json.dumps(_event(url, schema=schema)), container=CONTAINER, account=AZURE)
        assert isinstance(job, UploadJob)
        assert (job.blob.name, job.source, job.stream, job.origin) == (
            "PALO_ALTO/paloalto-hq/2024/fw.log",
            "PALO_ALTO",
            "paloalto-hq",
            "event",
        )
        assert resolve(job, {}) == ("PALO_ALTO", "paloalto-hq", False, None)

    def test_an_array_of_events_and_non_upload_events(self) -> None:
        base = "https://acct.blob.core.windows.net/mcas-discovery-logs/SQUID/proxy/"
        deleted = {**_event(base + "old.log"), "eventType": "Microsoft.Storage.BlobDeleted"}
        adls = _event(base + "new.log", api="CreateFile")
        items = parse_message(
            json.dumps([_event(base + "a.log"), deleted, adls]), container=CONTAINER, account=AZURE
        )
        assert isinstance(items[0], UploadJob)
        assert isinstance(items[1], Skip) and "BlobDeleted" in items[1].reason
        assert isinstance(items[2], Skip) and "CreateFile" in items[2].reason

    def test_metadata_fills_in_and_overrides_the_path(self) -> None:
        url = "https://acct.blob.core.windows.net/mcas-discovery-logs/flat.log"
        [job] = parse_message(json.dumps(_event(url)), container=CONTAINER, account=AZURE)
        assert isinstance(job, UploadJob) and job.source is None
        with pytest.raises(ValidationError, match="mcas_source and mcas_stream"):
            resolve(job, {})
        meta = {
            "mcas_source": "zscaler",
            "mcas_stream": "zscaler%20cloud",
            "mcas_snapshot": "true",
            "mcas_tenant": "fabrikam",
        }
        assert resolve(job, meta) == ("ZSCALER", "zscaler cloud", True, "fabrikam")

    def test_event_for_another_container_is_refused(self) -> None:
        url = "https://acct.blob.core.windows.net/elsewhere/PALO_ALTO/s/fw.log"
        with pytest.raises(ValidationError, match="watch 'mcas-discovery-logs'"):
            parse_message(json.dumps(_event(url)), container=CONTAINER, account=AZURE)

    def test_invalid_source_in_the_path_is_a_validation_error(self) -> None:
        url = "https://acct.blob.core.windows.net/mcas-discovery-logs/NOT_A_SOURCE/s/fw.log"
        [job] = parse_message(json.dumps(_event(url)), container=CONTAINER, account=AZURE)
        assert isinstance(job, UploadJob)
        with pytest.raises(ValidationError, match="unknown source type"):
            resolve(job, {})


@pytest.mark.parametrize(
    "value",
    [
        "/mcas-discovery-logs/a.log",
        "mcas-discovery-logs/../azure-webjobs-secrets/host.json",
        "mcas-discovery-logs/%2e%2e/azure-webjobs-secrets/host.json",
        "mcas-discovery-logs/%2E%2E%2Fazure-webjobs-secrets%2Fhost.json",
        "mcas-discovery-logs/./a.log",
        "mcas-discovery-logs/a//b.log",
        "mcas-discovery-logs/dir/",
        "mcas-discovery-logs/a\\..\\b.log",
        "https://acct.blob.core.windows.net/mcas-discovery-logs/../azure-webjobs-secrets/host.json",
        "https://acct.blob.core.windows.net/mcas-discovery-logs/%2e%2e/azure-webjobs-secrets/host.json",
        "https://acct.blob.core.windows.net//mcas-discovery-logs/a.log",
    ],
)
def test_blob_paths_are_taken_literally(value: str) -> None:
    with pytest.raises(ValidationError, match=r"segments|leading /|backslashes|malformed"):
        parse_blob_ref(value, AZURE)


def test_explicit_jobs_read_only_the_discovery_container_and_the_extra_ones() -> None:
    job = {
        "action": "discovery.upload",
        "source": "SQUID",
        "stream": "s",
        "blob": "azure-webjobs-secrets/h.json",
    }
    with pytest.raises(ValidationError, match="not open to discovery jobs"):
        parse_message(json.dumps(job), container=CONTAINER, account=AZURE)
    job["blob"] = "firewall-exports/a.log"
    [parsed] = parse_message(
        json.dumps(job), container=CONTAINER, account=AZURE, extra_containers=frozenset({"firewall-exports"})
    )
    assert isinstance(parsed, UploadJob) and parsed.blob == BlobRef("firewall-exports", "a.log")
    assert parse_blob_ref("firewall-exports/a%20b.log", AZURE).name == "a%20b.log"  # names stay literal
