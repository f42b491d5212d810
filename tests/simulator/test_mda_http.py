"""The simulated MDA API over real HTTPS, through the session `simulator` fixture (and `azurite` for uploads).

Uses the fabrikam tenant and restores its MDA settings after each test, so other suites see a clean tenant.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from localdev.simulator.client import SimulatorHandle
from tests.simulator.tokens import app_token

TENANT = "fabrikam"
LOG = b"1714557600 10.1.1.5 TCP_MISS/200 5120 GET https://www.dropbox.com/upload - DIRECT/162.125.1.1 -\n"


@pytest.fixture
def sim(simulator: SimulatorHandle) -> Iterator[SimulatorHandle]:
    yield simulator
    simulator.mda(TENANT, "POST", "reset")
    simulator.mda(TENANT, "DELETE", "alerts")


@pytest.fixture
def api(sim: SimulatorHandle) -> Any:
    """`api(method, path, **requests_kwargs)` against the tenant port with the daemon's Bearer token."""
    base = sim.api_url(TENANT)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {app_token(sim)}"

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return session.request(method, f"{base}{path}", timeout=30, **kwargs)

    return call


# -- alerts --------------------------------------------------------------------------------------------------


def test_alert_pages_over_https(sim, api):
    sim.mda(TENANT, "POST", "alerts/seed", {"count": 450, "seed": 11})
    seen: list[str] = []
    skip = 0
    for _ in range(10):
        response = api("POST", "/api/v1/alerts/", json={"skip": skip, "limit": 100, "sortDirection": "asc"})
        assert response.status_code == 200
        page = response.json()
        assert set(page) == {"data", "hasNext", "total", "max", "moreThanTotal"}
        seen += [a["_id"] for a in page["data"]]
        skip += len(page["data"])
        if not page["hasNext"]:
            break
    assert len(seen) == len(set(seen)) == 450
    alias = api("GET", "/cas/api/v1/alerts", params={"filters": '{"severity": {"eq": 3}}', "limit": 5})
    assert alias.status_code == 200 and {a["severityValue"] for a in alias.json()["data"]} == {3}


def test_close_reports_alerts_not_found_over_https(sim, api):
    sim.mda(TENANT, "POST", "alerts/seed", {"count": 5})
    alert_id = sim.mda(TENANT, "GET", "alerts")["alerts"][0]["_id"]
    response = api(
        "POST",
        "/api/v1/alerts/close_false_positive/",
        json={
            "filters": {"id": {"eq": [alert_id, "5f843e9cfe3f6d80fe58a962"]}},
            "reasonId": 1,
            "comment": "noise",
        },
    )
    assert response.status_code == 200
    assert response.json() == {"closed_false_positive": 1, "alertsNotFound": ["5f843e9cfe3f6d80fe58a962"]}
    alert = api("GET", f"/api/v1/alerts/{alert_id}/").json()
    assert alert["resolutionStatusValue"] == 3 and alert["comment"] == "noise"
    bad_reason = api(
        "POST", "/api/v1/alerts/close_benign/", json={"filters": {"id": {"eq": [alert_id]}}, "reasonId": 0}
    )
    assert bad_reason.status_code == 400


# -- 401 / 403 / 429 -----------------------------------------------------------------------------------------


def test_error_bodies_over_https(sim, api):
    base = sim.api_url(TENANT)
    for header in ("Token not-a-token", "Bearer abc.def.ghi", ""):
        response = requests.get(f"{base}/api/v1/alerts/", headers={"Authorization": header}, timeout=10)
        assert response.status_code == 401 and response.json() == {"detail": "Invalid token"}
    wrong_audience = sim.mint_token(
        app="daemon", audience="https://vault.azure.net", roles=["Investigation.read"]
    )
    response = requests.get(
        f"{base}/api/v1/alerts/", headers={"Authorization": f"Bearer {wrong_audience}"}, timeout=10
    )
    assert response.status_code == 401

    readonly = app_token(sim, "readonly", "mcas-readonly-client-secret")
    forbidden = requests.post(
        f"{base}/api/v1/alerts/close_true_positive/",
        timeout=10,
        headers={"Authorization": f"Bearer {readonly}"},
        json={"filters": {"id": {"eq": ["5f843e9cfe3f6d80fe58a962"]}}},
    )
    assert forbidden.status_code == 403
    body = forbidden.json()
    assert body["detail"] == "Insufficient role based permissions" and re.fullmatch(
        r"[0-9a-f-]{36}", body["correlation_id"]
    )
    assert api("GET", "/api/v1/files/").status_code == 403  # app tokens never reach the Files API
    legacy = sim.secret_value("mcas-api-token")
    files = requests.get(f"{base}/api/v1/files/", headers={"Authorization": f"Token {legacy}"}, timeout=10)
    assert files.status_code == 200

    sim.mda(TENANT, "POST", "throttle/reset")  # forget the calls above
    sim.mda(TENANT, "POST", "throttle", {"limit": 3, "window_s": 30})
    statuses = [api("GET", "/api/v1/alerts/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = api("GET", "/api/v1/alerts/")
    message = throttled.json()["error"]["message"]
    assert re.fullmatch(r"Request was throttled\. Expected available in \d+ seconds\.", message)
    assert throttled.headers["Retry-After"] == message.split(" ")[-2]
    assert sim.mda(TENANT, "GET", "throttle/stats")["throttled"] == 2


def test_compressed_throttle_window_recovers_quickly(sim, api):
    sim.mda(TENANT, "POST", "throttle", {"limit": 2, "window_s": 0.5})
    assert [api("GET", "/api/v1/alerts/").status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(0.55)
    assert api("GET", "/api/v1/alerts/").status_code == 200


# -- discovery uploads ---------------------------------------------------------------------------------------


def _upload_url(api: Any, source: str = "SQUID", filename: str = "proxy.log") -> dict[str, Any]:
    response = api("GET", "/api/v1/discovery/upload_url/", params={"filename": filename, "source": source})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _done_upload(api: Any, url: str, stream: str) -> requests.Response:
    return api("POST", "/api/v1/discovery/done_upload/", json={"uploadUrl": url, "inputStreamName": stream})


def test_azure_upload_flow_against_the_simulator_blob(sim, api):
    issued = _upload_url(api)
    assert issued["provider"] == "azure" and issued["url"].startswith(sim.api_url(TENANT) + "/blob/")
    missing_header = requests.put(issued["url"], data=LOG, timeout=10)
    assert missing_header.status_code == 400
    put = requests.put(issued["url"], data=LOG, headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    assert put.status_code == 201
    done = _done_upload(api, issued["url"], "paloalto-hq")
    assert done.status_code == 200 and done.json()["success"] is True
    record = sim.mda(TENANT, "GET", "uploads")["uploads"][-1]
    assert record["sha256"] == hashlib.sha256(LOG).hexdigest() and record["backend"] == "simulator"


def test_sdk_block_upload_to_the_simulator_blob(sim, api):
    """`BlobClient.from_blob_url(url).upload_blob()` stages and commits blocks on the self-served blob."""
    from azure.storage.blob import BlobClient

    sim.mda(TENANT, "POST", "discovery/config", {"single_put_limit": 64 * 1024})
    data = b"".join(b"%08d " % i + LOG for i in range(3000))  # ~300 KiB
    issued = _upload_url(api)
    too_big = requests.put(issued["url"], data=data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    assert too_big.status_code == 413 and too_big.headers["x-ms-error-code"] == "RequestBodyTooLarge"
    client = BlobClient.from_blob_url(issued["url"], max_single_put_size=64 * 1024, max_block_size=64 * 1024)
    client.upload_blob(data, overwrite=True)
    done = api(
        "POST",
        "/api/v1/discovery/done_upload/",
        data={"uploadUrl": issued["url"], "inputStreamName": "my snapshot", "uploadAsSnapshot": "true"},
    )
    assert done.status_code == 200, done.text
    record = sim.mda(TENANT, "GET", "uploads")["uploads"][-1]
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["snapshot"] is True


def test_single_put_above_64_mib_gets_a_clean_413(sim, api):
    """The documented single-PUT ceiling: the client reads 413 RequestBodyTooLarge, not a connection reset."""
    issued = _upload_url(api)
    response = requests.put(
        issued["url"], data=b"x" * (64 * 1024 * 1024 + 1), headers={"x-ms-blob-type": "BlockBlob"}, timeout=30
    )
    assert response.status_code == 413 and response.headers["x-ms-error-code"] == "RequestBodyTooLarge"


def test_aws_upload_flow(sim, api):
    sim.mda(TENANT, "POST", "discovery/config", {"provider": "aws"})
    issued = _upload_url(api, "ZSCALER")
    assert issued["provider"] == "aws" and "X-Amz-Signature=" in issued["url"]
    assert requests.put(issued["url"] + "0", data=LOG, timeout=10).status_code == 403
    assert requests.put(issued["url"], data=LOG, timeout=10).status_code == 200
    done = _done_upload(api, issued["url"], "zscaler-cloud")
    assert done.status_code == 200
    assert sim.mda(TENANT, "GET", "uploads")["uploads"][-1]["provider"] == "aws"


def test_done_upload_rejects_bom_unknown_stream_and_foreign_urls(sim, api):
    issued = _upload_url(api)
    requests.put(
        issued["url"], data=b"\xef\xbb\xbf" + LOG, headers={"x-ms-blob-type": "BlockBlob"}, timeout=10
    )
    bom = _done_upload(api, issued["url"], "paloalto-hq")
    assert bom.status_code == 400 and "BOM" in bom.json()["detail"]
    requests.put(issued["url"], data=LOG, headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    unknown = _done_upload(api, issued["url"], "no-such-source")
    assert unknown.status_code == 400
    assert (
        unknown.json()["errorMessageCode"]
        == "CONSOLE_DISCOVERY_SETTINGS_PARSE_LOG_TASK_ERROR_NOT_FOUND_INPUT_STREAM"
    )
    foreign = _done_upload(api, "https://example.invalid/blob/x?sig=y", "paloalto-hq")
    assert foreign.status_code == 400
    streams = api("GET", "/api/discovery/streams/").json()["streams"]
    assert streams[0]["displayName"] == "Global View"


def test_azurite_backed_upload(sim, api, azurite):
    sim.mda(TENANT, "POST", "discovery/config", {"azurite_blob_endpoint": azurite.blob_endpoint})
    issued = _upload_url(api)
    assert issued["provider"] == "azure"
    assert (
        issued["url"].startswith(f"{azurite.blob_endpoint}/mda-discovery-uploads/")
        and "sig=" in issued["url"]
    )
    early = _done_upload(api, issued["url"], "paloalto-hq")
    assert early.status_code == 400 and "not found" in early.json()["detail"]
    requests.put(
        issued["url"], data=b"\xef\xbb\xbf" + LOG, headers={"x-ms-blob-type": "BlockBlob"}, timeout=10
    )
    bom = _done_upload(api, issued["url"], "paloalto-hq")
    assert bom.status_code == 400
    put = requests.put(issued["url"], data=LOG, headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    assert put.status_code == 201
    done = _done_upload(api, issued["url"], "paloalto-hq")
    assert done.status_code == 200, done.text
    record = sim.mda(TENANT, "GET", "uploads")["uploads"][-1]
    assert record["backend"] == "azurite" and record["sha256"] == hashlib.sha256(LOG).hexdigest()


def test_block_script_over_https(sim, api):
    response = api("GET", "/api/discovery_block_scripts/", params={"format": 102, "type": "banned"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    assert response.text.startswith("url.domain=")


def test_counters_see_mda_and_blob_traffic(sim, api):
    issued = _upload_url(api)
    requests.put(issued["url"], data=LOG, headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    requests.put(
        issued["url"] + "&comp=block&blockid=" + base64.b64encode(b"b1").decode(), data=b"x", timeout=10
    )
    counters = sim.counters()["requests"]
    assert counters["mda"]["GET /api/v1/discovery/upload_url/"] == 1
    assert counters["blob"]["PUT /blob/<id>"] == 1 and counters["blob"]["PUT /blob/<id>?comp=block"] == 1
