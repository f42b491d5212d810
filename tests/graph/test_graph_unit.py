"""Graph client, Graph source and schema-2 records in process: scripted HTTP, fake clocks, no sockets.

The same behaviour runs over real HTTPS against the simulator in test_graph_integration.py; here each rule
is pinned down on its own (429 + Retry-After, nextLink host check, open enums, ties larger than a page,
out-of-order pages, comments never re-sent blindly).
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import requests
from jsonschema import Draft202012Validator

from shared.alerts.checkpoints import Checkpoint
from shared.alerts.graph_source import GraphAlertSource, seen_entry
from shared.alerts.record_v2 import ALERT_SCHEMA_V2, graph_v2, mda_v2
from shared.alerts.source import PageWindow
from shared.backoff import Backoff
from shared.errors import ValidationError
from shared.graph.alerts import GraphAlertsApi, alerts_filter
from shared.graph.client import GraphClient
from shared.mda.client import RequestStats
from shared.mda.errors import MalformedResponseError, ServerError, ThrottledError
from shared.timeparse import parse_iso_us
from tests.alerts.fakes import FakeClock, FakeCredential
from tests.alerts.test_model import DOC_EXAMPLE

ROOT = "https://graph.microsoft.com"


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode()
    r.headers["Content-Type"] = "application/json"
    r.headers.update(headers or {})
    return r


class Script:
    """Answers requests from a list; records what was sent."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.sent.append({"method": method, "url": url, **kwargs})
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        result: requests.Response = answer
        return result


def _client(script: Script, clock: FakeClock) -> GraphClient:
    return GraphClient(
        ROOT,
        FakeCredential(),
        session=script,
        clock=clock,
        backoff=Backoff(base=1, cap=4, rng=lambda: 0.5, clock=clock, sleep=clock.sleep),
        throttle_backoff=Backoff(
            base=5, cap=60, jitter="none", rng=lambda: 0.0, clock=clock, sleep=clock.sleep
        ),
    )


def _alert(n: int, updated: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"ca{n:024x}",
        "providerAlertId": f"{n:024x}",
        "lastUpdateDateTime": updated,
        "createdDateTime": "2026-01-01T00:00:00.0000000Z",
        "status": "new",
        "severity": "medium",
        **extra,
    }


# -- client ------------------------------------------------------------------------------------------------


def test_429_waits_retry_after_and_every_call_prefers_unknown_enum_members() -> None:
    clock = FakeClock()
    throttled = _response(
        429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": "7"}
    )
    script = Script(throttled, _response(200, {"value": []}))
    stats = RequestStats()
    page = GraphAlertsApi(_client(script, clock)).list_page("", stats=stats)
    assert page.alerts == [] and clock.sleeps == [pytest.approx(7, rel=0.11)]
    assert stats.throttled == 1 and stats.requests == 2
    assert all(s["headers"]["Prefer"] == "include-unknown-enum-members" for s in script.sent)
    assert script.sent[0]["params"]["$orderby"] == "lastUpdateDateTime asc"


def test_429_without_retry_after_backs_off_from_five_seconds_and_gives_up_at_the_deadline() -> None:
    clock = FakeClock()
    throttled = _response(429, {"error": {"code": "TooManyRequests", "message": "slow down"}})
    script = Script(throttled, throttled, throttled)
    client = _client(script, clock)
    with pytest.raises(ThrottledError) as caught:
        GraphAlertsApi(client).list_page("", deadline=clock() + 12)
    assert clock.sleeps == [5.0] and caught.value.error_code == "TooManyRequests"


def test_a_next_link_to_another_host_is_refused() -> None:
    clock = FakeClock()
    client = _client(Script(), clock)
    with pytest.raises(MalformedResponseError):
        GraphAlertsApi(client).next_page("https://evil.example/v1.0/security/alerts_v2?$skiptoken=1")
    assert client.url_for(f"{ROOT}/v1.0/security/alerts_v2?$skiptoken=2").startswith(ROOT)


def test_a_comment_is_not_sent_again_when_the_re_read_shows_it_arrived() -> None:
    clock = FakeClock()
    alert = _alert(1, "2026-01-01T00:00:00Z", comments=[{"comment": "closed by SOAR"}])
    script = Script(_response(502, {"error": {"code": "BadGateway", "message": "x"}}), _response(200, alert))
    comments = GraphAlertsApi(_client(script, clock)).add_comment(alert["id"], "closed by SOAR")
    assert comments == [{"comment": "closed by SOAR"}]
    assert [s["method"] for s in script.sent] == ["POST", "GET"]


def test_a_comment_is_sent_again_only_when_the_re_read_misses_it() -> None:
    clock = FakeClock()
    alert = _alert(1, "2026-01-01T00:00:00Z", comments=[])
    script = Script(
        _response(503, {"error": {"code": "ServiceUnavailable", "message": "x"}}),
        _response(200, alert),
        _response(200, {"value": [{"comment": "c"}]}),
    )
    assert GraphAlertsApi(_client(script, clock)).add_comment(alert["id"], "c") == [{"comment": "c"}]
    assert [s["method"] for s in script.sent] == ["POST", "GET", "POST"]


def test_server_errors_are_retried_for_reads_only() -> None:
    clock = FakeClock()
    error = _response(500, {"error": {"code": "InternalServerError", "message": "x"}})
    script = Script(error, _response(200, {"value": []}))
    GraphAlertsApi(_client(script, clock)).list_page("")
    assert len(script.sent) == 2
    script = Script(error)
    with pytest.raises(ServerError):
        _client(script, clock).request("POST", "/security/alerts_v2/x/comments", json={}, idempotent=False)
    assert len(script.sent) == 1


def test_filter_text_and_enum_literals() -> None:
    text = alerts_filter(
        ("microsoftDefenderForCloudApps", "microsoftDefenderForEndpoint"), since_iso="A", until_iso=None
    )
    assert text == (
        "(serviceSource eq 'microsoftDefenderForCloudApps' or "
        "serviceSource eq 'microsoftDefenderForEndpoint') and lastUpdateDateTime ge A"
    )
    with pytest.raises(ValidationError):
        alerts_filter(("x' or 1 eq 1",), since_iso=None, until_iso=None)


# -- records -----------------------------------------------------------------------------------------------


def test_graph_record_keeps_unknown_enum_values_and_seven_digit_precision() -> None:
    raw = _alert(5, "2026-03-01T10:00:00.1234567Z", status="someNewStatus", classification=None)
    record = graph_v2(raw, tenant="t")
    assert record["status"] == "someNewStatus" and record["classification"] == "unknown"
    assert record["version"] == parse_iso_us("2026-03-01T10:00:00.123456Z", what="x")
    assert record["mda_id"] == raw["providerAlertId"] and record["source"] == "graph"
    Draft202012Validator(ALERT_SCHEMA_V2).validate(record)
    json.dumps(record)


def test_the_same_mda_alert_means_the_same_through_either_source() -> None:
    closed = {**DOC_EXAMPLE, "resolutionStatusValue": 4, "resolveTime": "2026-01-02T00:00:00.000Z"}
    mda = mda_v2(closed, tenant="t")
    graph = graph_v2(
        _alert(
            0,
            "2026-01-02T00:00:00.0000000Z",
            providerAlertId=closed["_id"],
            status="resolved",
            classification="informationalExpectedActivity",
        ),
        tenant="t",
    )
    for key in ("status", "classification", "mda_id", "updated", "version"):
        assert mda[key] == graph[key], key
    Draft202012Validator(ALERT_SCHEMA_V2).validate(mda)
    open_alert = mda_v2({**DOC_EXAMPLE, "resolutionStatusValue": 0}, tenant="t")
    created_us = cast(int, DOC_EXAMPLE["timestamp"]) * 1000
    assert (open_alert["status"], open_alert["version"]) == ("new", created_us)


def test_records_without_id_or_change_time_are_refused() -> None:
    with pytest.raises(ValidationError):
        graph_v2({"lastUpdateDateTime": "2026-01-01T00:00:00Z"}, tenant="t")
    with pytest.raises(ValidationError):
        graph_v2({"id": "x", "lastUpdateDateTime": "yesterday"}, tenant="t")


# -- source ------------------------------------------------------------------------------------------------


class FakeGraph:
    """A list endpoint over in-memory alerts honouring the `ge` filter, ascending order and `$top`."""

    def __init__(self, alerts: list[dict[str, Any]], *, ordered: bool = True) -> None:
        self.alerts = alerts
        self.ordered = ordered
        self.calls: list[str] = []

    def _rows(self, since: str) -> list[dict[str, Any]]:
        bound = parse_iso_us(since, what="since")
        rows = [a for a in self.alerts if parse_iso_us(a["lastUpdateDateTime"], what="u") >= bound]
        rows.sort(key=lambda a: (a["lastUpdateDateTime"], a["id"]))
        return rows if self.ordered else rows[::-1]

    def list_page(self, filter_text: str, *, top: int = 1000, **_: Any) -> Any:
        from shared.graph.alerts import GraphPage

        self.calls.append(filter_text)
        since = filter_text.split("ge ")[1].split(" ", maxsplit=1)[0]
        rows = self._rows(since)
        link = f"{since}|{top}" if len(rows) > top else None
        return GraphPage(rows[:top], link)

    def next_page(self, link: str, **_: Any) -> Any:
        from shared.graph.alerts import GraphPage

        self.calls.append(f"next {link}")
        since, rest = link.split("|", 1)
        offset = int(rest)
        rows = self._rows(since)
        top = 3
        more = f"{since}|{offset + top}" if len(rows) > offset + top else None
        return GraphPage(rows[offset : offset + top], more)


def _drain(source: GraphAlertSource, cp: Checkpoint, clock: FakeClock) -> tuple[list[Any], Checkpoint]:
    window = PageWindow(end_ms=None, deadline=clock() + 60, max_pages=1000, clock=clock)
    records: list[Any] = []
    for page in source.pages(cp, window, RequestStats()):
        records += page.alerts
        cp = page.checkpoint
    return records, cp


def test_a_tie_larger_than_a_page_is_read_through_next_link_once_each() -> None:
    tie = "2026-01-01T00:00:01.0000000Z"
    alerts = [_alert(i, tie) for i in range(10)] + [_alert(99, "2026-01-01T00:00:02.0000000Z")]
    source = GraphAlertSource(
        cast(GraphAlertsApi, FakeGraph(alerts)), tenant="t", service_sources=("x",), overlap_s=60, page_size=3
    )
    records, cp = _drain(
        source, Checkpoint(watermark_ms=parse_iso_us(tie, what="t") // 1000 - 5000), FakeClock()
    )
    assert sorted(r["id"] for r in records) == sorted(a["id"] for a in alerts)
    assert cp.watermark_ms == parse_iso_us("2026-01-01T00:00:02Z", what="t") // 1000
    again, _ = _drain(source, cp, FakeClock())
    assert again == []  # the overlap re-reads them; the checkpoint's seen set drops them


def test_out_of_order_pages_still_deliver_everything_once() -> None:
    alerts = [_alert(i, f"2026-01-01T00:00:{i:02d}.0000000Z") for i in range(1, 9)]
    source = GraphAlertSource(
        cast(GraphAlertsApi, FakeGraph(alerts, ordered=False)),
        tenant="t",
        service_sources=("x",),
        page_size=3,
    )
    records, _ = _drain(
        source, Checkpoint(watermark_ms=parse_iso_us("2026-01-01T00:00:00Z", what="t") // 1000), FakeClock()
    )
    assert sorted(r["id"] for r in records) == sorted(a["id"] for a in alerts)
    assert len(records) == len({r["id"] for r in records})


def test_seen_set_keeps_only_the_overlap_window_and_probe_asks_for_one_item() -> None:
    alerts = [_alert(i, f"2026-01-01T00:{i:02d}:00.0000000Z") for i in range(0, 30)]
    graph = FakeGraph(alerts)
    source = GraphAlertSource(cast(GraphAlertsApi, graph), tenant="t", service_sources=("x",), overlap_s=300)
    _, cp = _drain(source, Checkpoint(watermark_ms=0), FakeClock())
    assert {a["id"] for a in alerts[-6:]} and len(cp.ids_at_watermark) == 6  # 00:24..00:29 within 5 min
    assert seen_entry(alerts[-1]["id"], graph_v2(alerts[-1], tenant="t")["version"]) in cp.ids_at_watermark
    assert source.probe(cp) is False
    graph.alerts.append(_alert(77, "2026-01-01T00:45:00.0000000Z"))
    assert source.probe(cp) is True
