"""The simulator's malformed-answer faults (`body` rules) and latency spikes (`latency_rate`), in process."""

from __future__ import annotations

import json

import pytest

from localdev.simulator.faults import FaultInjector, FaultSpecError
from localdev.simulator.wire import SimRequest, SimResponse

LIST = {"data": [{"_id": "a1", "timestamp": 5}, {"_id": "a2", "timestamp": 6}], "hasNext": True, "total": 2}


def req(path: str = "/api/v1/alerts/") -> SimRequest:
    return SimRequest("POST", path, {}, {})


def answer() -> SimResponse:
    return SimResponse.json(200, LIST)


def mangled(**spec: object) -> SimResponse:
    faults = FaultInjector()
    faults.add({"service": "mda", **spec})
    assert faults.before("mda", req()) is None  # body rules never fail the request itself
    return faults.after("mda", req(), answer())


def test_html_truncated_and_empty_bodies():
    html = mangled(body="html")
    assert (html.status, html.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert html.body.startswith(b"<!DOCTYPE html>")
    assert mangled(body="html", status=502).status == 502
    truncated = mangled(body="truncated")
    assert truncated.headers["Content-Type"] == "application/json" and len(truncated.body) < len(
        answer().body
    )
    with pytest.raises(ValueError):
        json.loads(truncated.body)
    assert mangled(body="empty").body == b""


def test_missing_fields_and_wrong_types_top_level_and_in_data_items():
    assert json.loads(mangled(body="missing_fields").body) == {}
    without_ids = json.loads(mangled(body="missing_fields", fields=["_id", "hasNext"]).body)
    assert without_ids == {"data": [{"timestamp": 5}, {"timestamp": 6}], "total": 2}
    retyped = json.loads(mangled(body="wrong_types").body)
    assert retyped == {"data": {"unexpected": "object"}, "hasNext": "yes", "total": "2"}
    items = json.loads(mangled(body="wrong_types", fields=["timestamp"]).body)["data"]
    assert [i["timestamp"] for i in items] == ["5", "6"]


def test_huge_bodies_are_padded_to_the_size_asked():
    huge = mangled(body="huge", body_bytes=100_000)
    assert 99_000 <= len(huge.body) <= 100_000
    assert json.loads(huge.body)["data"] == LIST["data"]


def test_body_rules_fire_at_their_rate_and_retire_after_count():
    faults = FaultInjector()
    faults.add({"service": "mda", "body": "empty", "error_rate": 0.5, "count": 2})
    bodies = [faults.after("mda", req(), answer()).body for _ in range(6)]
    assert [bool(b) for b in bodies] == [True, False, True, False, True, True]
    assert faults.rules() == []


def test_latency_spikes_hit_a_share_of_requests():
    slept: list[float] = []
    faults = FaultInjector(sleep=slept.append)
    faults.add({"service": "mda", "latency_ms": 100, "latency_rate": 0.25})
    for _ in range(8):
        assert faults.before("mda", req()) is None
    assert slept == [0.1, 0.1]


@pytest.mark.parametrize(
    "spec",
    [
        {"body": "gibberish"},
        {"body": "html", "reset_rate": 0.5},
        {"body": "huge", "body_bytes": 0},
        {"body": "missing_fields", "fields": "data"},
        {"latency_rate": 1.5},
    ],
)
def test_invalid_body_specs_are_refused(spec):
    with pytest.raises(FaultSpecError):
        FaultInjector().add(spec)
