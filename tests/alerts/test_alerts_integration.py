"""Alert retrieval end to end over real HTTPS (simulator: Entra, Key Vault, MDA) and Azurite storage.

Each test uses its own tenant profile name, so checkpoints, blobs and health rows never collide; the MDA
tenant (contoso) and its request budget are shared, as they would be in production.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
import time
from typing import Any

import pytest

from shared.alerts.checkpoints import STREAM_SCHEDULED, Checkpoint, CheckpointConflict, checkpoint_store
from shared.alerts.pull import PullOptions, pull_tenant
from shared.mda.alerts import AlertsApi
from shared.mda.client import client_for
from shared.settings import get_settings
from shared.storage import (
    QUEUE_ALERTS,
    TABLE_HEALTH,
    container_client,
    queue_client,
    table_client,
)
from tests.alerts.fakes import RecordingSink
from tests.fixtures.alerts import blob_ids, seed_alerts

DAY_MS = 86_400_000


@functools.lru_cache(maxsize=1)
def _functions() -> dict[str, Any]:
    import function_app

    return {str(f.get_function_name()): f for f in function_app.app.get_functions()}


def _context() -> Any:
    from localdev.host.invoke import LocalContext

    return LocalContext("test", ".")


def _throttled(sim: Any) -> int:
    stats = sim.mda("contoso", "GET", "throttle/stats")
    return int(stats["throttled"])


def test_timer_function_pulls_to_queue_and_blob_with_health_record(alerts_env, monkeypatch):
    sim, tenant = alerts_env["sim"], alerts_env["tenant"]
    monkeypatch.setenv("MCAS_ALERT_SINKS", "queue,blob")
    monkeypatch.setenv("MCAS_FIRST_FETCH_LOOKBACK", "3d")
    get_settings.cache_clear()
    seeded = seed_alerts(sim, 350, seed=11)
    queue = queue_client(QUEUE_ALERTS)
    queue.clear_messages()
    from azure.functions.timer import TimerRequest

    _functions()["alerts_pull_timer"].get_user_function()(TimerRequest(past_due=False), context=_context())

    expected = sorted(a["_id"] for a in seeded)
    assert sorted(blob_ids(tenant)) == expected
    messages = []
    while batch := list(queue.receive_messages(messages_per_page=32, max_messages=32)):
        for m in batch:
            messages.append(json.loads(m.content))
            queue.delete_message(m)
    assert sorted(m["id"] for m in messages) == expected
    assert all(m["tenant"] == tenant and m["raw"]["_id"] == m["id"] for m in messages)
    assert _throttled(sim) == 0
    rows = list(table_client(TABLE_HEALTH).query_entities(f"PartitionKey eq 'alerts.{tenant}'"))
    assert sorted(r["stream"] for r in rows) == ["alerts", "alerts-changes"]  # closures, then new alerts
    row = next(r for r in rows if r["stream"] == "alerts")
    assert (row["alerts_delivered"], row["pages"], row["throttled_429"], row["error"]) == (350, 4, 0, "")
    assert row["stopped"] == "caught_up" and row["lag_s"] >= 0 and row["start"] <= row["end"]

    # A second run finds nothing new and delivers nothing.
    _functions()["alerts_pull_timer"].get_user_function()(TimerRequest(past_due=True), context=_context())
    assert sorted(blob_ids(tenant)) == expected
    assert queue.peek_messages(max_messages=1) == []


def test_mcasctl_pull_writes_ndjson_and_resumes_from_the_checkpoint(
    alerts_env, monkeypatch, tmp_path, capsys
):
    from mcasctl.cli import main

    sim = alerts_env["sim"]
    monkeypatch.setenv("MCAS_ALERT_SINKS", "")
    seeded = seed_alerts(sim, 230, seed=11, days=5)
    out = tmp_path / "alerts.ndjson"
    before = time.time() * 1000
    assert main(["alerts", "pull", "--lookback", "3d", "--out", str(out)]) == 0
    after = time.time() * 1000
    summary = capsys.readouterr().out
    got = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    surely = {a["_id"] for a in seeded if a["timestamp"] >= after - 3 * DAY_MS}
    maybe = {a["_id"] for a in seeded if a["timestamp"] >= before - 3 * DAY_MS}
    assert surely <= set(got) <= maybe and len(got) == len(set(got)) and len(surely) > 50
    assert f"alerts={len(got)}" in summary and "429s=0" in summary

    new = sim.mda("contoso", "POST", "alerts/add", {"count": 3})
    assert main(["alerts", "pull", "--since", "2020-01-01T00:00:00Z", "--out", str(out), "--overwrite"]) == 0
    again = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(again) == sorted(new["ids"])  # --since is ignored once a checkpoint exists


def test_mcasctl_pull_fails_with_one_line_without_any_sink(alerts_env, monkeypatch, capsys):
    from mcasctl.cli import main

    monkeypatch.setenv("MCAS_ALERT_SINKS", "")
    assert main(["alerts", "pull"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "MCAS_ALERT_SINKS" in err


def test_many_alerts_in_one_millisecond_over_https(alerts_env):
    """Page boundaries inside a 250-alert burst: no duplicate, no loss (real server filters `id.neq`)."""
    sim, tenant = alerts_env["sim"], alerts_env["tenant"]
    ts = int(time.time() * 1000) - 5000
    sim.mda("contoso", "POST", "alerts/add", {"count": 7, "timestamp": ts - 1})
    sim.mda("contoso", "POST", "alerts/add", {"count": 250, "timestamp": ts})
    sim.mda("contoso", "POST", "alerts/add", {"count": 7, "timestamp": ts + 1})
    profile = get_settings().tenant(tenant)
    sink = RecordingSink()
    api = AlertsApi(client_for(profile))
    result = pull_tenant(
        profile,
        PullOptions(start_ms=ts - 10),
        api=api,
        store=checkpoint_store(),
        sinks=[sink],
        deadline=api.client.deadline_in(60),
    )
    assert result.ok and result.alerts == 264 == len(set(sink.ids)) and result.pages == 3


def test_alerts_arriving_mid_pull_over_https(alerts_env):
    sim, tenant = alerts_env["sim"], alerts_env["tenant"]
    seeded = seed_alerts(sim, 420, seed=11, days=1)
    profile = get_settings().tenant(tenant)
    sink, added = RecordingSink(), list[str]()

    def arrive(batch, cp):
        if len(added) < 3:
            added.extend(sim.mda("contoso", "POST", "alerts/add", {"count": 15})["ids"])

    api = AlertsApi(client_for(profile))
    store = checkpoint_store()
    start = min(a["timestamp"] for a in seeded)
    for _ in range(2):
        pull_tenant(
            profile,
            PullOptions(start_ms=start),
            api=api,
            store=store,
            sinks=[sink],
            deadline=api.client.deadline_in(60),
            on_page=arrive,
        )
    assert sorted(sink.ids) == sorted([a["_id"] for a in seeded] + added)


def test_checkpoint_etag_race_on_table_storage(alerts_env):
    """Two writers from the same ETag: exactly one wins; two concurrent pulls never deliver an alert twice."""
    sim, tenant = alerts_env["sim"], alerts_env["tenant"]
    store = checkpoint_store()
    first = store.save(STREAM_SCHEDULED, f"{tenant}-race", Checkpoint(100))
    store.save(STREAM_SCHEDULED, f"{tenant}-race", first.advanced([("a", 150)]))
    with pytest.raises(CheckpointConflict):
        store.save(STREAM_SCHEDULED, f"{tenant}-race", first.advanced([("b", 160)]))
    with pytest.raises(CheckpointConflict):
        store.save(STREAM_SCHEDULED, f"{tenant}-race", Checkpoint(1))  # insert over an existing row

    seeded = seed_alerts(sim, 600, seed=11, days=1)
    profile = get_settings().tenant(tenant)
    start = min(a["timestamp"] for a in seeded)
    sinks = [RecordingSink(), RecordingSink()]
    from concurrent.futures import ThreadPoolExecutor

    def run(i: int):
        api = AlertsApi(client_for(profile))
        return pull_tenant(
            profile,
            PullOptions(start_ms=start, wait_for_lease=True),
            api=api,
            store=checkpoint_store(),
            sinks=[sinks[i]],
            deadline=api.client.deadline_in(60),
        )

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, range(2)))
    delivered = sinks[0].ids + sinks[1].ids
    assert sorted(delivered) == sorted(a["_id"] for a in seeded)  # all, and none twice
    assert all(r.ok for r in results) and _throttled(sim) == 0


def test_429_is_waited_out_and_counted(alerts_env, monkeypatch):
    """The server's budget is smaller than ours: 429s arrive, are waited out as told, and nothing is lost."""
    sim, tenant = alerts_env["sim"], alerts_env["tenant"]
    sim.mda("contoso", "POST", "throttle", {"limit": 2, "window_s": 1})
    seeded = seed_alerts(sim, 450, seed=11, days=1)
    profile = get_settings().tenant(tenant)
    sink = RecordingSink()
    api = AlertsApi(client_for(profile))
    result = pull_tenant(
        profile,
        PullOptions(start_ms=min(a["timestamp"] for a in seeded)),
        api=api,
        store=checkpoint_store(),
        sinks=[sink],
        deadline=api.client.deadline_in(60),
    )
    assert result.ok and sorted(sink.ids) == sorted(a["_id"] for a in seeded)
    assert result.throttled >= 1 and result.throttled == _throttled(sim)


def test_close_reports_alerts_not_found_and_sends_the_documented_body(alerts_env):
    sim, tenant = alerts_env["sim"], alerts_env["tenant"]
    ids = sim.mda("contoso", "POST", "alerts/add", {"count": 2})["ids"]
    unknown = "0123456789abcdef01234567"
    api = AlertsApi(client_for(get_settings().tenant(tenant)))
    result = api.close(
        "benign", [*ids, unknown], reason_id=5, comment="confirmed", send_feedback=True, feedback_text="fine"
    )
    assert (result.closed, result.not_found) == (2, [unknown])
    call = sim.mda("contoso", "GET", "alerts/feedback")["feedback"][-1]
    assert call["kind"] == "benign" and call["reasonId"] == 5 and call["comment"] == "confirmed"
    assert call["sendFeedback"] is True and call["feedbackText"] == "fine"
    states = {a["_id"]: a["resolutionStatusValue"] for a in sim.mda("contoso", "GET", "alerts")["alerts"]}
    assert [states[i] for i in ids] == [4, 4]


def test_close_is_not_retried_blindly_after_a_server_error(alerts_env):
    """A 500 on close is ambiguous: the client re-reads the alerts and closes only those still open, once."""
    sim, tenant = alerts_env["sim"], alerts_env["tenant"]
    ids = sim.mda("contoso", "POST", "alerts/add", {"count": 3})["ids"]
    api = AlertsApi(client_for(get_settings().tenant(tenant)))
    api.close("false_positive", ids[:1], reason_id=0)  # one already closed before the failure
    sim.add_fault(service="mda", status=500, error_rate=1.0, count=1, path_prefix="/api/v1/alerts/close_")
    result = api.close("false_positive", ids, reason_id=1)
    assert result.rechecks == 1 and result.closed == 2 and result.confirmed_by_recheck == ids[:1]
    calls = sim.mda("contoso", "GET", "alerts/feedback")["feedback"]
    assert [c["ids"] for c in calls] == [ids[:1], ids[1:]]  # the failed call never reached the handler


def test_mcasctl_close(alerts_env, capsys):
    from mcasctl.cli import main

    sim = alerts_env["sim"]
    ids = sim.mda("contoso", "POST", "alerts/add", {"count": 2})["ids"]
    assert main(["alerts", "close", "true-positive", *ids, "--comment", "real"]) == 0
    assert "closed 2 of 2" in capsys.readouterr().out
    assert main(["alerts", "close", "benign", "ffffffffffffffffffffffff", "--reason", "2"]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["alerts", "close", "benign", ids[0], "--reason", "0"]) == 1  # 0 is not a benign reason
    assert "reason id" in capsys.readouterr().err


def test_queue_job_pulls_a_window_and_invalid_jobs_are_dead_lettered(alerts_env, monkeypatch):
    from azure.functions.queue import QueueMessage

    from shared.deadletters import letter_id
    from shared.storage import CONTAINER_DEAD_LETTERS, QUEUE_ALERT_PULL_JOBS

    sim, tenant = alerts_env["sim"], alerts_env["tenant"]
    seeded = seed_alerts(sim, 160, seed=11, days=1)
    stamps = sorted(a["timestamp"] for a in seeded)
    since, until = stamps[20], stamps[120]
    job = {
        "tenant": tenant,
        "since": since,
        "until": until,
        "filters": {"severity": {"eq": [0, 1, 2, 3]}},
        "job_id": "job-1",
    }
    function = _functions()["alerts_pull_job"].get_user_function()

    def handler(msg: QueueMessage) -> None:
        function(msg, context=_context())

    handler(QueueMessage(id="m1", body=json.dumps(job).encode(), dequeue_count=1))
    expected = sorted(a["_id"] for a in seeded if since <= a["timestamp"] <= until)
    got = list(blob_ids(tenant))
    assert sorted(got) == expected
    handler(QueueMessage(id="m1", body=json.dumps(job).encode(), dequeue_count=2))  # redelivered: no re-pull
    assert sorted(blob_ids(tenant)) == expected

    bad = b'{"tenant": 5, "lookback": "soon"}'
    handler(QueueMessage(id="m-bad", body=bad, dequeue_count=1))  # must not raise
    letter = (
        container_client(CONTAINER_DEAD_LETTERS)
        .download_blob(f"{letter_id(QUEUE_ALERT_PULL_JOBS, 'm-bad', bad.decode())}.json")
        .readall()
    )
    assert "invalid alert pull job" in json.loads(letter)["reason"]


class _Receiver:
    """A loopback HTTPS webhook receiver (test CA cert) that verifies Standard Webhooks signatures."""

    def __init__(self, pki: Any, key: bytes, script: list[int]) -> None:
        import http.server
        import ssl
        import threading

        from shared.standard_webhooks import verify

        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = script.pop(0) if script else 200
                try:
                    verify(body, dict(self.headers.items()), [key])
                    ok = True
                except Exception:
                    ok = False
                receiver.received.append(
                    {"id": self.headers["webhook-id"], "ok": ok, "status": status, "body": json.loads(body)}
                )
                self.send_response(status if ok else 401)
                self.send_header("Content-Length", "0")
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(pki.cert_file), str(pki.key_file))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/hooks/mcas"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_sink_signs_retries_and_keeps_the_id_stable(alerts_env, monkeypatch, simulator_pki):
    sim, tenant = alerts_env["sim"], alerts_env["tenant"]
    key = secrets.token_bytes(32)
    sim.set_secret("mcas-alert-webhook-secret", "whsec_" + base64.b64encode(key).decode())
    receiver = _Receiver(simulator_pki, key, [503, 429, 200])
    try:
        monkeypatch.setenv("MCAS_ALERT_SINKS", "webhook")
        monkeypatch.setenv("MCAS_ALERT_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("MCAS_FIRST_FETCH_LOOKBACK", "2d")
        get_settings.cache_clear()
        seeded = seed_alerts(sim, 150, seed=11, days=1)
        from shared.alerts.pull import run_scheduled

        results = run_scheduled()
        assert results[0].ok and results[0].alerts == 150
        got = receiver.received
        assert all(r["ok"] for r in got) and [r["status"] for r in got][:3] == [503, 429, 200]
        assert got[0]["id"] == got[1]["id"] == got[2]["id"]  # retries of one page keep their webhook-id
        delivered = [a["id"] for r in got if r["status"] == 200 for a in r["body"]["data"]["alerts"]]
        assert sorted(delivered) == sorted(a["_id"] for a in seeded)
        assert got[-1]["body"]["type"] == "mcas.alerts.page" and got[-1]["body"]["data"]["tenant"] == tenant
    finally:
        receiver.close()
    assert os.environ.get("MCAS_ALERT_WEBHOOK_URL") == receiver.url
