"""Pure parsing and validation: source ids, queue messages (explicit jobs and Event Grid events), settings."""

from __future__ import annotations

import json
import logging

import pytest

from shared.discovery.config import DiscoveryConfig
from shared.discovery.jobs import (
    BlobRef,
    Skip,
    StorageAccount,
    UploadJob,
    parse_blob_ref,
    parse_message,
    resolve,
)
from shared.discovery.sources import CURRENT_SOURCES, LEGACY_SOURCES, parse_extra_sources, validate_source
from shared.errors import ConfigurationError, ValidationError

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


class TestSources:
    def test_the_documented_list_has_71_ids_and_13_legacy(self) -> None:
        assert len(CURRENT_SOURCES) == 71
        assert len(LEGACY_SOURCES) == 13
        assert not CURRENT_SOURCES & LEGACY_SOURCES

    def test_current_id_is_normalised_to_upper_case(self) -> None:
        assert validate_source(" palo_alto ") == "PALO_ALTO"

    def test_legacy_id_is_accepted_with_a_warning(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING):
            assert validate_source("ZSCALER_CEF") == "ZSCALER_CEF"
        assert "no longer in the documented list" in caplog.text

    def test_unknown_id_is_refused_with_a_hint(self) -> None:
        with pytest.raises(
            ValidationError, match=r"unknown source type 'PALO_ALTOO' \(did you mean PALO_ALTO\?\)"
        ):
            validate_source("PALO_ALTOO")

    def test_override_setting_allows_ids_the_docs_lag_on(self) -> None:
        extra = parse_extra_sources("IBOSS_SYSLOG, fortios")
        assert validate_source("IBOSS_SYSLOG", extra=extra) == "IBOSS_SYSLOG"
        with pytest.raises(ConfigurationError, match="MCAS_DISCOVERY_EXTRA_SOURCES"):
            parse_extra_sources("GOOD, bad id!")


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


class TestConfig:
    def test_defaults_are_the_documented_limits(self) -> None:
        config = DiscoveryConfig.from_getter(lambda name, default: default)
        assert (config.max_file_bytes, config.single_put_bytes) == (5_000_000_000, 64 * 1024 * 1024)

    def test_limits_scale_down_but_not_above_the_service_limit(self) -> None:
        env = {
            "MCAS_DISCOVERY_MAX_FILE_BYTES": "4096",
            "MCAS_DISCOVERY_SINGLE_PUT_BYTES": "1024",
            "MCAS_DISCOVERY_BLOCK_BYTES": "256",
        }
        config = DiscoveryConfig.from_getter(env.get)
        assert (config.max_file_bytes, config.single_put_bytes, config.block_bytes) == (4096, 1024, 256)
        with pytest.raises(ConfigurationError, match="MCAS_DISCOVERY_MAX_FILE_BYTES"):
            DiscoveryConfig.from_getter(lambda name, default: "6000000000" if "MAX_FILE" in name else default)
        with pytest.raises(
            ConfigurationError, match="MCAS_DISCOVERY_UPLOAD_CONCURRENCY must be between 1 and 16"
        ):
            DiscoveryConfig.from_getter(lambda name, default: "0" if "CONCURRENCY" in name else default)


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
