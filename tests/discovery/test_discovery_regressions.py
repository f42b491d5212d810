"""Regression tests for bugs the fuzz and chaos suites found in Cloud Discovery's queue messages and API
answers. One test per bug, in process.

Each names the failure it pins down; the fuzz- and chaos-marked tests keep exploring.
"""

from __future__ import annotations

import json

import pytest

from shared.errors import TerminalError, ValidationError
from shared.mda.errors import MalformedResponseError
from tests.mda.fakes import answering_client

# -- malformed blob URLs and a non-string `data.api` in discovery messages: ValueError / TypeError --


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:99999/devstoreaccount1/c/b", "http://[::1/devstoreaccount1/c/b", "https://a:-1/c/b"],
)
def test_malformed_blob_urls_are_validation_errors(url: str) -> None:
    from shared.discovery.jobs import StorageAccount, parse_blob_ref

    with pytest.raises(ValidationError, match="malformed"):
        parse_blob_ref(url, StorageAccount("devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1/"))


def test_a_blob_created_event_with_an_odd_api_field_is_judged_not_crashed() -> None:
    from shared.discovery.jobs import StorageAccount, UploadJob, parse_message

    account = StorageAccount("acct", "https://acct.blob.core.windows.net/")
    event = {
        "eventType": "Microsoft.Storage.BlobCreated",
        "data": {"api": ["CreateFile"], "url": "https://acct.blob.core.windows.net/logs/PALO_ALTO/hq/a.log"},
    }
    [job] = parse_message(json.dumps(event), container="logs", account=account)
    assert isinstance(job, UploadJob) and job.source == "PALO_ALTO"


# -- upload_url without url/provider was a terminal "refused URL" (dead-lettered with no retry) --------


def test_an_upload_url_answer_without_its_fields_is_transient() -> None:
    from shared.discovery.api import MdaDiscoveryApi

    with pytest.raises(MalformedResponseError) as caught:
        MdaDiscoveryApi(answering_client(200, b'{"provider": "azure"}')).upload_url(
            "f.log", "PALO_ALTO", deadline=None
        )
    assert not isinstance(caught.value, TerminalError)
