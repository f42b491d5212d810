"""Alert normalisation (enums incl. unknown values) and the alert schema."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from localdev.simulator.seed import AlertFactory
from shared.alerts.model import ALERT_SCHEMA, SCHEMA_VERSION, normalize
from shared.errors import ValidationError
from tests.alerts.fakes import BASE, T0_MS

DOC_EXAMPLE = {
    "_id": "603f704aaf7417985bbf3b22",
    "contextId": "206e2965-6533-48a6-ba9e-794364a84bf9",
    "description": "<p>html</p>",
    "entities": [
        {
            "entityRole": "Source",
            "entityType": 2,
            "id": "6204bdaf-1",
            "inst": 0,
            "label": "user1",
            "pa": "user1@contoso.com",
            "type": "account",
        },
        {"id": 20940, "label": "Active Directory", "type": "service"},
        {
            "id": "5bfd18bfab73c36ba10d38ca",
            "label": "Honeytoken activity",
            "policyType": "ANOMALY_DETECTION",
            "type": "policyRule",
        },
    ],
    "idValue": 15795464,
    "isSystemAlert": False,
    "resolutionStatusValue": 0,
    "severityValue": 1,
    "statusValue": 1,
    "stories": [0],
    "threatScore": 34,
    "timestamp": 1621941916475,
    "title": "Honeytoken activity",
    "comment": "",
    "handledByUser": "administrator@contoso.com",
    "resolveTime": "2021-05-13T14:02:34.904Z",
    "URL": "https://contoso.portal.cloudappsecurity.com/#/alerts/603f704aaf7417985bbf3b22",
}


def test_normalises_the_documented_example():
    alert = normalize(DOC_EXAMPLE, tenant="contoso")
    assert alert["id"] == DOC_EXAMPLE["_id"] and alert["tenant"] == "contoso"
    assert alert["timestamp"] == "2021-05-25T11:25:16.475Z" and alert["timestamp_ms"] == 1621941916475
    assert (alert["severity"], alert["resolution_status"], alert["status"]) == ("medium", "open", "read")
    assert alert["url"] == DOC_EXAMPLE["URL"] and alert["stories"] == ["threat_detection"]
    assert alert["entities"][0] == {
        "type": "account",
        "id": "6204bdaf-1",
        "label": "user1",
        "role": "Source",
        "email": "user1@contoso.com",
    }
    assert alert["entities"][1]["id"] == "20940"
    assert alert["raw"] == DOC_EXAMPLE  # unchanged (and not copied: nothing mutates it)
    assert alert["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("field", "value", "key", "expected"),
    [
        ("severityValue", 3, "severity", "informational"),
        ("severityValue", 9, "severity", "unknown:9"),
        ("severityValue", "HIGH", "severity", "high"),
        ("resolutionStatusValue", 3, "resolution_status", "false_positive"),
        ("resolutionStatusValue", 4, "resolution_status", "benign"),
        ("resolutionStatusValue", 5, "resolution_status", "true_positive"),
        ("resolutionStatusValue", 42, "resolution_status", "unknown:42"),
        ("statusValue", 2, "status", "archived"),
        ("statusValue", None, "status", "unknown"),
        ("statusValue", "weird", "status", "unknown:weird"),
    ],
)
def test_enums_follow_the_documented_tables_and_keep_unknown_values(field, value, key, expected):
    assert dict(normalize({**DOC_EXAMPLE, field: value}, tenant="t"))[key] == expected


def test_alert_without_id_or_timestamp_is_a_validation_error():
    for broken in ({**DOC_EXAMPLE, "_id": None}, {k: v for k, v in DOC_EXAMPLE.items() if k != "timestamp"}):
        with pytest.raises(ValidationError):
            normalize(broken, tenant="t")


def test_every_simulated_alert_normalises_to_the_schema():
    """The simulator's factory cycles through every enum value; all must fit the published schema."""
    Draft202012Validator.check_schema(ALERT_SCHEMA)
    validator = Draft202012Validator(ALERT_SCHEMA)
    factory = AlertFactory(seed=3, portal_url=BASE, context_id="ctx")
    for raw in factory.batch(300, start_ms=T0_MS, end_ms=T0_MS + 10**7):
        alert = normalize(raw, tenant="contoso")
        validator.validate(alert)
        json.dumps(alert)
    validator.validate(normalize({**DOC_EXAMPLE, "severityValue": 17, "intent": [99]}, tenant="t"))
