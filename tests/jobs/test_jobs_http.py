"""SOAR-style clients over real HTTP: LocalHost (function keys) -> intake -> Azurite queue -> worker ->
simulator (Entra, Key Vault, MDA) -> job status and a signed HTTPS callback. Refusals use real simulator
tokens."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from shared.jobs.store import ROW_KEY
from shared.storage import (
    CONTAINER_DISCOVERY_LOGS,
    QUEUE_JOBS,
    TABLE_JOBS,
    container_client,
    queue_client,
    table_client,
)
from tests.jobs.harness import WEBHOOK_SECRET, Client

TENANT = "contoso"
DAY_MS = 86_400_000


def seed(sim: Any, count: int) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    sim.mda(
        TENANT,
        "POST",
        "alerts/seed",
        {"count": count, "seed": 7, "start_ms": now - 2 * DAY_MS, "end_ms": now - 1000},
    )
    return list(sim.mda(TENANT, "GET", "alerts")["alerts"])


def sim_alert(sim: Any, alert_id: str) -> dict[str, Any]:
    return next(a for a in sim.mda(TENANT, "GET", "alerts")["alerts"] if a["_id"] == alert_id)


def run_to_completion(host: Any, client: Client, job_id: str, *, token: str | None = None) -> dict[str, Any]:
    """Drain the jobs queue (the worker runs), then poll the status URL until the job has finished."""
    for _ in range(20):
        host.drain_queues(timeout=60)
        view = client.status(job_id, token=token)
        assert view.status_code == 200, view.text
        data: dict[str, Any] = view.json()
        if data["status"] in ("succeeded", "failed", "dead_lettered"):
            return data
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {data}")


def accepted(response: Any) -> str:
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    assert response.headers["Location"].endswith(f"/api/jobs/{job_id}")
    return job_id


def test_close_job_end_to_end_with_signed_callback(jobs_env, host, client, receiver):
    sim = jobs_env["sim"]
    alerts = seed(sim, 4)
    ids = [alerts[0]["_id"], alerts[1]["_id"]]
    unknown = "0" * 24
    job_id = accepted(
        client.submit(
            {
                "action": "alerts.close",
                "kind": "benign",
                "ids": [*ids, unknown],
                "reasonId": 5,
                "comment": "ok'd",
                "callbackUrl": receiver.url,
            },
            headers={"X-Correlation-ID": "soar-run-42"},
        )
    )
    data = run_to_completion(host, client, job_id)
    assert data["status"] == "succeeded", data
    assert data["result"]["closed_benign"] == 2 and data["result"]["alertsNotFound"] == [unknown]
    assert data["correlationId"] == "soar-run-42" == data["result"]["correlationId"]
    assert all(sim_alert(sim, i)["resolutionStatusValue"] == 4 for i in ids)
    [delivery] = receiver.for_job(job_id)
    assert delivery.verified
    event = delivery.json()
    assert event["type"] == "job.finished" and event["data"]["status"] == "succeeded"
    assert event["data"]["result"]["closed_benign"] == 2
    assert client.status(job_id).json()["callback"]["status"] == "delivered"


def test_fetch_and_mark_jobs(jobs_env, host, client):
    sim = jobs_env["sim"]
    alerts = seed(sim, 6)
    fetch_id = accepted(client.submit({"action": "alerts.fetch", "window": {"lookback": "7d"}, "limit": 4}))
    fetched = run_to_completion(host, client, fetch_id)
    assert fetched["status"] == "succeeded", fetched
    result = fetched["result"]
    assert (result["count"], result["truncated"]) == (4, True)
    assert {a["tenant"] for a in result["alerts"]} == {TENANT} and all(
        a["raw"]["_id"] for a in result["alerts"]
    )

    target = [a["_id"] for a in alerts[:3]]
    read_id = accepted(client.submit({"action": "alerts.mark_read", "ids": target}))
    marked = run_to_completion(host, client, read_id)
    assert marked["status"] == "succeeded", marked
    assert marked["result"]["marked_read"] + marked["result"]["unchanged"] == 3
    assert all(sim_alert(sim, i)["statusValue"] == 1 for i in target)
    unread_id = accepted(client.submit({"action": "alerts.mark_unread", "ids": target[:1]}))
    assert run_to_completion(host, client, unread_id)["result"]["marked_unread"] == 1
    assert sim_alert(sim, target[0])["statusValue"] == 0


def test_discovery_upload_job(jobs_env, host, client):
    sim = jobs_env["sim"]
    marker = uuid.uuid4().hex
    data = f"2024-05-01 10:00:00,{marker},TRAFFIC,end,10.0.0.1,52.1.2.3,allow,443\n".encode() * 50
    name = f"jobs/{marker}.log"
    container_client(CONTAINER_DISCOVERY_LOGS).upload_blob(name, data, overwrite=True)
    job_id = accepted(
        client.submit(
            {
                "action": "discovery.upload",
                "blob": f"{CONTAINER_DISCOVERY_LOGS}/{name}",
                "source": "PALO_ALTO",
                "stream": "paloalto-hq",
            }
        )
    )
    done = run_to_completion(host, client, job_id)
    assert done["status"] == "succeeded", done
    assert (done["result"]["outcome"], done["result"]["size"]) == ("uploaded", len(data))
    uploads = [
        u for u in sim.mda(TENANT, "GET", "uploads")["uploads"] if u["sha256"] == done["result"]["sha256"]
    ]
    assert uploads and uploads[0]["stream"] == "paloalto-hq"


def test_user_token_runs_on_behalf_of_the_analyst(jobs_env, host, client):
    sim, webhook = jobs_env["sim"], jobs_env["webhook"]
    analyst = sim.users["analyst"]["username"]
    user_token = sim.mint_token(
        app="public", audience=webhook["client_id"], scp="Jobs.Submit access_as_user", user="analyst"
    )
    alerts = seed(sim, 2)
    before = sim.counters().get("tokens", {}).get("on_behalf_of", 0)
    job_id = accepted(
        client.submit(
            {"action": "alerts.close", "kind": "true_positive", "ids": [alerts[0]["_id"]]},
            auth="bearer",
            token=user_token,
        )
    )
    assert user_token not in json.dumps(
        [m.content for m in queue_client(QUEUE_JOBS).peek_messages(max_messages=32)]
    )
    data = run_to_completion(host, client, job_id, token=user_token)
    assert data["status"] == "succeeded", data
    assert (data["context"], data["requestedBy"]["name"]) == ("user", analyst)
    assert sim.counters()["tokens"]["on_behalf_of"] > before
    assert sim_alert(sim, alerts[0]["_id"])["handledByUser"] == analyst
    entity = table_client(TABLE_JOBS).get_entity(job_id, ROW_KEY)
    assert "sealedAssertion" not in entity  # erased once the job finished
    other_user = sim.mint_token(
        app="public", audience=webhook["client_id"], scp="Jobs.Submit", user="mfa_analyst"
    )
    assert client.status(job_id, token=other_user).status_code == 404


def test_user_token_that_expires_while_queued_fails_the_job_cleanly(jobs_env, host, client):
    sim, webhook = jobs_env["sim"], jobs_env["webhook"]
    short = sim.mint_token(
        app="public", audience=webhook["client_id"], scp="Jobs.Submit", user="analyst", lifetime=20
    )
    job_id = accepted(
        client.submit({"action": "alerts.mark_read", "ids": ["a" * 24]}, auth="bearer", token=short)
    )
    data = run_to_completion(host, client, job_id, token=short)  # only the submitter reads the job
    assert (data["status"], data["error"]["code"]) == ("failed", "user_assertion_expired")


def test_idempotency_key_over_http(jobs_env, host, client):
    job = {"action": "alerts.mark_read", "ids": ["b" * 24]}
    key = {"Idempotency-Key": f"soar-{uuid.uuid4().hex}"}
    first = accepted(client.submit(job, headers=key))
    second = client.submit(job, headers=key)
    assert accepted(second) == first and second.headers["Idempotent-Replayed"] == "true"
    queued = [json.loads(m.content)["jobId"] for m in queue_client(QUEUE_JOBS).peek_messages(max_messages=32)]
    assert queued.count(first) == 1
    assert client.submit({**job, "ids": ["c" * 24]}, headers=key).status_code == 422
    host.drain_queues(timeout=30)


def test_refusals_over_http(jobs_env, host, client):
    sim, webhook = jobs_env["sim"], jobs_env["webhook"]
    job = {"action": "alerts.mark_read", "ids": ["d" * 24]}
    msg_id = f"msg_{uuid.uuid4().hex}"
    assert client.submit(job, msg_id=msg_id).status_code == 202
    replay = client.submit(job, msg_id=msg_id)
    stale = client.submit(job, timestamp=int(time.time()) - 360)  # a minute past the 5-minute tolerance
    future = client.submit(job, timestamp=int(time.time()) + 360)  # +301 would flake: a slow hop shrinks it
    wrong_sig = client.submit(job, secret="whsec_" + "QUJD" * 8)
    wrong_aud = client.submit(job, auth="bearer", token=sim.mint_token(app="daemon", roles=["Jobs.Submit"]))
    expired = client.submit(
        job,
        auth="bearer",
        token=sim.mint_token(
            app="daemon", audience=webhook["client_id"], roles=["Jobs.Submit"], expired=True
        ),
    )
    no_role = client.submit(
        job,
        auth="bearer",
        token=sim.mint_token(app="daemon", audience=webhook["client_id"], roles=["Other.Role"]),
    )
    for response, code in (
        (replay, "signature_replayed"),
        (stale, "signature_timestamp_too_old"),
        (future, "signature_timestamp_too_new"),
        (wrong_sig, "signature_mismatch"),
        (wrong_aud, "invalid_token"),
        (expired, "invalid_token"),
    ):
        assert (response.status_code, response.json().get("error")) == (401, code), response.text
    assert (no_role.status_code, no_role.json()["error"]) == (403, "insufficient_role")
    app_token = sim.mint_token(app="daemon", audience=webhook["app_id_uri"], roles=["Jobs.Submit"])
    assert client.submit(job, auth="bearer", token=app_token).status_code == 202
    assert client.submit(job, key=False).status_code == 401  # the host's function key check
    assert client.submit(b"x" * (1024 * 1024 + 10)).status_code == 413
    host.drain_queues(timeout=30)


def test_transient_failures_end_dead_lettered_with_a_callback(jobs_env, host, client, receiver, monkeypatch):
    """Key Vault down for the worker: each delivery fails fast (transient), the queue retries, the poison
    handler dead-letters the message and ends the job; the callback still goes out (key cached at intake)."""
    sim = jobs_env["sim"]
    monkeypatch.setenv("MCAS_AUTH_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("MCAS_AUTH_RETRY_BACKOFF", "0")
    job_id = accepted(
        client.submit({"action": "alerts.fetch", "window": {"lookback": "1h"}, "callbackUrl": receiver.url})
    )
    sim.add_fault(service="keyvault", status=503, error_rate=1.0)
    try:
        data = run_to_completion(host, client, job_id)
    finally:
        sim.clear_faults()
    assert data["status"] == "dead_lettered" and data["error"]["deadLetterId"], data
    assert data["attempts"] == 2
    [delivery] = receiver.for_job(job_id)
    assert delivery.verified and delivery.json()["data"]["status"] == "dead_lettered"


def test_generated_requests_over_real_http_get_only_2xx_or_4xx(jobs_env, host, client):
    """The property test's generator again, smaller, through the host and real storage, Key Vault and JWKS."""
    from hypothesis import HealthCheck, given, settings

    from tests.jobs.strategies import Case, cases

    sim, webhook = jobs_env["sim"], jobs_env["webhook"]
    audience = webhook["client_id"]
    tokens = {
        "app_token": sim.mint_token(app="daemon", audience=audience, roles=["Jobs.Submit"]),
        "user_token": sim.mint_token(app="public", audience=audience, scp="Jobs.Submit", user="analyst"),
        "expired_token": sim.mint_token(app="daemon", audience=audience, roles=["Jobs.Submit"], expired=True),
    }
    statuses: dict[int, int] = {}

    @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=cases(secret=WEBHOOK_SECRET, tokens=tokens))
    def run(case: Case) -> None:
        response = client.session.post(
            f"{client.base}/jobs",
            data=case.body,
            timeout=30,
            headers={**case.headers, "x-functions-key": "jobs-test-function-key"},
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert 200 <= response.status_code < 500, response.text
        assert response.headers["Content-Type"] == "application/json" and response.json()

    run()
    assert statuses.get(202) and statuses.get(400) and statuses.get(401), statuses
    queue_client(QUEUE_JOBS).clear_messages()
