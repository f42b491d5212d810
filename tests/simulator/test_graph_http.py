"""The simulated Microsoft Graph security API (`alerts_v2`) over real HTTPS, on the fabrikam tenant.

Tokens come from the simulated Entra ID with the client-credentials grant for `<graph host>/.default`, as the
app gets them; the tenant's MDA alerts appear in Graph with mapped ids and states.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from localdev.simulator.client import SimulatorHandle
from tests.simulator.tokens import app_token

TENANT = "fabrikam"
ALERTS = "/v1.0/security/alerts_v2"


@pytest.fixture
def sim(simulator: SimulatorHandle) -> Iterator[SimulatorHandle]:
    now = int(time.time() * 1000)
    simulator.mda(
        TENANT, "POST", "alerts/seed", {"count": 25, "seed": 4, "start_ms": now - 86_400_000, "end_ms": now}
    )
    yield simulator
    simulator.graph(TENANT, "POST", "reset")
    simulator.mda(TENANT, "POST", "reset")
    simulator.mda(TENANT, "DELETE", "alerts")


def _graph_token(sim: SimulatorHandle, app: str = "daemon", secret: str = "mcas-client-secret") -> str:
    return app_token(sim, app, secret, scope=f"{sim.graph_url(TENANT)}/.default")


def _call(sim: SimulatorHandle, token: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    url = path if path.startswith("https://") else f"{sim.graph_url(TENANT)}{path}"
    return requests.request(method, url, headers=headers, timeout=30, **kwargs)


def test_list_pages_with_next_link_and_maps_mda_alerts(sim: SimulatorHandle) -> None:
    token = _graph_token(sim)
    params = {
        "$filter": "serviceSource eq 'microsoftDefenderForCloudApps'"
        " and lastUpdateDateTime ge 2000-01-01T00:00:00Z",
        "$top": "10",
        "$orderby": "lastUpdateDateTime asc",
    }
    pages = [_call(sim, token, "GET", ALERTS, params=params).json()]
    while "@odata.nextLink" in pages[-1]:
        pages.append(_call(sim, token, "GET", pages[-1]["@odata.nextLink"]).json())
    alerts = [a for p in pages for a in p["value"]]
    mda = {a["_id"]: a for a in sim.mda(TENANT, "GET", "alerts")["alerts"]}
    assert len(pages) == 3 and len(alerts) == 25 == len(mda)
    stamps = [a["lastUpdateDateTime"] for a in alerts]
    assert stamps == sorted(stamps) and all(len(s.split(".")[1]) == 8 for s in stamps)  # 7 digits + Z
    for alert in alerts:
        source = mda[alert["providerAlertId"]]
        assert alert["id"] == f"ca{source['_id']}" and alert["title"] == source["title"]
        closed = source["resolutionStatusValue"] != 0
        assert (alert["status"] == "resolved") == closed


def test_top_is_capped_and_unsupported_filters_are_400(sim: SimulatorHandle) -> None:
    token = _graph_token(sim)
    sim.graph(TENANT, "POST", "config", {"max_top": 5})
    answer = _call(sim, token, "GET", ALERTS, params={"$top": "5000"}).json()
    assert len(answer["value"]) == 5 and "@odata.nextLink" in answer
    bad = _call(sim, token, "GET", ALERTS, params={"$filter": "investigationState eq 'x'"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"
    assert _call(sim, token, "GET", ALERTS, params={"$select": "id"}).status_code == 400


def test_roles_audience_and_throttling(sim: SimulatorHandle) -> None:
    reader = _graph_token(sim, "readonly", "mcas-readonly-client-secret")
    alert_id = _call(sim, reader, "GET", ALERTS).json()["value"][0]["id"]
    refused = _call(sim, reader, "PATCH", f"{ALERTS}/{alert_id}", json={"status": "inProgress"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "Forbidden"
    mda_token = sim.mint_token(app="daemon", roles=["SecurityAlert.ReadWrite.All"])  # MDA audience
    assert _call(sim, mda_token, "GET", ALERTS).status_code == 401
    sim.graph(TENANT, "POST", "config", {"limit": 2, "window_s": 30})
    codes = [_call(sim, reader, "GET", ALERTS).status_code for _ in range(3)]
    throttled = _call(sim, reader, "GET", ALERTS)
    assert codes[-1] == 429 and throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.json()["error"]["code"] == "TooManyRequests"


def test_patch_and_comments_are_new_versions(sim: SimulatorHandle) -> None:
    token = _graph_token(sim)
    alert = _call(sim, token, "GET", ALERTS).json()["value"][0]
    patched = _call(
        sim,
        token,
        "PATCH",
        f"{ALERTS}/{alert['id']}",
        json={"status": "resolved", "classification": "truePositive", "determination": "malware"},
    ).json()
    assert (patched["status"], patched["classification"]) == ("resolved", "truePositive")
    assert patched["lastUpdateDateTime"] > alert["lastUpdateDateTime"]
    comments = _call(
        sim,
        token,
        "POST",
        f"{ALERTS}/{alert['id']}/comments",
        json={"@odata.type": "microsoft.graph.security.alertComment", "comment": "checked"},
    ).json()["value"]
    assert [c["comment"] for c in comments][-1] == "checked"
    again = _call(sim, token, "GET", f"{ALERTS}/{alert['id']}").json()
    assert again["lastUpdateDateTime"] > patched["lastUpdateDateTime"] and again["comments"] == comments
    assert _call(sim, token, "PATCH", f"{ALERTS}/{alert['id']}", json={"title": "x"}).status_code == 400
    assert _call(sim, token, "GET", f"{ALERTS}/nope").status_code == 404


def test_late_visibility_and_drift(sim: SimulatorHandle) -> None:
    token = _graph_token(sim)
    alert = _call(sim, token, "GET", ALERTS).json()["value"][0]
    change = sim.graph(
        TENANT, "POST", "alerts/change", {"ids": [alert["id"]], "assignedTo": "x@y", "visible_after_s": 60}
    )["changes"][0]
    shown = _call(sim, token, "GET", f"{ALERTS}/{alert['id']}").json()
    assert shown["lastUpdateDateTime"] == alert["lastUpdateDateTime"] < change["lastUpdateDateTime"]
    sim.graph(TENANT, "POST", "config", {"drift_per_minute": 600000})
    before = {a["id"]: a["lastUpdateDateTime"] for a in sim.graph(TENANT, "GET", "alerts")["alerts"]}
    deadline = time.monotonic() + 10
    changed: set[str] = set()
    while not changed and time.monotonic() < deadline:
        after = sim.graph(TENANT, "GET", "alerts")["alerts"]
        changed = {a["id"] for a in after if a["lastUpdateDateTime"] != before.get(a["id"])}
    assert changed
