"""The `logs` sink without sockets: row projection, chunk planning, settings, and the sender's reactions to
each answer of the Logs Ingestion API (a small fake session stands in for HTTP; the same paths run over HTTPS
against the simulator in test_logs_http.py)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.alerts.config import AlertConfig, logs_config, monitor_scope
from shared.alerts.logs_records import FIELD_MAX_BYTES, column_types, encode, project
from shared.alerts.logs_sink import MAX_REQUEST_BYTES, LogsIngestionSink, plan_chunks
from shared.alerts.model import normalize
from shared.alerts.sinks import AlertBatch, SinkError, build_sinks
from shared.backoff import Backoff
from shared.errors import ConfigurationError
from shared.settings import Settings
from tests.alerts.fakes import FakeClock

DCR = "dcr-" + "0123456789abcdef" * 2
BASE_ENV = {
    "MCAS_API_URL": "https://contoso.us2.portal.cloudappsecurity.com",
    "MCAS_TENANT_ID": "11111111-1111-1111-1111-111111111111",
    "MCAS_CLIENT_ID": "22222222-2222-2222-2222-222222222222",
    "MCAS_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net",
}
ENDPOINT = "https://dcr-x.eastus-1.ingest.monitor.azure.com"


def _raw(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "_id": f"{i:024x}",
        "timestamp": 1_767_225_600_000 + i,
        "title": f"Impossible travel {i}",
        "description": "<p>d</p>",
        "severityValue": 2,
        "resolutionStatusValue": 3,
        "statusValue": 0,
        "URL": f"https://contoso.portal.cloudappsecurity.com/#/alerts/{i:024x}",
        "entities": [{"type": "account", "id": "u1", "label": "Alex", "entityRole": "Related"}],
        "handledByUser": "soc@contoso.com",
        **extra,
    }


def _alert(i: int, **extra: Any) -> Any:
    return normalize(_raw(i, **extra), tenant="contoso")


def _batch(alerts: list[Any]) -> AlertBatch:
    return AlertBatch.build("contoso", "scheduled", "page1", alerts)


# -- projection ------------------------------------------------------------------------------------------


def test_v1_rows_have_exactly_the_table_columns_and_fall_back_sensibly() -> None:
    alert = _alert(7)
    row = project(alert)
    assert list(row) == list(column_types())  # same names, same order as the table schema
    assert row["AlertId"] == row["MdaAlertId"] == alert["id"]
    assert row["AlertVersion"] == 1 and row["SchemaVersion"] == 1 and row["Source"] == "mda"
    assert row["Created"] == row["Updated"] == row["TimeGenerated"] == "2026-01-01T00:00:00.007Z"
    assert row["Status"] == "false_positive" and row["Classification"] == "falsePositive"
    assert row["AssignedTo"] == "soc@contoso.com" and row["PortalUrl"] == alert["url"]
    assert row["ServiceSource"] == "microsoftDefenderForCloudApps"
    assert row["MdaTenant"] == "contoso" and row["Severity"] == "high"
    assert row["Entities"] == alert["entities"] and row["RawRecord"] == alert["raw"]


def test_v2_fields_are_projected_when_present() -> None:
    record = {
        "schema_version": 2,
        "source": "graph",
        "id": "da637551227677560813_-961444813",
        "version": 1_767_300_000_123,
        "tenant": "fabrikam",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "updated": "2026-01-01T20:53:20.123Z",
        "title": "Mass download",
        "severity": "medium",
        "status": "inProgress",
        "classification": "truePositive",
        "determination": "malware",
        "assigned_to": "analyst@fabrikam.com",
        "portal_url": "https://security.microsoft.com/alerts/x",
        "entities": [],
        "raw": {
            "providerAlertId": "65f0c2aa1b2c3d4e5f607182",
            "serviceSource": "microsoftDefenderForCloudApps",
        },
    }
    row = project(record)
    assert row["Source"] == "graph" and row["AlertVersion"] == 1_767_300_000_123
    assert row["TimeGenerated"] == row["Updated"] == "2026-01-01T20:53:20.123Z"
    assert row["Created"] == "2026-01-01T00:00:00.000Z"
    assert (row["Status"], row["Classification"], row["Determination"]) == (
        "inProgress",
        "truePositive",
        "malware",
    )
    assert row["AssignedTo"] == "analyst@fabrikam.com" and row["PortalUrl"].startswith("https://security.")
    assert row["MdaAlertId"] == "65f0c2aa1b2c3d4e5f607182" and row["SchemaVersion"] == 2


def test_oversized_fields_are_capped_so_no_column_is_cut_by_the_service() -> None:
    huge = "é" * 200_000
    alert = _alert(1, title=huge, blob="x" * 300_000)
    alert["entities"] = [
        {"type": "file", "id": str(i), "label": "y" * 1000, "role": None, "email": None} for i in range(500)
    ]
    row = project(alert)
    assert len(row["AlertTitle"].encode()) <= FIELD_MAX_BYTES and row["AlertTitle"].startswith("éé")
    assert row["RawRecord"]["_truncated"] is True and row["RawRecord"]["bytes"] > 300_000
    assert len(row["RawRecord"]["sha256"]) == 64 and row["AlertId"] == alert["id"]
    assert 0 < len(row["Entities"]) < 500 and len(encode(row["Entities"])) <= FIELD_MAX_BYTES
    assert len(encode(row)) < MAX_REQUEST_BYTES


def test_table_schema_avoids_reserved_names_and_uses_the_declared_types() -> None:
    reserved = {"_ResourceId", "id", "_SubscriptionId", "TenantId", "Type", "UniqueId", "Title"}
    names = set(column_types())
    assert not names & reserved and "TimeGenerated" in names
    assert set(column_types().values()) <= {"string", "int", "long", "real", "boolean", "dynamic", "datetime"}


# -- chunk planning ----------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=5000), max_size=60),
    st.integers(min_value=50, max_value=20_000),
)
def test_chunks_keep_order_never_split_a_row_and_fit_the_limit(sizes: list[int], limit: int) -> None:
    chunks = plan_chunks(sizes, limit)
    assert [i for chunk in chunks for i in chunk] == list(range(len(sizes)))
    for chunk in chunks:
        body = 2 + sum(sizes[i] for i in chunk) + len(chunk) - 1
        assert body <= limit or len(chunk) == 1


# -- settings ----------------------------------------------------------------------------------------------


def _settings(**env: str) -> Settings:
    return Settings.from_env({**BASE_ENV, **env})


def test_logs_sink_settings_are_validated_with_the_setting_named() -> None:
    good = {"MCAS_LOGS_INGESTION_ENDPOINT": ENDPOINT, "MCAS_LOGS_DCR_IMMUTABLE_ID": DCR}
    config = logs_config(_settings(**good))
    assert config is not None and config.stream == "Custom-MDAAlerts_CL"
    assert config.scope == "https://monitor.azure.com/.default"
    cases = [
        ({"MCAS_ALERT_SINKS": "logs"}, "MCAS_LOGS_INGESTION_ENDPOINT"),
        (
            {**good, "MCAS_LOGS_INGESTION_ENDPOINT": "http://x.ingest.monitor.azure.com"},
            "MCAS_LOGS_INGESTION_ENDPOINT",
        ),
        ({**good, "MCAS_LOGS_INGESTION_ENDPOINT": "https://127.0.0.1:9443"}, "MCAS_LOGS_INGESTION_ENDPOINT"),
        ({**good, "MCAS_LOGS_DCR_IMMUTABLE_ID": "my-dcr"}, "MCAS_LOGS_DCR_IMMUTABLE_ID"),
        ({**good, "MCAS_LOGS_STREAM": "MDAAlerts_CL"}, "MCAS_LOGS_STREAM"),
        ({**good, "MCAS_LOGS_SCOPE": "https://monitor.azure.com"}, "MCAS_LOGS_SCOPE"),
        ({**good, "MCAS_LOGS_TENANT_PROFILE": "nobody"}, "MCAS_LOGS_TENANT_PROFILE"),
        ({**good, "MCAS_LOGS_CREDENTIAL": "shared_key"}, "MCAS_LOGS_CREDENTIAL"),
    ]
    for env, setting in cases:
        with pytest.raises(ConfigurationError) as info:
            AlertConfig.from_settings(_settings(**env))
        assert info.value.setting == setting
    loopback = {
        **good,
        "MCAS_LOGS_INGESTION_ENDPOINT": "https://127.0.0.1:9443",
        "MCAS_ALLOW_LOOPBACK": "true",
    }
    assert AlertConfig.from_settings(_settings(**loopback, MCAS_ALERT_SINKS="logs")).logs is not None


def test_token_scope_follows_the_cloud_unless_overridden() -> None:
    assert monitor_scope("https://x.ingest.monitor.azure.us", "https://login.microsoftonline.com").endswith(
        "monitor.azure.us/.default"
    )
    assert monitor_scope("https://x.ingest.monitor.azure.com", "https://login.chinacloudapi.cn").endswith(
        "monitor.azure.cn/.default"
    )
    env = {"MCAS_LOGS_INGESTION_ENDPOINT": ENDPOINT, "MCAS_LOGS_DCR_IMMUTABLE_ID": DCR}
    custom = logs_config(_settings(**env, MCAS_LOGS_SCOPE="https://monitor.example/.default"))
    assert custom is not None and custom.scope == "https://monitor.example/.default"


def test_build_sinks_builds_the_logs_sink_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.caches import reset_all_caches

    for key, value in {
        **BASE_ENV,
        "MCAS_LOGS_INGESTION_ENDPOINT": ENDPOINT,
        "MCAS_LOGS_DCR_IMMUTABLE_ID": DCR,
    }.items():
        monkeypatch.setenv(key, value)
    reset_all_caches()
    try:
        (sink,) = build_sinks(["logs"], webhook_url=None, webhook_secret_name="x")
        assert isinstance(sink, LogsIngestionSink)
        assert (
            sink.url
            == f"{ENDPOINT}/dataCollectionRules/{DCR}/streams/Custom-MDAAlerts_CL?api-version=2023-01-01"
        )
    finally:
        reset_all_caches()


# -- the sender ---------------------------------------------------------------------------------------------


class FakeResponse:
    def __init__(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self._payload = payload
        self.headers = headers or {}

    def json(self) -> Any:
        if self._payload is None:
            raise ValueError("no body")
        return self._payload


class FakeSession:
    """Answers each POST with `answer(rows)`; records the rows and sizes of every call."""

    def __init__(self, answer: Callable[[list[dict[str, Any]]], Any]) -> None:
        self.answer = answer
        self.calls: list[list[dict[str, Any]]] = []
        self.wire_sizes: list[int] = []
        self.headers: list[dict[str, str]] = []

    def post(self, url: str, *, data: bytes, headers: dict[str, str], **_: Any) -> Any:
        rows = json.loads(gzip.decompress(data))
        self.calls.append(rows)
        self.wire_sizes.append(len(data))
        self.headers.append(headers)
        result = self.answer(rows)
        if isinstance(result, Exception):
            raise result
        return result


class FakeCredential:
    def __init__(self) -> None:
        self.invalidated = 0
        self.generation = 0

    def authorization_header(self) -> str:
        return f"Bearer token{self.generation}"

    def invalidate(self, rejected_header: str | None = None) -> None:
        self.invalidated += 1
        self.generation += 1


def _sink(
    session: FakeSession,
    *,
    letters: list[dict[str, Any]] | None = None,
    clock: FakeClock | None = None,
    **kw: Any,
) -> tuple[LogsIngestionSink, FakeCredential, FakeClock]:
    clock = clock or FakeClock()
    credential = FakeCredential()

    def dead_letter(**letter: Any) -> None:
        assert letters is not None
        letters.append(letter)

    sink = LogsIngestionSink(
        ENDPOINT,
        DCR,
        "Custom-MDAAlerts_CL",
        lambda: credential,
        session=session,  # type: ignore[arg-type]
        dead_letter=dead_letter,
        backoff=Backoff(base=1.0, cap=8.0, jitter="none", clock=clock, sleep=clock.sleep),
        **kw,
    )
    return sink, credential, clock


def test_a_page_goes_as_gzip_json_in_one_call_with_the_headers_the_api_needs() -> None:
    session = FakeSession(lambda rows: FakeResponse(204))
    sink, _, _ = _sink(session)
    alerts = [_alert(i) for i in range(100)]
    sink.deliver(_batch(alerts), deadline=None)
    assert len(session.calls) == 1 and session.calls[0] == [project(a) for a in alerts]
    headers = session.headers[0]
    assert headers["Content-Encoding"] == "gzip" and headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer token0"
    assert sink.stats.rows == 100 and sink.stats.calls == 1


def test_rows_are_chunked_under_the_limit_and_413_splits_further() -> None:
    limit = 40_000

    def answer(rows: list[dict[str, Any]]) -> Any:
        if len(rows) > 5:  # the service's limit is stricter than ours: 413 until chunks are small
            return FakeResponse(413, {"error": {"code": "ContentLengthLimitExceeded", "message": "too big"}})
        return FakeResponse(204)

    session = FakeSession(answer)
    sink, _, _ = _sink(session, max_request_bytes=limit)
    alerts = [_alert(i) for i in range(60)]
    sink.deliver(_batch(alerts), deadline=None)
    accepted = [r for rows in session.calls if len(rows) <= 5 for r in rows]
    assert accepted == [project(a) for a in alerts]  # every row once, in order, none split
    assert all(len(json.dumps(rows)) < limit * 2 for rows in session.calls)
    assert sink.stats.splits > 0


def test_a_refused_record_is_dead_lettered_and_the_rest_of_the_page_is_accepted() -> None:
    bad = _alert(13)
    accepted: list[str] = []

    def answer(rows: list[dict[str, Any]]) -> Any:
        if any(r["AlertId"] == bad["id"] for r in rows):
            return FakeResponse(400, {"error": {"code": "InvalidContent", "message": "cannot parse record"}})
        accepted.extend(r["AlertId"] for r in rows)
        return FakeResponse(204)

    letters: list[dict[str, Any]] = []
    session = FakeSession(answer)
    sink, _, _ = _sink(session, letters=letters)
    alerts = [_alert(i) for i in range(40)]
    sink.deliver(_batch(alerts), deadline=None)
    assert accepted == [a["id"] for a in alerts if a["id"] != bad["id"]]  # each once, in order
    assert sorted(accepted) == sorted(a["id"] for a in alerts if a["id"] != bad["id"])
    assert len(letters) == 1 and letters[0]["source"] == "logs-ingestion"
    assert "InvalidContent: cannot parse record" in letters[0]["reason"]
    assert json.loads(letters[0]["body"])["id"] == bad["id"]  # the normalised alert, replayable
    assert sink.stats.dead_lettered == 1
    assert len(session.calls) <= 1 + 2 * 6  # bisection: about two calls per halving


def test_429_waits_retry_after_and_resets_and_5xx_back_off() -> None:
    script: list[Any] = [
        FakeResponse(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "7"}),
        requests.ConnectionError("reset by peer"),
        FakeResponse(503, {"error": {"code": "ServiceUnavailable"}}),
        FakeResponse(204),
    ]
    session = FakeSession(lambda rows: script.pop(0))
    sink, _, clock = _sink(session)
    sink.deliver(_batch([_alert(1)]), deadline=None)
    assert 7.0 <= clock.sleeps[0] <= 7.0 * 1.1  # Retry-After, plus at most 10% spread
    assert clock.sleeps[1:] == [2.0, 4.0]  # backoff for attempts 2 and 3 (no jitter in this test)
    assert sink.stats.retries == 3 and sink.stats.rows == 1


def test_401_refreshes_the_token_once() -> None:
    script: list[Any] = [
        FakeResponse(401, {"error": {"code": "InvalidAuthenticationToken"}}),
        FakeResponse(204),
    ]
    session = FakeSession(lambda rows: script.pop(0))
    sink, credential, _ = _sink(session)
    sink.deliver(_batch([_alert(1)]), deadline=None)
    assert credential.invalidated == 1
    assert [h["Authorization"] for h in session.headers] == ["Bearer token0", "Bearer token1"]


@pytest.mark.parametrize(
    ("status", "code"), [(403, "OperationFailed"), (404, "NotFound"), (401, "InvalidAuthenticationToken")]
)
def test_configuration_failures_keep_the_page_uncommitted(status: int, code: str) -> None:
    session = FakeSession(lambda rows: FakeResponse(status, {"error": {"code": code, "message": "m"}}))
    sink, _, _ = _sink(session)
    with pytest.raises(SinkError, match=code) as info:
        sink.deliver(_batch([_alert(1)]), deadline=None)
    assert info.value.sink == "logs"
    assert "Bearer" not in str(info.value)


def test_a_later_chunk_failing_fails_the_page_after_earlier_chunks_went() -> None:
    def answer(rows: list[dict[str, Any]]) -> Any:
        return FakeResponse(204) if len(session.calls) == 1 else FakeResponse(500, {"error": {"code": "X"}})

    session = FakeSession(answer)
    sink, _, _ = _sink(session, max_request_bytes=20_000, max_attempts=3)
    with pytest.raises(SinkError, match="after 3 attempts"):
        sink.deliver(_batch([_alert(i) for i in range(30)]), deadline=None)
    assert sink.stats.calls == 1  # the first chunk was accepted: a redelivery may duplicate it


def test_no_retry_is_started_past_the_deadline() -> None:
    session = FakeSession(
        lambda rows: FakeResponse(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "60"})
    )
    clock = FakeClock()
    sink, _, _ = _sink(session, clock=clock)
    with pytest.raises(SinkError, match="no time left"):
        sink.deliver(_batch([_alert(1)]), deadline=clock() + 30)
    assert clock.sleeps == [] and len(session.calls) == 1
