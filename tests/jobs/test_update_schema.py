"""`alerts.update` and alert ids per alert source: what each source can set, and field errors for the rest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import ValidationError
from shared.jobs.graph_actions import graph_close_changes
from shared.jobs.schema import ValidationContext, validate_job

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CTX = ValidationContext(
    now=NOW, tenants=("contoso", "graphy"), graph_tenants=frozenset({"graphy"}), default_tenant="contoso"
)
GRAPH_ID = "da637551227677560813_-961444813"


def errors(body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        validate_job(body, CTX)
    return caught.value.field_errors


def test_graph_tenant_update_takes_every_field_and_graph_ids() -> None:
    spec = validate_job(
        {
            "action": "alerts.update",
            "tenant": "graphy",
            "ids": [GRAPH_ID, GRAPH_ID],
            "status": "inProgress",
            "classification": "truePositive",
            "determination": "compromisedAccount",
            "assignedTo": "alex@contoso.com",
            "comment": "looking",
        },
        CTX,
    )
    assert spec.params["ids"] == [GRAPH_ID]  # case kept, duplicates dropped
    assert (
        spec.params["determination"] == "compromisedAccount"
        and spec.params["assignedTo"] == "alex@contoso.com"
    )
    cleared = validate_job(
        {"action": "alerts.update", "tenant": "graphy", "ids": [GRAPH_ID], "assignedTo": None}, CTX
    )
    assert cleared.params["assignedTo"] is None


def test_mda_tenant_update_is_a_close_and_refuses_what_the_api_cannot_set() -> None:
    spec = validate_job(
        {
            "action": "alerts.update",
            "ids": ["a" * 24],
            "status": "resolved",
            "classification": "falsePositive",
        },
        CTX,
    )
    assert spec.params == {"ids": ["a" * 24], "status": "resolved", "classification": "falsePositive"}
    found = errors(
        {
            "action": "alerts.update",
            "ids": ["a" * 24],
            "status": "inProgress",
            "determination": "malware",
            "assignedTo": "x@y.z",
        }
    )
    assert {"status", "determination", "assignedTo"} <= set(found)
    assert "not supported" in found["assignedTo"]
    assert "classification" in errors({"action": "alerts.update", "ids": ["a" * 24], "status": "resolved"})


def test_unknown_values_and_empty_updates_are_field_errors() -> None:
    found = errors({"action": "alerts.update", "tenant": "graphy", "ids": [GRAPH_ID], "status": "closed"})
    assert "status" in found
    assert "determination" in errors(
        {"action": "alerts.update", "tenant": "graphy", "ids": [GRAPH_ID], "determination": "compromisedUser"}
    )  # the stale prose spelling; Graph's metadata says compromisedAccount
    assert "status" in errors({"action": "alerts.update", "tenant": "graphy", "ids": [GRAPH_ID]})


def test_ids_follow_the_tenant_source() -> None:
    assert "ids[0]" in errors({"action": "alerts.close", "kind": "benign", "ids": [GRAPH_ID]})
    spec = validate_job(
        {"action": "alerts.close", "tenant": "graphy", "kind": "benign", "ids": [GRAPH_ID]}, CTX
    )
    assert spec.params["ids"] == [GRAPH_ID]
    assert "ids[0]" in errors({"action": "alerts.mark_read", "tenant": "graphy", "ids": ["a/b"]})


@pytest.mark.parametrize(
    ("kind", "reason", "expected"),
    [
        ("true_positive", None, {"status": "resolved", "classification": "truePositive"}),
        ("benign", 6, {"determination": "securityTesting"}),
        ("benign", 5, {"determination": "confirmedActivity"}),
        ("benign", 2, {"determination": "other"}),
        ("benign", None, {"classification": "informationalExpectedActivity", "determination": "other"}),
        ("false_positive", 3, {"classification": "falsePositive", "determination": "notMalicious"}),
        ("false_positive", 0, {"determination": "other"}),
    ],
)
def test_close_kinds_map_to_graph_as_the_readme_table_says(
    kind: str, reason: int | None, expected: dict[str, str]
) -> None:
    changes = graph_close_changes(kind, reason)
    assert changes["status"] == "resolved"
    assert expected.items() <= changes.items()
    if kind == "true_positive":
        assert "determination" not in changes  # the analyst's choice stays
