"""Property: whatever arrives at POST /api/jobs, the answer is 2xx or 4xx with a JSON body - never a 5xx,
never an unhandled exception. 2,000+ generated bodies and header sets through the real blueprint handler
(func.HttpRequest in, func.HttpResponse out), with in-memory storage behind it so the run takes seconds."""

from __future__ import annotations

import json
from collections import Counter

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings

from functions import jobs as jobs_blueprint
from localdev.host.invoke import LocalContext
from shared.jobs import intake
from tests.jobs.builders import SECRET, URL, rig, token
from tests.jobs.strategies import Case, cases

EXAMPLES = int(__import__("os").environ.get("JOBS_PROPERTY_EXAMPLES", "2200"))


def _tokens() -> dict[str, str]:
    return {
        "app_token": token(roles=["Jobs.Submit"]),
        "user_token": token(scp="Jobs.Submit"),
        "expired_token": token(roles=["Jobs.Submit"], lifetime=-300),
    }


def test_intake_answers_only_2xx_or_4xx(monkeypatch: pytest.MonkeyPatch) -> None:
    r = rig()
    monkeypatch.setattr(intake, "default_api", lambda: r.api)
    handler = jobs_blueprint.jobs_submit.build().get_user_function()
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=cases(secret=SECRET, tokens=_tokens()))
    def run(case: Case) -> None:
        request = func.HttpRequest(
            method="POST", url=URL, headers=case.headers, params={}, route_params={}, body=case.body
        )
        response = handler(request, context=LocalContext("jobs_submit", "."))
        statuses[response.status_code] += 1
        assert 200 <= response.status_code < 500, (response.status_code, response.get_body()[:300])
        payload = json.loads(response.get_body())
        if response.status_code == 202:
            assert payload["jobId"] and response.headers["Location"].endswith(payload["jobId"])
        else:
            assert payload["error"] and payload["correlationId"]

    run()
    assert sum(statuses.values()) >= 2000
    # the generator reaches every layer: accepted jobs, schema errors, auth refusals, media type refusals
    assert statuses[202] >= 50 and statuses[400] >= 200 and statuses[401] >= 200 and statuses[415] >= 50, (
        statuses
    )
    # one message per new job; a 202 for an Idempotency-Key already used enqueues nothing
    queued = [json.loads(m)["jobId"] for m in r.queue.messages]
    assert len(set(queued)) == len(queued) <= statuses[202]
