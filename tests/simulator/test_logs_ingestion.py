"""The simulated Logs Ingestion endpoint over HTTPS: the answers the `logs` sink has to handle."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
import requests

MONITOR = "https://monitor.azure.com"


@pytest.fixture
def logs(simulator: Any) -> Any:
    simulator.logs("DELETE", "records")
    yield simulator
    simulator.logs("DELETE", "records")
    simulator.logs("DELETE", "reject")
    simulator.logs("DELETE", "deny")


def _url(sim: Any, dcr: str | None = None, stream: str | None = None, version: str = "2023-01-01") -> str:
    info = sim.info["logs_ingestion"]
    return (
        f"{info['endpoint']}/dataCollectionRules/{dcr or info['dcr_immutable_id']}/streams/"
        f"{stream or info['stream']}?api-version={version}"
    )


def _post(sim: Any, body: bytes, *, token: str | None = None, gzip_body: bool = True, **url: str) -> Any:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token or _token(sim)}"}
    if gzip_body:
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body)
    return requests.post(_url(sim, **url), data=body, headers=headers, timeout=30)


def _token(sim: Any, audience: str = MONITOR) -> str:
    return str(sim.mint_token(app="daemon", audience=audience))


def test_accepts_gzip_and_plain_json_arrays_with_204_and_stores_them(logs: Any) -> None:
    rows = [{"AlertId": "a1", "AlertVersion": 1}, {"AlertId": "a2", "AlertVersion": 3}]
    first = _post(logs, json.dumps(rows[:1]).encode())
    second = _post(logs, json.dumps(rows[1:]).encode(), gzip_body=False)
    assert (first.status_code, first.content, second.status_code) == (204, b"", 204)
    assert logs.logs_records() == rows
    stats = logs.logs_stats()
    assert stats["rows"] == 2 and stats["gzip_calls"] == 1 and stats["statuses"] == {"204": 2}


def test_tokens_for_another_audience_are_refused(logs: Any) -> None:
    answer = _post(logs, b"[]", token=_token(logs, "05a65629-4c1b-48c1-a78b-804c4abdd4af"))
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ({"dcr": "dcr-00000000000000000000000000000000"}, 404, "NotFound"),
        ({"stream": "Custom-Other_CL"}, 404, "InvalidStream"),
        ({"version": "2021-01-01"}, 400, "InvalidApiVersion"),
    ],
)
def test_unknown_rule_stream_or_version_get_the_service_error_shape(
    logs: Any, url: dict[str, str], status: int, code: str
) -> None:
    answer = _post(logs, b"[]", gzip_body=True, **url)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code == answer.headers["x-ms-error-code"]
    assert answer.json()["error"]["message"]


def test_over_one_mebibyte_is_413_compressed_or_not(logs: Any) -> None:
    big = json.dumps([{"AlertId": "x", "Pad": "y" * 1_100_000}]).encode()
    for gzip_body in (False, True):  # 1.1 MB plain; about 1 KB gzip, still over the limit decompressed
        answer = _post(logs, big, gzip_body=gzip_body)
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "ContentLengthLimitExceeded"
        assert "1048576" in answer.json()["error"]["message"]
    assert logs.logs_records() == []


def test_malformed_bodies_and_marked_records_are_400(logs: Any) -> None:
    assert _post(logs, b'{"not": "an array"}').status_code == 400
    assert _post(logs, b"[1, 2]").status_code == 400
    assert _post(logs, b"[{").json()["error"]["code"] == "InvalidContent"
    logs.logs("POST", "reject", {"field": "AlertId", "values": ["bad"]})
    refused = _post(logs, json.dumps([{"AlertId": "ok"}, {"AlertId": "bad"}]).encode())
    assert refused.status_code == 400 and logs.logs_records() == []


def test_a_denied_principal_gets_403_operation_failed(logs: Any) -> None:
    logs.logs("POST", "deny", {"principal": logs.client_id("daemon")})
    answer = _post(logs, b"[]")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "OperationFailed"


def test_injected_429_carries_retry_after_and_resets_drop_the_connection(logs: Any) -> None:
    logs.add_fault(service="logs", throttle_burst=1, retry_after=3)
    answer = _post(logs, b"[]")
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "3"
    assert answer.json()["error"]["code"] == "TooManyRequests"
    logs.add_fault(service="logs", reset_rate=1.0, count=1)
    with pytest.raises(requests.ConnectionError):
        _post(logs, b"[]")
    assert _post(logs, b"[]").status_code == 204
