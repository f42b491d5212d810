"""Closing alerts through the MDA alerts API (never a blind retry), reading one and marking alerts read."""

from __future__ import annotations

from typing import Any, cast

import pytest
import requests

from shared.errors import ValidationError
from shared.mda.errors import BadRequestError, ServerError
from tests.alerts.fakes import T0_MS, FakeClock, StoreSession, make_api, make_store, response


def _open_alerts(count: int):
    clock = FakeClock()
    store, factory = make_store(clock)
    alerts = factory.at(count, T0_MS)
    for a in alerts:
        a["resolutionStatusValue"] = 0
    store.add(alerts)
    session = StoreSession(store)
    return store, session, make_api(session, clock), [a["_id"] for a in alerts]


def _close_calls(session: StoreSession) -> list[Any]:
    return [body for method, path, body in session.calls if "close_" in path]


def test_close_chunks_by_100_and_sends_the_documented_body():
    _store, session, api, ids = _open_alerts(250)
    result = api.close(
        "false_positive",
        ids,
        reason_id=1,
        comment="noise",
        send_feedback=True,
        feedback_text="too many",
        allow_contact=True,
        contact_email="soc@contoso.com",
    )
    calls = _close_calls(session)
    assert [len(c["filters"]["id"]["eq"]) for c in calls] == [100, 100, 50]
    assert {k: v for k, v in calls[0].items() if k != "filters"} == {
        "reasonId": 1,
        "comment": "noise",
        "sendFeedback": True,
        "feedbackText": "too many",
        "allowContact": True,
        "contactEmail": "soc@contoso.com",
    }
    assert result.closed == 250 and result.not_found == []


def test_ambiguous_failure_rechecks_and_retries_only_alerts_still_open():
    """The server applied the close but the answer was lost (502): re-read, nothing left open, no re-POST."""
    store, session, api, ids = _open_alerts(5)

    def applied_then_lost(method, path, body):
        store.close("benign", dict(body), handled_by="x")
        return response(502, {"detail": "bad gateway"})

    session.inject = [applied_then_lost]
    result = api.close("benign", ids, reason_id=2)
    assert len(_close_calls(session)) == 1  # never re-sent
    assert result.rechecks == 1 and sorted(result.confirmed_by_recheck) == sorted(ids) and result.closed == 0


def test_ambiguous_failure_retries_only_the_open_ones():
    store, session, api, ids = _open_alerts(4)
    store.close("benign", {"filters": {"id": {"eq": ids[:1]}}}, handled_by="other analyst")
    session.inject = [requests.ReadTimeout("lost")]
    result = api.close("benign", ids, reason_id=2)
    calls = _close_calls(session)
    assert len(calls) == 2 and calls[1]["filters"]["id"]["eq"] == ids[1:]
    assert result.closed == 3 and result.confirmed_by_recheck == ids[:1]


def test_after_an_ambiguous_failure_alerts_closed_otherwise_are_still_closed_as_asked():
    """Two alerts were closed earlier as false positives; asked to close them as benign, the outcome must not
    depend on whether the first call failed: re-read, they are not benign yet, so they are sent again."""
    store, session, api, ids = _open_alerts(4)
    store.close("false_positive", {"filters": {"id": {"eq": ids[:2]}}}, handled_by="earlier")
    session.inject = [response(503, {"detail": "unavailable"})]  # refused before it was processed
    session.inject_prefix = "/api/v1/alerts/close_"
    result = api.close("benign", ids, reason_id=2)
    calls = _close_calls(session)
    assert len(calls) == 2 and calls[1]["filters"]["id"]["eq"] == ids  # all four again, none skipped
    assert result.confirmed_by_recheck == [] and result.closed == 4
    assert {store.get(i)["resolutionStatusValue"] for i in ids} == {4}


def test_a_redelivered_close_job_skips_only_alerts_already_in_the_wanted_state():
    from shared.jobs.actions import ActionContext, _close
    from shared.mda.client import RequestStats

    store, session, api, ids = _open_alerts(3)
    store.close("benign", {"filters": {"id": {"eq": ids[:1]}}}, handled_by="first attempt")
    store.close("true_positive", {"filters": {"id": {"eq": ids[1:2]}}}, handled_by="someone else")
    context = ActionContext(
        profile=cast(Any, None), user_assertion=None, budget_s=60, redelivered=True, correlation_id="c"
    )
    params = {"kind": "benign", "ids": ids, "reasonId": 2}
    result = _close(api, params, context, api.client.deadline_in(60), RequestStats())
    assert result["alreadyClosed"] == ids[:1] and result["closed_benign"] == 2
    assert _close_calls(session)[-1]["filters"]["id"]["eq"] == ids[1:]
    assert {store.get(i)["resolutionStatusValue"] for i in ids} == {4}


def test_persistent_ambiguity_gives_up_after_the_recheck_budget():
    _store, session, api, ids = _open_alerts(2)
    session.inject = [response(500, {}), response(500, {}), response(500, {})]
    session.inject_prefix = "/api/v1/alerts/close_"
    with pytest.raises(ServerError):
        api.close("true_positive", ids, max_rechecks=2)
    assert len(_close_calls(session)) == 3


def test_refusals_are_not_rechecked_and_arguments_are_validated():
    _store, session, api, ids = _open_alerts(1)
    session.inject = [response(400, {"detail": "Invalid reasonId"})]
    with pytest.raises(BadRequestError):
        api.close("benign", ids, reason_id=4)
    assert len(session.calls) == 1
    for kwargs in ({"reason_id": 0}, {"reason_id": 1, "kind": "benign"}):
        with pytest.raises(ValidationError):
            api.close(kwargs.pop("kind", "true_positive"), ids, **kwargs)
    with pytest.raises(ValidationError, match="24 hex"):
        api.close("benign", ["nope"])


def test_get_and_mark_read():
    store, _session, api, ids = _open_alerts(1)
    assert api.get_alert(ids[0])["_id"] == ids[0]
    api.mark_read(ids[0])
    assert store.get(ids[0])["statusValue"] == 1
    api.mark_unread(ids[0])
    assert store.get(ids[0])["statusValue"] == 0
