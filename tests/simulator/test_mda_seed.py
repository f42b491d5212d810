"""The alert generator: deterministic, every documented enum value, same-millisecond bursts."""

from __future__ import annotations

import collections
import datetime as dt
import re

from localdev.simulator.seed import INTENTS, RESOLUTION_STATUSES, SEVERITIES, STATUSES, STORIES, AlertFactory

START, END = 1_700_000_000_000, 1_700_000_000_000 + 7 * 86_400_000


def _factory(seed: int = 7) -> AlertFactory:
    return AlertFactory(seed=seed, portal_url="https://contoso.portal.cloudappsecurity.com", context_id="ctx")


def test_same_seed_and_window_give_identical_alerts():
    assert _factory().batch(300, start_ms=START, end_ms=END) == _factory().batch(
        300, start_ms=START, end_ms=END
    )
    assert _factory(1).batch(50, start_ms=START, end_ms=END) != _factory(2).batch(
        50, start_ms=START, end_ms=END
    )


def test_every_documented_enum_value_and_entity_kind_appears():
    alerts = _factory().batch(200, start_ms=START, end_ms=END)
    assert {a["severityValue"] for a in alerts} == set(SEVERITIES)
    assert {a["resolutionStatusValue"] for a in alerts} == set(RESOLUTION_STATUSES)
    assert {a["statusValue"] for a in alerts} == set(STATUSES)
    assert {s for a in alerts for s in a["stories"]} == set(STORIES)
    assert {i for a in alerts for i in a["intent"]} == set(INTENTS)
    kinds = {e["type"] for a in alerts for e in a["entities"]}
    assert {"account", "service", "policyRule", "ip", "user", "device"} <= kinds
    assert {a["isMarkdown"] for a in alerts} == {True, False}


def test_alert_shape_matches_the_documented_object():
    for alert in _factory().batch(100, start_ms=START, end_ms=END):
        assert re.fullmatch(r"[0-9a-f]{24}", alert["_id"])
        assert START <= alert["timestamp"] <= END and isinstance(alert["timestamp"], int)
        assert alert["URL"] == f"https://contoso.portal.cloudappsecurity.com/#/alerts/{alert['_id']}"
        assert isinstance(alert["idValue"], int) and isinstance(alert["threatScore"], int)
        for key in ("title", "description", "contextId", "isSystemAlert", "comment", "evidence", "stories"):
            assert key in alert
        closed = alert["resolutionStatusValue"] != 0
        assert ("resolveTime" in alert) == closed == ("handledByUser" in alert)
        if closed:
            assert alert["resolveTime"].endswith("Z")
            dt.datetime.fromisoformat(alert["resolveTime"].replace("Z", "+00:00"))
        account = next(e for e in alert["entities"] if e["type"] == "account")
        assert account["entityType"] == 2 and account["saas"] == 11161 and account["inst"] == 0


def test_many_alerts_share_one_millisecond_and_output_is_sorted():
    alerts = _factory().batch(2000, start_ms=START, end_ms=END)
    stamps = [a["timestamp"] for a in alerts]
    assert stamps == sorted(stamps)
    sizes = collections.Counter(stamps).values()
    assert max(sizes) >= 5
    assert sum(n for n in sizes if n >= 5) > 200  # a real share of alerts arrive in bursts


def test_at_puts_every_alert_in_the_given_millisecond_with_unique_ids():
    factory = _factory()
    first = factory.batch(10, start_ms=START, end_ms=END)
    burst = factory.at(40, END + 5)
    assert {a["timestamp"] for a in burst} == {END + 5}
    assert len({a["_id"] for a in first + burst}) == 50


def test_twenty_thousand_alerts_have_unique_ids():
    alerts = _factory().batch(20_000, start_ms=START, end_ms=END)
    assert len({a["_id"] for a in alerts}) == 20_000
