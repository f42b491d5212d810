"""Auth, permissions, throttling, fault injection and counters of the simulated MDA API (no server needed)."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from localdev.simulator.counters import Counters
from localdev.simulator.faults import FaultInjector
from tests.simulator.mda_fakes import (
    LEGACY_ALL,
    LEGACY_READ,
    MANAGE,
    OTHER_TENANT_ID,
    Clock,
    admin,
    bearer,
    call,
    call_url,
    make_service,
    payload,
)

ALERTS = "/api/v1/alerts/"


@pytest.fixture
def svc():
    return make_service(seed_alerts=20)


# -- 401 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "",
        "Token",
        f"Token {LEGACY_READ.lower()}",  # tokens are case-sensitive
        "Token " + "B" * 64,  # well-formed but unknown
        "Token " + "R" * 63,  # too short
        "Token " + "R" * 64 + "!",  # bad character
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        bearer("Investigation.read", tid=OTHER_TENANT_ID),  # issued in another tenant
        "Bearer",
    ],
)
def test_anything_but_a_valid_credential_is_401_invalid_token(svc, auth):
    response = call(svc, "GET", ALERTS, auth=auth)
    assert response.status == 401
    assert payload(response) == {"detail": "Invalid token"}


def test_legacy_token_and_scheme_keyword_case(svc):
    assert call(svc, "GET", ALERTS, auth=f"Token {LEGACY_READ}").status == 200
    assert call(svc, "GET", ALERTS, auth=f"token {LEGACY_ALL}").status == 200
    assert call(svc, "GET", ALERTS, auth=MANAGE.replace("Bearer", "bearer")).status == 200


def test_legacy_tokens_can_be_added_and_revoked_through_admin(svc):
    token = "Zz=" * 30
    assert call(svc, "GET", ALERTS, auth=f"Token {token}").status == 401
    admin(svc, "POST", "tokens", {"token": token, "roles": ["Investigation.read"]})
    assert call(svc, "GET", ALERTS, auth=f"Token {token}").status == 200
    assert admin(svc, "DELETE", "tokens", {"token": token})["removed"] is True
    assert call(svc, "GET", ALERTS, auth=f"Token {token}").status == 401
    assert admin(svc, "GET", "tokens") == {"count": 2}  # values are never echoed


# -- 403 -----------------------------------------------------------------------------------------------------


def _is_forbidden(response) -> bool:
    if response.status != 403:
        return False
    body = payload(response)
    assert set(body) == {"detail", "correlation_id"}
    assert body["detail"] == "Insufficient role based permissions"
    uuid.UUID(body["correlation_id"])
    return True


@pytest.mark.parametrize(
    ("auth", "path", "method", "allowed"),
    [
        (bearer("Investigation.read"), ALERTS, "GET", True),
        (bearer("investigation.READ"), ALERTS, "GET", True),  # case-insensitive
        (bearer("Discovery.read"), ALERTS, "POST", True),
        (bearer("Settings.manage"), ALERTS, "GET", False),
        (bearer(), ALERTS, "GET", False),
        (bearer("Investigation.read", "Investigation.manage", kind="user"), ALERTS, "GET", True),
        (bearer("Settings.read", kind="user"), ALERTS, "GET", False),
        (bearer("Discovery.read"), "/api/discovery/streams/", "GET", True),
        (bearer("Investigation.manage"), "/api/discovery/streams/", "GET", False),
        (bearer("Discovery.read"), "/api/v1/discovery/upload_url/?", "GET", False),
        (bearer("Discovery.read"), "/api/discovery_block_scripts/", "GET", False),
        (bearer("Discovery.manage"), "/api/discovery_block_scripts/", "GET", True),
        # No Bearer token may use the Files API, whatever it holds (https://learn.microsoft.com/defender-cloud-apps/api-authentication-application)
        (
            bearer("Investigation.manage", "Discovery.manage", "Settings.manage"),
            "/api/v1/files/",
            "GET",
            False,
        ),
        (bearer("Investigation.manage", kind="user"), "/api/v1/files/", "POST", False),
        (f"Token {LEGACY_READ}", "/api/v1/files/", "GET", True),
        (f"Token {LEGACY_READ}", "/api/discovery/streams/", "GET", False),
    ],
)
def test_permissions_follow_the_documented_table(svc, auth, path, method, allowed):
    query = {"format": "120", "type": "banned"} if "block_scripts" in path else None
    response = call(svc, method, path.rstrip("?"), auth=auth, query=query)
    if allowed:
        assert response.status == 200, response.body
    else:
        assert _is_forbidden(response)


def test_delegated_close_records_the_user(svc):
    alert_id = admin(svc, "GET", "alerts")["alerts"][0]["_id"]
    call(
        svc,
        "POST",
        "/api/v1/alerts/close_true_positive/",
        {"filters": {"id": {"eq": [alert_id]}}},
        auth=bearer("Investigation.manage", kind="user"),
    )
    assert payload(call(svc, "GET", f"{ALERTS}{alert_id}/"))["handledByUser"] == "analyst@contoso.com"


def test_unknown_paths_are_404_before_auth(svc):
    assert call(svc, "GET", "/api/v1/nothing/", auth=None).status == 404
    assert call(svc, "GET", "/api/v1/discovery/streams/").status == 404  # the streams path has no v1
    assert call(svc, "GET", "/", auth=None).status == 404


# -- 429 -----------------------------------------------------------------------------------------------------


def test_rolling_window_throttle_with_documented_body_and_retry_after():
    clock = Clock()
    svc = make_service(clock=clock, rate_limit=3, rate_window_s=2.0)
    for _ in range(3):
        assert call(svc, "GET", ALERTS).status == 200
        clock.advance(0.5)
    throttled = call(svc, "GET", ALERTS)
    assert throttled.status == 429
    message = payload(throttled)["error"]["message"]
    assert re.fullmatch(r"Request was throttled\. Expected available in \d+ seconds\.", message)
    seconds = int(message.split(" ")[-2])
    assert throttled.headers["Retry-After"] == str(seconds) and seconds >= 1
    clock.advance(0.5)  # the first request (t=0) leaves the window at t=2
    assert call(svc, "GET", ALERTS).status == 200
    assert call(svc, "GET", ALERTS).status == 429
    stats = admin(svc, "GET", "throttle/stats")
    assert stats["throttled"] == 2 and stats["allowed"] == 4 and stats["limit"] == 3


def test_retry_after_counts_down_with_the_window():
    clock = Clock()
    svc = make_service(clock=clock, rate_limit=2, rate_window_s=60.0)
    call(svc, "GET", ALERTS)
    call(svc, "GET", ALERTS)
    assert call(svc, "GET", ALERTS).headers["Retry-After"] == "60"
    clock.advance(45.2)
    assert call(svc, "GET", ALERTS).headers["Retry-After"] == "15"


def test_throttle_is_live_configurable_and_resettable():
    clock = Clock()
    svc = make_service(clock=clock, rate_limit=30, rate_window_s=60.0)
    assert admin(svc, "POST", "throttle", {"limit": 2, "window_s": 1.5}) == {"limit": 2, "window_s": 1.5}
    statuses = [call(svc, "GET", ALERTS).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    admin(svc, "POST", "throttle/reset")
    assert call(svc, "GET", ALERTS).status == 200
    bad = svc.handle_admin(_admin_req("POST", {"limit": 0}), "throttle")
    assert bad.status == 400


def _admin_req(method, body):
    from localdev.simulator.wire import SimRequest

    return SimRequest(method, "/_admin/mda/contoso/throttle", {}, {}, json.dumps(body).encode())


def test_unauthenticated_and_storage_requests_do_not_use_the_budget():
    clock = Clock()
    svc = make_service(clock=clock, rate_limit=2, rate_window_s=60.0)
    url = payload(
        call(svc, "GET", "/api/v1/discovery/upload_url/", query={"filename": "a.log", "source": "SQUID"})
    )
    for _ in range(5):
        assert call(svc, "GET", ALERTS, auth=None).status == 401
        assert call_url(svc, "PUT", url["url"], b"x", {"x-ms-blob-type": "BlockBlob"}).status == 201
    assert call(svc, "GET", ALERTS).status == 200
    assert call(svc, "GET", ALERTS).status == 429


# -- faults and counters -------------------------------------------------------------------------------------


def test_fault_injection_and_counters_are_consulted():
    faults, counters = FaultInjector(sleep=lambda _s: None), Counters()
    svc = make_service(faults=faults, counters=counters)
    faults.add({"service": "mda", "error_rate": 1.0, "status": 503, "count": 1})
    assert call(svc, "GET", ALERTS).status == 503
    assert call(svc, "GET", ALERTS).status == 200
    faults.add({"service": "mda", "throttle_burst": 1})
    storm = call(svc, "GET", ALERTS)
    assert storm.status == 429 and "throttled" in payload(storm)["error"]["message"]
    assert admin(svc, "GET", "throttle/stats")["injected_429"] == 1
    url = payload(
        call(svc, "GET", "/api/v1/discovery/upload_url/", query={"filename": "a.log", "source": "SQUID"})
    )
    faults.add({"service": "blob", "error_rate": 1.0, "status": 500, "count": 1})
    assert call_url(svc, "PUT", url["url"], b"x", {"x-ms-blob-type": "BlockBlob"}).status == 500
    assert call_url(svc, "PUT", url["url"], b"x", {"x-ms-blob-type": "BlockBlob"}).status == 201
    snapshot = counters.snapshot()
    assert snapshot["requests"]["mda"]["GET /api/v1/alerts/"] == 3
    assert snapshot["requests"]["mda"]["GET /api/v1/discovery/upload_url/"] == 1
    assert snapshot["requests"]["blob"]["PUT /blob/<id>"] == 2
    assert snapshot["mda_status"]["200"] == 2 and snapshot["mda_status"]["503"] == 1
