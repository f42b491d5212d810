"""Regression tests for the bugs the fuzz and chaos suites found. One test per bug, in process.

Each names the failure it pins down; the suites that found them (tests/fuzz, tests/chaos) keep exploring.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from shared.errors import McasError, TerminalError, TransientError, ValidationError
from shared.mda.client import MdaClient, RetryPolicy, _retry_after
from shared.mda.errors import MalformedResponseError
from tests.alerts.fakes import BASE, FakeClock, FakeCredential

DEEP = "[" * 5000 + "]" * 5000  # deeper than Python's JSON parser recurses: RecursionError, not ValueError


# -- 1. deeply nested JSON in a queue message escaped as RecursionError (the host retried it to poison) --


def test_deeply_nested_messages_are_invalid_not_crashes() -> None:
    from shared.alerts.adhoc import parse_job
    from shared.deadletters import _correlation_id_of
    from shared.discovery.jobs import StorageAccount, parse_message
    from shared.jobs.worker import _parse

    with pytest.raises(ValidationError, match="not JSON"):
        parse_message(DEEP, container="c", account=StorageAccount("a", "https://a.blob.core.windows.net/"))
    with pytest.raises(ValidationError, match="not JSON"):
        parse_job(DEEP, now_ms=0, default_job_id="j")
    with pytest.raises(ValidationError, match="not JSON"):
        _parse(DEEP)
    assert _correlation_id_of(DEEP) is None  # the dead-letter store keeps such a body as it is


# -- 2./3. malformed blob URLs and a non-string `data.api` in discovery messages: ValueError / TypeError --


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


# -- 4. an ad-hoc pull window outside 1970..9999 crashed the checkpoint write ("year 0 is out of range") ---


@pytest.mark.parametrize(
    "window",
    [
        {"since": -62135596800001, "until": 0},
        {"since": 0, "until": 2**70},
        {"since": "0001-01-01T00:00:00+14:00"},
        {"lookback": "99999999999999999999w"},
    ],
)
def test_pull_job_windows_outside_what_a_date_holds_are_invalid(window: dict[str, Any]) -> None:
    from shared.alerts.adhoc import parse_job

    with pytest.raises(ValidationError, match="between 1970-01-01 and 9999-12-31"):
        parse_job(json.dumps(window), now_ms=1_767_225_600_000, default_job_id="j")


# -- 5. a terminal API error in an ad-hoc pull job was raised (retried to poison) instead of dead-lettered --


def test_a_pull_job_that_the_api_refuses_for_good_is_dead_lettered(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import deadletters
    from shared.alerts import adhoc as alert_pull
    from shared.alerts.pull import PullResult

    letters: list[dict[str, Any]] = []
    monkeypatch.setattr(deadletters, "dead_letter", lambda **kw: letters.append(kw))
    refused = PullResult("t", "alerts-adhoc", "t.j", "r", "2026-01-01T00:00:00.000Z")
    refused.stopped, refused.error, refused.terminal = "error", "BadRequestError: HTTP 400: bad filter", True
    monkeypatch.setattr(alert_pull, "run_job", lambda job: refused)
    assert alert_pull.handle_job_message('{"lookback": "1h"}', message_id="m") is refused
    assert "bad filter" in letters[0]["reason"]

    transient = PullResult("t", "alerts-adhoc", "t.j", "r", "2026-01-01T00:00:00.000Z")
    transient.stopped, transient.error = "error", "ServerError: HTTP 503"
    monkeypatch.setattr(alert_pull, "run_job", lambda job: transient)
    with pytest.raises(McasError):  # raised: the host retries a transient failure
        alert_pull.handle_job_message('{"lookback": "1h"}', message_id="m2")
    assert len(letters) == 1


# -- 6. the API client: invalid JSON in a 2xx escaped as JSONDecodeError; no size cap; Retry-After: inf ----


def _answer(status: int, body: bytes, *, cap: int | None = None) -> Any:
    class Session:
        def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
            r = requests.Response()
            r.status_code, r._content, r.reason = status, body, "Reason"
            r.headers["Content-Type"] = "application/json"
            return r

    clock = FakeClock()
    return MdaClient(
        BASE,
        FakeCredential(),
        session=Session(),
        clock=clock,
        sleep=clock.sleep,
        rng=lambda: 0.5,
        retry=RetryPolicy(max_attempts=1),
        max_response_bytes=cap,
    )


def test_invalid_json_in_a_success_answer_is_a_malformed_response_error() -> None:
    with pytest.raises(MalformedResponseError, match="claims to be JSON"):
        _answer(200, b'{"data": [').request("GET", "/api/v1/alerts/", idempotent=True)
    with pytest.raises(MalformedResponseError, match="claims to be JSON"):
        _answer(200, DEEP.encode()).request("GET", "/api/v1/alerts/", idempotent=True)


def test_an_answer_above_the_size_cap_is_refused() -> None:
    with pytest.raises(MalformedResponseError, match="larger than 1000 bytes"):
        _answer(200, b"[" + b"1," * 600 + b"1]", cap=1000).request("GET", "/api/v1/alerts/", idempotent=True)
    assert isinstance(MalformedResponseError("x"), TransientError)  # a bounded retry, then dead letter


@pytest.mark.parametrize("header", ["inf", "nan", "1e400", "99999999"])
def test_retry_after_is_finite_and_capped(header: str) -> None:
    r = requests.Response()
    r.headers["Retry-After"] = header
    wait = _retry_after(r, "")
    assert wait is None or 0 <= wait <= 3600
    assert _retry_after(requests.Response(), "Expected available in " + "9" * 400 + " seconds.") == 3600


# -- 7. the alert list: hasNext "false" read as True (endless paging); non-object items dropped silently ---


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ({"data": [], "hasNext": "false"}, "hasNext is not a boolean"),
        ({"data": [{"_id": "a"}, "not an alert"], "hasNext": False}, "not an object"),
    ],
)
def test_odd_alert_lists_are_refused_not_guessed(answer: dict[str, Any], match: str) -> None:
    from shared.mda.alerts import AlertsApi

    with pytest.raises(MalformedResponseError, match=match):
        AlertsApi(_answer(200, json.dumps(answer).encode())).query({})


# -- 8. upload_url without url/provider was a terminal "refused URL" (dead-lettered with no retry) --------


def test_an_upload_url_answer_without_its_fields_is_transient() -> None:
    from shared.discovery.api import MdaDiscoveryApi

    with pytest.raises(MalformedResponseError) as caught:
        MdaDiscoveryApi(_answer(200, b'{"provider": "azure"}')).upload_url(
            "f.log", "PALO_ALTO", deadline=None
        )
    assert not isinstance(caught.value, TerminalError)


# -- 9. a fetch job failed for good ("bad request") when the API returned an unreadable alert ------------


def test_a_fetch_job_treats_an_unreadable_alert_as_the_apis_fault() -> None:
    from shared.jobs.actions import ActionContext, _fetch
    from shared.mda.alerts import AlertsApi
    from shared.mda.client import RequestStats
    from shared.settings import TenantProfile

    api = AlertsApi(_answer(200, json.dumps({"data": [{"title": "no id"}], "hasNext": False}).encode()))
    context = ActionContext(
        profile=TenantProfile(name="t", api_url=BASE, tenant_id="x", client_id="y"),
        user_assertion=None,
        budget_s=10,
        redelivered=False,
        correlation_id="c",
    )
    params = {"sinceMs": 0, "untilMs": 1, "since": "a", "until": "b", "limit": 10}
    with pytest.raises(MalformedResponseError, match="cannot read"):
        _fetch(api, params, context, deadline=1e12, stats=RequestStats())


# -- 10. the jobs worker took {"v": true} and a job id with a trailing newline (`$` matches before \n) ----


@pytest.mark.parametrize(
    "message",
    [
        {"v": True, "jobId": "0f0e0d0c-0b0a-4908-8706-050403020100"},
        {"v": 1, "jobId": "0f0e0d0c-0b0a-4908-8706-050403020100\n"},
    ],
)
def test_the_worker_takes_only_exact_job_references(message: dict[str, Any]) -> None:
    from shared.jobs.worker import _parse

    with pytest.raises(ValidationError):
        _parse(json.dumps(message))


# -- 11. a Key Vault token revoked before expiry: every retry re-sent it (found by the chaos suite) -------


def test_a_key_vault_401_starts_the_next_read_from_a_fresh_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    from shared.auth import identity
    from shared.auth.keyvault import AzureSecretReader
    from shared.auth.retry import RetryableError

    class Refusing:
        def get_secret(self, name: str) -> Any:
            raise ClientAuthenticationError("revoked")

    forgotten: list[bool] = []
    monkeypatch.setattr(identity, "forget_default_credential", lambda: forgotten.append(True))
    reader = AzureSecretReader("https://vault.vault.azure.net", verify_challenge_resource=True)
    reader._client = Refusing()
    with pytest.raises(RetryableError):
        reader.read("mcas-client-secret")
    assert reader._client is None and forgotten == [True]


# -- 12. a reason quoting a control character made storage refuse the letter (its metadata is a header) ---


def test_a_reason_with_control_characters_is_still_stored(app_env: dict[str, str]) -> None:
    import uuid

    from shared.deadletters import _metadata_safe, dead_letter, get_letter

    reason = "invalid discovery job - stream: 'a\x01b'\r\n\x00\x7f é"
    letter = dead_letter(source="regression", reason=reason, body="{}", message_id=uuid.uuid4().hex)
    assert get_letter(letter.id).reason == reason  # the full reason, unchanged, is in the blob
    assert _metadata_safe(reason) == "invalid discovery job - stream: 'a?b'???? ?"
