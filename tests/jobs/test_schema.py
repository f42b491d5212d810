"""Job validation: every problem is reported against the field that has it, and nothing odd gets through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.discovery.jobs import StorageAccount
from shared.errors import ValidationError
from shared.jobs.schema import MAX_IDS, MAX_MARK_IDS, JobSpec, ValidationContext, validate_job
from shared.timeparse import API_DURATION, parse_duration
from tests.jobs.builders import ALERT_IDS

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CTX = ValidationContext(now=NOW, tenants=("contoso", "fabrikam"))


def errors(body: Any, context: ValidationContext = CTX) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        validate_job(body, context)
    return caught.value.field_errors


def test_close_is_normalised():
    spec = validate_job(
        {
            "action": "alerts.close",
            "kind": "false_positive",
            "ids": [ALERT_IDS[0].upper(), ALERT_IDS[0]],
            "reasonId": 1,
            "comment": "noise",
            "sendFeedback": True,
            "feedbackText": "fb",
            "allowContact": True,
            "contactEmail": "soc@contoso.com",
            "tenant": "fabrikam",
        },
        CTX,
    )
    assert spec.action == "alerts.close" and spec.tenant == "fabrikam"
    assert spec.params == {
        "kind": "false_positive",
        "ids": [ALERT_IDS[0]],
        "reasonId": 1,
        "comment": "noise",
        "sendFeedback": True,
        "allowContact": True,
        "feedbackText": "fb",
        "contactEmail": "soc@contoso.com",
    }
    assert JobSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("kind", "reason", "ok"),
    [
        ("benign", 2, True),
        ("benign", 6, True),
        ("benign", 0, False),
        ("benign", 3, False),
        ("false_positive", 0, True),
        ("false_positive", 3, True),
        ("false_positive", 2, False),
        ("true_positive", 4, False),
        ("benign", True, False),
        ("benign", "2", False),
    ],
)
def test_reason_id_must_be_documented_for_the_kind(kind, reason, ok):
    job = {"action": "alerts.close", "kind": kind, "ids": ALERT_IDS, "reasonId": reason}
    if ok:
        assert validate_job(job, CTX).params["reasonId"] == reason
    else:
        assert "reasonId" in errors(job)


def test_every_bad_field_is_named_at_once():
    found = errors(
        {
            "action": "alerts.close",
            "kind": "maybe",
            "ids": ["nothex", 5],
            "reasonID": 2,
            "feedbackText": "x",
            "contactEmail": "not-an-email",
            "tenant": "nope",
            "callbackUrl": "http://example.com/hook",
        }
    )
    assert set(found) == {
        "kind",
        "ids[0]",
        "ids[1]",
        "reasonID",
        "feedbackText",
        "contactEmail",
        "tenant",
        "callbackUrl",
    }


def test_feedback_rules():
    assert "contactEmail" in errors(
        {
            "action": "alerts.close",
            "kind": "benign",
            "ids": ALERT_IDS,
            "sendFeedback": True,
            "allowContact": True,
        }
    )
    assert "allowContact" in errors(
        {
            "action": "alerts.close",
            "kind": "benign",
            "ids": ALERT_IDS,
            "allowContact": True,
            "contactEmail": "a@b.co",
        }
    )


def test_id_limits():
    too_many = [f"{i:024x}" for i in range(MAX_IDS + 1)]
    assert "ids" in errors({"action": "alerts.close", "kind": "benign", "ids": too_many})
    assert "ids" in errors({"action": "alerts.mark_read", "ids": too_many[: MAX_MARK_IDS + 1]})
    assert "ids" in errors({"action": "alerts.mark_unread", "ids": []})
    assert validate_job({"action": "alerts.mark_unread", "ids": too_many[:MAX_MARK_IDS]}, CTX).params["ids"]


def test_fetch_lookback_becomes_an_absolute_window():
    spec = validate_job(
        {
            "action": "alerts.fetch",
            "window": {"lookback": "90m"},
            "filters": {"severity": ["high", "high", "informational"], "open": True},
        },
        CTX,
    )
    assert spec.params["since"] == "2024-05-01T10:30:00.000Z"
    assert spec.params["until"] == "2024-05-01T12:00:00.000Z"
    assert spec.params["untilMs"] - spec.params["sinceMs"] == 90 * 60 * 1000
    assert spec.params["filters"] == {"severity": ["high", "informational"], "open": True}
    assert spec.params["limit"] == 100


def test_fetch_defaults_to_the_last_24_hours():
    spec = validate_job({"action": "alerts.fetch"}, CTX)
    assert spec.params["since"] == "2024-04-30T12:00:00.000Z"


@pytest.mark.parametrize(
    ("window", "field"),
    [
        ({"since": "2024-05-01T10:00:00"}, "window.since"),  # no offset
        ({"since": "yesterday"}, "window.since"),
        ({"since": "2024-05-01T13:00:00Z"}, "window.since"),  # after until (now)
        ({"until": "2024-05-02T12:00:00Z"}, "window.until"),  # future
        ({"lookback": "200d"}, "window.lookback"),
        ({"lookback": "0m"}, "window.lookback"),
        ({"lookback": 5}, "window.lookback"),
        ({"since": "2024-01-01T00:00:00Z", "lookback": "1h"}, "window"),
        ({"since": "2023-01-01T00:00:00Z"}, "window"),
        ({"from": "2024-05-01T10:00:00Z"}, "window.from"),
        ("24h", "window"),
    ],
)
def test_bad_windows(window, field):
    assert field in errors({"action": "alerts.fetch", "window": window})


def test_bad_filters():
    found = errors(
        {
            "action": "alerts.fetch",
            "limit": 0,
            "filters": {"severity": ["urgent"], "read": "yes", "serviceIds": [-1], "bogus": 1},
        }
    )
    assert set(found) == {
        "limit",
        "filters.severity[0]",
        "filters.read",
        "filters.serviceIds[0]",
        "filters.bogus",
    }


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("90m", 90), ("24h", 1440), ("7d", 10080), ("PT1H30M", 90), ("P1DT12H", 2160), ("2w", 20160)],
)
def test_durations(text, minutes):
    assert parse_duration(text, API_DURATION) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["", "P", "PT", "1y", "-5m", "P1DT", "m5"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text, API_DURATION)


@pytest.mark.parametrize(
    ("url", "loopback", "ok"),
    [
        ("https://soar.example.com/hooks/1", False, True),
        ("http://soar.example.com/hooks/1", False, False),
        ("https://127.0.0.1:8443/cb", False, False),
        ("https://127.0.0.1:8443/cb", True, True),
        ("https://localhost/cb", True, True),
        ("https://10.0.0.5/cb", True, False),
        ("https://169.254.169.254/metadata", True, False),
        ("https://[::1]/cb", False, False),
        ("https://user:pw@soar.example.com/", False, False),
        ("https://intranet/cb", False, False),
        ("https://soar.example.com:99999/", False, False),
    ],
)
def test_callback_urls(url, loopback, ok):
    context = ValidationContext(now=NOW, allow_loopback=loopback)
    job = {"action": "alerts.mark_read", "ids": ALERT_IDS, "callbackUrl": url}
    if ok:
        assert validate_job(job, context).callback_url == url
    else:
        assert "callbackUrl" in errors(job, context)


def test_discovery_job_uses_the_discovery_validators():
    spec = validate_job(
        {
            "action": "discovery.upload",
            "blob": "mcas-discovery-logs/fw/log1.txt",
            "source": "palo_alto",
            "stream": " Firewalls ",
        },
        CTX,
    )
    assert spec.params == {
        "blob": "mcas-discovery-logs/fw/log1.txt",
        "source": "PALO_ALTO",
        "stream": "Firewalls",
        "snapshot": False,
    }
    found = errors(
        {"action": "discovery.upload", "blob": "x", "source": "NOT_A_SOURCE", "stream": "", "snapshot": "yes"}
    )
    assert set(found) == {"blob", "source", "stream", "snapshot"}


def test_discovery_blob_urls_must_be_in_the_apps_own_account():
    account = StorageAccount(name="acct", url="https://acct.blob.core.windows.net/")
    context = ValidationContext(now=NOW, storage_account=account)
    good = {
        "action": "discovery.upload",
        "blob": "https://acct.blob.core.windows.net/logs/a.txt",
        "source": "SQUID",
        "stream": "s",
    }
    assert validate_job(good, context).params["blob"] == good["blob"]
    assert "blob" in errors({**good, "blob": "https://evil.example.com/logs/a.txt"}, context)
    assert "blob" in errors({**good, "blob": good["blob"] + "?sig=x"}, context)


@pytest.mark.parametrize(
    "body", [None, [], "job", 5, {"action": "alerts.delete"}, {"action": ["alerts.close"]}]
)
def test_not_a_job(body):
    with pytest.raises(ValidationError):
        validate_job(body, CTX)
