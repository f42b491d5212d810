"""Alerts endpoints of the simulated MDA API, driven through `MdaService.handle()` (no server needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localdev.simulator.mda import MdaService
from tests.simulator.mda_fakes import LEGACY_READ, MANAGE, Clock, admin, bearer, call, make_service, payload

DAY_MS = 86_400_000


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(clock: Clock) -> MdaService:
    service = make_service(clock=clock)
    admin(service, "POST", "alerts/seed", {"count": 600, "seed": 3})
    return service


def _list(svc: MdaService, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    response = call(svc, "POST", "/api/v1/alerts/", body or {}, **kwargs)
    assert response.status == 200, response.body
    return payload(response)


def _all_alerts(svc: MdaService) -> Any:
    return admin(svc, "GET", "alerts")["alerts"]


# -- listing and paging --------------------------------------------------------------------------------------


def test_default_page_is_100_newest_first_with_the_documented_envelope(svc):
    page = _list(svc)
    assert set(page) == {"data", "hasNext", "total", "max", "moreThanTotal"}
    assert len(page["data"]) == 100 and page["max"] == 100
    assert page["total"] == 600 and page["hasNext"] is True and page["moreThanTotal"] is False
    stamps = [a["timestamp"] for a in page["data"]]
    assert stamps == sorted(stamps, reverse=True)


def test_limit_is_clamped_to_100(svc):
    page = _list(svc, {"limit": 500})
    assert len(page["data"]) == 100 and page["max"] == 100


def test_skip_paging_ascending_visits_every_alert_once(svc):
    seen: list[str] = []
    skip = 0
    while True:
        page = _list(svc, {"skip": skip, "limit": 100, "sortField": "date", "sortDirection": "asc"})
        seen += [a["_id"] for a in page["data"]]
        skip += len(page["data"])
        if not page["hasNext"]:
            break
    assert len(seen) == len(set(seen)) == 600
    assert seen == [a["_id"] for a in _all_alerts(svc)]


def test_skip_beyond_5000_is_refused_unless_reconfigured(svc):
    response = call(svc, "POST", "/api/v1/alerts/", {"skip": 5001})
    assert response.status == 400 and "skip" in payload(response)["detail"]
    assert call(svc, "POST", "/api/v1/alerts/", {"skip": 5000}).status == 200
    admin(svc, "POST", "list_config", {"max_skip": None})
    assert call(svc, "POST", "/api/v1/alerts/", {"skip": 9000}).status == 200


def test_total_cap_sets_more_than_total(svc):
    admin(svc, "POST", "list_config", {"total_cap": 250})
    page = _list(svc)
    assert page["total"] == 250 and page["moreThanTotal"] is True


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/api/v1/alerts/", {"body": {"filters": {"severity": {"eq": 2}}, "limit": 5}}),
        ("GET", "/api/v1/alerts/", {"body": {"filters": {"severity": {"eq": 2}}, "limit": 5}}),
        (
            "GET",
            "/api/v1/alerts/",
            {"query": {"filters": json.dumps({"severity": {"eq": [2]}}), "limit": "5"}},
        ),
        (
            "POST",
            "/api/v1/alerts/",
            {
                "body": "filters=%7B%22severity%22%3A%7B%22eq%22%3A2%7D%7D&limit=5",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
        ),
        # curl -d '{...}' sends JSON under the form content type
        (
            "POST",
            "/api/v1/alerts",
            {
                "body": '{"filters": {"severity": {"eq": 2}}, "limit": 5}',
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
        ),
        ("POST", "/cas/api/v1/alerts/", {"body": {"filters": {"severity": {"eq": 2}}, "limit": 5}}),
        ("GET", "/cas/api/v1/alerts", {"query": {"filters": '{"severity": {"eq": 2}}', "limit": "5"}}),
    ],
)
def test_every_request_style_is_accepted(svc, method, path, kwargs):
    response = call(
        svc, method, path, kwargs.get("body"), query=kwargs.get("query"), headers=kwargs.get("headers")
    )
    assert response.status == 200, response.body
    page = payload(response)
    assert len(page["data"]) == 5 and {a["severityValue"] for a in page["data"]} == {2}


def test_date_filters_use_creation_time(svc, clock):
    alerts = _all_alerts(svc)
    mid = alerts[300]["timestamp"]
    gte = _list(svc, {"filters": {"date": {"gte": mid}}})
    assert gte["total"] == sum(a["timestamp"] >= mid for a in alerts)
    both = _list(svc, {"filters": {"date": {"gte": mid, "lte": mid}}})
    assert both["total"] == sum(a["timestamp"] == mid for a in alerts) >= 1
    gt_lt = _list(svc, {"filters": {"date": {"gt": alerts[0]["timestamp"], "lt": alerts[-1]["timestamp"]}}})
    assert gt_lt["total"] == sum(
        alerts[0]["timestamp"] < a["timestamp"] < alerts[-1]["timestamp"] for a in alerts
    )
    a, b, c, d = (alerts[i]["timestamp"] for i in (10, 50, 400, 450))
    ranged = _list(svc, {"filters": {"date": {"range": [{"start": a, "end": b}, {"start": c, "end": d}]}}})
    assert ranged["total"] == sum(a <= x["timestamp"] <= b or c <= x["timestamp"] <= d for x in alerts)
    now_ms = int(clock() * 1000)
    recent = _list(svc, {"filters": {"date": {"gte_ndays": 2}}})
    assert recent["total"] == sum(x["timestamp"] >= now_ms - 2 * DAY_MS for x in alerts)
    older = _list(svc, {"filters": {"date": {"lte_ndays": 2}}})
    assert older["total"] == 600 - recent["total"]


def test_field_filters_and_them_together(svc):
    alerts = _all_alerts(svc)
    some_ids = [a["_id"] for a in alerts[:7]]
    cases = [
        ({"severity": {"eq": 2}}, lambda a: a["severityValue"] == 2),
        ({"severity": {"neq": [0, 1]}}, lambda a: a["severityValue"] not in (0, 1)),
        ({"resolutionStatus": {"eq": [3, 4, 5]}}, lambda a: a["resolutionStatusValue"] in (3, 4, 5)),
        ({"alertOpen": {"eq": True}}, lambda a: a["resolutionStatusValue"] == 0),
        ({"read": {"eq": False}}, lambda a: a["statusValue"] == 0),
        ({"id": {"eq": some_ids}}, lambda a: a["_id"] in some_ids),
        ({"id": {"eq": some_ids[0]}}, lambda a: a["_id"] == some_ids[0]),
        ({"id": {"neq": some_ids}}, lambda a: a["_id"] not in some_ids),
        ({"entity.service": {"eq": 20893}}, lambda a: any(e.get("id") == 20893 for e in a["entities"])),
        (
            {"severity": {"eq": [1, 2]}, "alertOpen": {"eq": True}, "read": {"eq": True}},
            lambda a: (
                a["severityValue"] in (1, 2) and a["resolutionStatusValue"] == 0 and a["statusValue"] != 0
            ),
        ),
    ]
    for filters, expected in cases:
        page = _list(svc, {"filters": filters, "limit": 100})
        assert page["total"] == sum(1 for a in alerts if expected(a)), filters
        assert all(expected(a) for a in page["data"]), filters


def test_the_documented_risk_and_source_filters_are_accepted(svc):
    """Both are in the documented filter table (without operators or values): accepted, never a 400."""
    alerts = _all_alerts(svc)
    cases = [
        (
            {"risk": {"eq": [alerts[0]["threatScore"]]}},
            lambda a: a["threatScore"] == alerts[0]["threatScore"],
        ),
        ({"risk": {"gte": 50}}, lambda a: a["threatScore"] >= 50),
        ({"risk": {"lt": 20}}, lambda a: a["threatScore"] < 20),
        ({"source": {"eq": "built-in"}}, lambda a: a["isSystemAlert"]),
        ({"source": {"eq": ["policy"]}}, lambda a: not a["isSystemAlert"]),
        ({"source": {"neq": "BUILT_IN"}}, lambda a: not a["isSystemAlert"]),
    ]
    for filters, expected in cases:
        page = _list(svc, {"filters": filters, "limit": 100})
        assert page["total"] == sum(1 for a in alerts if expected(a)) > 0, filters
        assert all(expected(a) for a in page["data"]), filters
    response = call(svc, "POST", "/api/v1/alerts/", {"filters": {"source": {"gte": 1}}})
    assert response.status == 400 and "Invalid operator" in payload(response)["detail"]


def test_sort_by_severity_descending(svc):
    page = _list(svc, {"sortField": "severity", "sortDirection": "desc", "limit": 100})
    severities = [a["severityValue"] for a in page["data"]]
    assert severities == sorted(severities, reverse=True) and severities[0] == 3


@pytest.mark.parametrize(
    "body",
    [
        {"filters": {"nosuchfield": {"eq": 1}}},
        {"filters": {"severity": {"gte": 1}}},
        {"filters": {"severity": 2}},
        {"filters": {"date": {"gte": "yesterday"}}},
        {"sortField": "title"},
        {"sortDirection": "up"},
        {"limit": "many"},
        {"skip": -1},
    ],
)
def test_bad_list_requests_get_400_with_detail(svc, body):
    response = call(svc, "POST", "/api/v1/alerts/", body)
    assert response.status == 400 and payload(response)["detail"]


def test_malformed_json_body_is_a_400(svc):
    response = call(
        svc, "POST", "/api/v1/alerts/", b'{"filters": ', headers={"Content-Type": "application/json"}
    )
    assert response.status == 400 and "JSON parse error" in payload(response)["detail"]


def test_time_paging_with_gte_last_timestamp_and_dedupe_loses_nothing_despite_bursts(svc):
    """The recommended pull (gte last timestamp, dedupe by _id) works even with >100 alerts in one ms."""
    alerts = _all_alerts(svc)
    burst_ms = alerts[-1]["timestamp"] + 10
    admin(svc, "POST", "alerts/add", {"count": 150, "timestamp": burst_ms})
    seen: dict[str, Any] = {}
    cursor = 0
    skip = 0
    for _ in range(50):
        page = _list(
            svc,
            {
                "filters": {"date": {"gte": cursor}},
                "sortField": "date",
                "sortDirection": "asc",
                "skip": skip,
                "limit": 100,
            },
        )
        for alert in page["data"]:
            seen[alert["_id"]] = alert
        if not page["hasNext"]:
            break
        last = page["data"][-1]["timestamp"]
        # advance by time; when a whole page shares one millisecond, page within it with skip
        skip = (
            skip + len(page["data"]) if last == cursor else sum(a["timestamp"] == last for a in page["data"])
        )
        cursor = last
    assert len(seen) == 750


def test_naive_time_paging_with_plus_one_ms_loses_alerts_in_a_burst(svc):
    """Documents the gotcha the simulator must expose: skip is unreliable past 5,000."""
    admin(svc, "DELETE", "alerts")
    admin(svc, "POST", "alerts/add", {"count": 130, "timestamp": 1_799_000_000_000})
    first = _list(svc, {"filters": {"date": {"gte": 0}}, "sortDirection": "asc"})
    second = _list(
        svc, {"filters": {"date": {"gte": first["data"][-1]["timestamp"] + 1}}, "sortDirection": "asc"}
    )
    assert len(first["data"]) + len(second["data"]) == 100  # 30 of the 130 alerts are skipped


def test_alerts_added_while_pulling_show_up_in_later_pages(svc, clock):
    first = _list(svc, {"sortDirection": "asc"})
    clock.advance(1)
    added = admin(svc, "POST", "alerts/add", {"count": 3})
    assert added["timestamp"] == int(clock() * 1000)
    newer = _list(svc, {"filters": {"date": {"gte": added["timestamp"]}}})
    assert {a["_id"] for a in newer["data"]} == set(added["ids"])
    assert _list(svc)["total"] == first["total"] + 3


def test_twenty_thousand_alerts_in_200_pages_is_fast():
    svc = make_service(clock=Clock())
    admin(svc, "POST", "alerts/seed", {"count": 20_000})
    cursor, pages = 0, 0
    seen: set[str] = set()
    while True:
        page = _list(svc, {"filters": {"date": {"gte": cursor}}, "sortDirection": "asc", "limit": 100})
        pages += 1
        seen.update(a["_id"] for a in page["data"])
        if not page["hasNext"]:
            break
        cursor = page["data"][-1]["timestamp"]
        if (
            cursor == page["data"][0]["timestamp"]
        ):  # a full page in one millisecond; not expected with this seed
            cursor += 1
    assert len(seen) == 20_000 and pages >= 200


# -- single alert, read / unread -----------------------------------------------------------------------------


def test_get_one_by_get_and_post_and_404_for_unknown(svc):
    alert = _all_alerts(svc)[5]
    for method in ("GET", "POST"):
        response = call(svc, method, f"/api/v1/alerts/{alert['_id']}/")
        assert response.status == 200 and payload(response) == alert
    assert payload(call(svc, "GET", f"/cas/api/v1/alerts/{alert['_id']}"))["_id"] == alert["_id"]
    missing = call(svc, "GET", "/api/v1/alerts/0123456789abcdef01234567/")
    assert missing.status == 404 and "detail" in payload(missing)


def test_read_and_unread_toggle_status(svc):
    alert = next(a for a in _all_alerts(svc) if a["statusValue"] == 0)
    response = call(svc, "POST", f"/api/v1/alerts/{alert['_id']}/read/")
    assert response.status == 200 and payload(response) == {"_id": alert["_id"], "read": True}
    assert payload(call(svc, "GET", f"/api/v1/alerts/{alert['_id']}/"))["statusValue"] == 1
    assert call(svc, "POST", f"/api/v1/alerts/{alert['_id']}/unread").status == 200
    assert payload(call(svc, "GET", f"/api/v1/alerts/{alert['_id']}/"))["statusValue"] == 0
    assert call(svc, "POST", "/api/v1/alerts/0123456789abcdef01234567/read/").status == 404
    assert call(svc, "GET", f"/api/v1/alerts/{alert['_id']}/read/").status == 405


# -- closing -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason", "resolution"),
    [
        ("benign", 2, 4),
        ("benign", 6, 4),
        ("false_positive", 0, 3),
        ("false_positive", 4, 3),
        ("true_positive", None, 5),
    ],
)
def test_close_sets_resolution_and_reports_unknown_ids(svc, clock, kind, reason, resolution):
    target = next(a for a in _all_alerts(svc) if a["resolutionStatusValue"] == 0)
    body = {
        "filters": {"id": {"eq": [target["_id"], "5f843e9cfe3f6d80fe58a962"]}},
        "comment": "checked",
        "sendFeedback": True,
        "feedbackText": "noisy",
        "allowContact": True,
        "contactEmail": "soc@contoso.com",
    }
    if reason is not None:
        body["reasonId"] = reason
    response = call(svc, "POST", f"/api/v1/alerts/close_{kind}/", body)
    assert response.status == 200
    assert payload(response) == {f"closed_{kind}": 1, "alertsNotFound": ["5f843e9cfe3f6d80fe58a962"]}
    closed = payload(call(svc, "GET", f"/api/v1/alerts/{target['_id']}/"))
    assert closed["resolutionStatusValue"] == resolution and closed["statusValue"] == 2
    assert closed["comment"] == "checked" and closed["handledByUser"] == "app:client-1"
    assert closed["resolveTime"].startswith("2027-01-15T") and closed["resolveTime"].endswith("Z")
    feedback = admin(svc, "GET", "alerts/feedback")["feedback"][-1]
    assert feedback["kind"] == kind and feedback["feedbackText"] == "noisy" and feedback["reasonId"] == reason


def test_close_all_known_ids_has_no_alerts_not_found(svc):
    ids = [a["_id"] for a in _all_alerts(svc)[:3]]
    response = call(
        svc, "POST", "/api/v1/alerts/close_false_positive/", {"filters": {"id": {"eq": ids}}, "reasonId": 1}
    )
    assert payload(response) == {"closed_false_positive": 3}


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("benign", 0),
        ("benign", 3),
        ("false_positive", 2),
        ("false_positive", 5),
        ("true_positive", 1),
        ("benign", "x"),
    ],
)
def test_close_rejects_reason_ids_not_valid_for_the_endpoint(svc, kind, reason):
    before = next(a for a in _all_alerts(svc) if a["resolutionStatusValue"] == 0)
    response = call(
        svc,
        "POST",
        f"/api/v1/alerts/close_{kind}/",
        {"filters": {"id": {"eq": [before["_id"]]}}, "reasonId": reason},
    )
    assert response.status == 400 and "reasonId" in payload(response)["detail"]
    assert payload(call(svc, "GET", f"/api/v1/alerts/{before['_id']}/")) == before  # nothing changed


def test_close_needs_filters_and_post(svc):
    assert call(svc, "POST", "/api/v1/alerts/close_benign/", {"reasonId": 2}).status == 400
    assert call(svc, "GET", "/api/v1/alerts/close_benign/", {"filters": {"id": {"eq": ["x"]}}}).status == 405


def test_close_accepts_a_form_body_and_generic_filters(svc):
    response = call(
        svc,
        "POST",
        "/api/v1/alerts/close_true_positive/",
        "filters=%7B%22severity%22%3A%7B%22eq%22%3A3%7D%7D&comment=bulk",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    count = sum(a["severityValue"] == 3 for a in _all_alerts(svc))
    assert payload(response) == {"closed_true_positive": count}
    assert all(a["resolutionStatusValue"] == 5 for a in _all_alerts(svc) if a["severityValue"] == 3)


def test_reopen_undoes_a_close(svc):
    alert_id = _all_alerts(svc)[0]["_id"]
    call(svc, "POST", "/api/v1/alerts/close_true_positive/", {"filters": {"id": {"eq": [alert_id]}}})
    assert payload(call(svc, "POST", "/api/v1/alerts/reopen/", {"filters": {"id": {"eq": [alert_id]}}})) == {
        "reopened": 1
    }
    alert = payload(call(svc, "GET", f"/api/v1/alerts/{alert_id}/"))
    assert alert["resolutionStatusValue"] == 0 and "resolveTime" not in alert


def test_closing_needs_a_manage_permission(svc):
    alert_id = _all_alerts(svc)[0]["_id"]
    body = {"filters": {"id": {"eq": [alert_id]}}}
    assert (
        call(svc, "POST", "/api/v1/alerts/close_true_positive/", body, auth=f"Token {LEGACY_READ}").status
        == 403
    )
    assert (
        call(
            svc, "POST", "/api/v1/alerts/close_true_positive/", body, auth=bearer("Investigation.read")
        ).status
        == 403
    )
    assert (
        call(svc, "POST", "/api/v1/alerts/close_true_positive/", body, auth=bearer("discovery.manage")).status
        == 200
    )
    assert call(svc, "POST", "/api/v1/alerts/", auth=MANAGE).status == 200
