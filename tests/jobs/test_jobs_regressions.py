"""Regression tests for bugs the fuzz and chaos suites found in the SOAR jobs. One test per bug, in process.

Each names the failure it pins down; the fuzz- and chaos-marked tests keep exploring.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.errors import ValidationError
from shared.mda.errors import MalformedResponseError
from tests.alerts.fakes import BASE
from tests.mda.fakes import answering_client

# -- a fetch job failed for good ("bad request") when the API returned an unreadable alert ------------


def test_a_fetch_job_treats_an_unreadable_alert_as_the_apis_fault() -> None:
    from shared.jobs.actions import ActionContext, _fetch
    from shared.mda.alerts import AlertsApi
    from shared.mda.client import RequestStats
    from shared.settings import TenantProfile

    unreadable = json.dumps({"data": [{"title": "no id"}], "hasNext": False}).encode()
    api = AlertsApi(answering_client(200, unreadable))
    context = ActionContext(
        profile=TenantProfile(name="t", api_url=BASE, tenant_id="x", client_id="y"),
        user_assertion=None,
        budget_s=10,
        redelivered=False,
        correlation_id="c",
    )
    params = {"sinceMs": 0, "untilMs": 1, "since": "a", "until": "b", "limit": 10}
    with pytest.raises(MalformedResponseError, match="cannot read"):
        _fetch(api, params, context, deadline=1e12, stats=RequestStats())


# -- the jobs worker took {"v": true} and a job id with a trailing newline (`$` matches before \n) ----


@pytest.mark.parametrize(
    "message",
    [
        {"v": True, "jobId": "0f0e0d0c-0b0a-4908-8706-050403020100"},
        {"v": 1, "jobId": "0f0e0d0c-0b0a-4908-8706-050403020100\n"},
    ],
)
def test_the_worker_takes_only_exact_job_references(message: dict[str, Any]) -> None:
    from shared.jobs.worker import _parse

    with pytest.raises(ValidationError):
        _parse(json.dumps(message))
