"""The local host over real Azurite: queue triggers with host.json semantics, output bindings, timers,
HTTP routes with function keys, async handlers. Each test builds its own small FunctionApp and unique
queue names, so nothing here depends on function_app.py or on other tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
import pytest
import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from localdev.host import LocalHost, app_functions
from shared.errors import ConfigurationError

KEY = "test-function-key"


@dataclass
class Calls:
    queue: list[tuple[dict[str, Any], int | None]] = field(default_factory=list)
    timers: list[func.TimerRequest] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)


def build_app(calls: Calls) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.function_name(name="work")
    @app.queue_trigger(arg_name="msg", queue_name="%TEST_JOBS_QUEUE%", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="out", queue_name="%TEST_DONE_QUEUE%", connection="AzureWebJobsStorage")
    def work(msg: func.QueueMessage, out: func.Out[str]) -> None:
        job = json.loads(msg.get_body())
        calls.queue.append((job, msg.dequeue_count))
        if job.get("fail"):
            raise RuntimeError("job failed on purpose")
        out.set(json.dumps({"done": job["id"]}))
        calls.event.set()

    @app.function_name(name="tick")
    @app.timer_trigger(schedule="%TEST_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=False)
    async def tick(timer: func.TimerRequest) -> None:
        await asyncio.sleep(0)
        calls.timers.append(timer)

    @app.function_name(name="item")
    @app.route(route="items/{item_id:int}", methods=["GET"])
    def item(req: func.HttpRequest) -> func.HttpResponse:
        body = {"id": req.route_params["item_id"], "q": req.params.get("q"), "h": req.headers.get("x-test")}
        return func.HttpResponse(json.dumps(body), mimetype="application/json")

    @app.function_name(name="echo")
    @app.route(route="echo", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    async def echo(req: func.HttpRequest) -> func.HttpResponse:
        await asyncio.sleep(0)
        return func.HttpResponse(req.get_body(), status_code=201, headers={"X-Method": req.method})

    @app.function_name(name="broken")
    @app.route(route="broken", auth_level=func.AuthLevel.ANONYMOUS)
    def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret-looking detail that must not reach the client")

    return app


@pytest.fixture
def queues(azurite) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:12]
    return {"TEST_JOBS_QUEUE": f"jobs-{suffix}", "TEST_DONE_QUEUE": f"done-{suffix}"}


@pytest.fixture
def env(azurite, queues) -> dict[str, str]:
    return {"AzureWebJobsStorage": azurite.connection_string, "TEST_SCHEDULE": "*/1 * * * * *", **queues}


def make_host(env: dict[str, str], calls: Calls, **queue_options: Any) -> LocalHost:
    host_json = {"functionTimeout": "00:00:30", "extensions": {"queues": {"batchSize": 4, **queue_options}}}
    return LocalHost(build_app(calls), env=env, host_json=host_json, function_key=KEY)


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def host(env, calls) -> Iterator[LocalHost]:
    host = make_host(env, calls, maxDequeueCount=3, visibilityTimeout="00:00:00")
    host.start(queues=False, timers=False)
    try:
        yield host
    finally:
        host.stop()


def queue(azurite, name: str, *, encoded: bool = True) -> QueueClient:
    policies: dict[str, Any] = (
        {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": TextBase64DecodePolicy()}
        if encoded
        else {}
    )
    client = QueueClient.from_connection_string(azurite.connection_string, name, **policies)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def contents(client: QueueClient) -> list[str]:
    return [m.content for m in client.peek_messages(max_messages=32)]


# -- queue triggers ------------------------------------------------------------------------------
def test_message_is_processed_output_sent_and_source_deleted(host, azurite, queues, calls):
    jobs = queue(azurite, queues["TEST_JOBS_QUEUE"])
    jobs.send_message(json.dumps({"id": 7}))  # base64 on the wire, like every producer

    stats = host.drain_queues(timeout=10)

    assert (stats.succeeded, stats.failed, stats.poisoned) == (1, 0, 0)
    assert calls.queue == [({"id": 7}, 1)]
    assert contents(jobs) == []
    done = contents(queue(azurite, queues["TEST_DONE_QUEUE"]))
    assert [json.loads(m) for m in done] == [{"done": 7}]


def test_output_binding_is_base64_on_the_wire(host, azurite, queues):
    queue(azurite, queues["TEST_JOBS_QUEUE"]).send_message(json.dumps({"id": 1}))
    host.drain_queues(timeout=10)
    raw = contents(queue(azurite, queues["TEST_DONE_QUEUE"], encoded=False))
    assert [json.loads(base64.b64decode(m)) for m in raw] == [{"done": 1}]


def test_failing_message_is_retried_then_poisoned_with_its_original_body(host, azurite, queues, calls):
    jobs = queue(azurite, queues["TEST_JOBS_QUEUE"])
    jobs.send_message(json.dumps({"id": 9, "fail": True}))
    jobs.send_message(json.dumps({"id": 10}))
    wire = contents(queue(azurite, queues["TEST_JOBS_QUEUE"], encoded=False))[0]

    stats = host.drain_queues(timeout=10)

    assert (stats.succeeded, stats.failed, stats.poisoned) == (1, 3, 1)  # maxDequeueCount=3
    assert [count for job, count in calls.queue if job["id"] == 9] == [1, 2, 3]
    assert contents(jobs) == []
    poison = queue(azurite, f"{queues['TEST_JOBS_QUEUE']}-poison", encoded=False)
    assert contents(poison) == [wire]  # byte-for-byte the original (still base64) message


def test_retry_waits_for_the_visibility_timeout(env, azurite, queues, calls):
    host = make_host(env, calls, maxDequeueCount=2, visibilityTimeout="00:00:01")
    try:
        queue(azurite, queues["TEST_JOBS_QUEUE"]).send_message(json.dumps({"id": 3, "fail": True}))
        started = time.monotonic()
        stats = host.drain_queues(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        host.stop()
    assert (stats.failed, stats.poisoned) == (2, 1)
    assert elapsed >= 0.9  # the second attempt only after visibilityTimeout


def test_message_that_is_not_base64_ends_in_the_poison_queue(host, azurite, queues, calls):
    queue(azurite, queues["TEST_JOBS_QUEUE"], encoded=False).send_message("{not base64}")
    stats = host.drain_queues(timeout=10)
    assert stats.poisoned == 1
    assert calls.queue == []
    assert contents(queue(azurite, f"{queues['TEST_JOBS_QUEUE']}-poison", encoded=False)) == ["{not base64}"]


def test_background_polling_picks_up_new_messages(env, azurite, queues, calls):
    host = make_host(env, calls).start(timers=False)
    try:
        queue(azurite, queues["TEST_JOBS_QUEUE"]).send_message(json.dumps({"id": 42}))
        assert calls.event.wait(timeout=10)
    finally:
        host.stop()
    assert calls.queue == [({"id": 42}, 1)]


def test_missing_queue_name_setting_is_named(env, calls):
    del env["TEST_JOBS_QUEUE"]
    host = make_host(env, calls)
    with pytest.raises(ConfigurationError, match="TEST_JOBS_QUEUE"):
        host.drain_queues(timeout=1)
    host.stop()


# -- timers ------------------------------------------------------------------------------
def test_run_timer_invokes_the_async_timer_once(host, calls):
    host.run_timer("tick")
    assert len(calls.timers) == 1
    assert calls.timers[0].past_due is False
    with pytest.raises(ConfigurationError, match="not a timer"):
        host.run_timer("work")


def test_timer_fires_on_its_schedule(env, calls):
    host = make_host(env, calls).start(http=False, queues=False)  # TEST_SCHEDULE: every second
    try:
        deadline = time.monotonic() + 5
        while len(calls.timers) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        host.stop()
    assert len(calls.timers) >= 2


# -- HTTP ------------------------------------------------------------------------------
def test_function_level_route_needs_the_key(host):
    url = f"{host.api_url}/items/5"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"x-functions-key": "wrong"}, timeout=5).status_code == 401
    assert requests.get(url, params={"code": KEY}, timeout=5).status_code == 200

    response = requests.get(
        url, params={"q": "x"}, headers={"x-functions-key": KEY, "X-Test": "t"}, timeout=5
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"id": "5", "q": "x", "h": "t"}


def test_routes_methods_and_constraints(host):
    headers = {"x-functions-key": KEY}
    assert requests.get(f"{host.api_url}/items/abc", headers=headers, timeout=5).status_code == 404
    assert requests.post(f"{host.api_url}/items/5", headers=headers, timeout=5).status_code == 404
    assert requests.get(f"{host.http_url}/items/5", headers=headers, timeout=5).status_code == 404  # no /api
    assert requests.get(f"{host.api_url}/nothing", timeout=5).status_code == 404


def test_anonymous_async_handler(host):
    response = requests.post(f"{host.api_url}/echo", data=b"hello", timeout=5)
    assert response.status_code == 201
    assert response.content == b"hello"
    assert response.headers["X-Method"] == "POST"


def test_handler_exception_is_a_bare_500(host):
    response = requests.get(f"{host.api_url}/broken", timeout=5)
    assert response.status_code == 500
    assert "secret" not in response.text
    assert "Traceback" not in response.text


def test_functions_with_bindings_the_host_lacks_are_listed_not_run():
    app = func.FunctionApp()

    @app.function_name(name="on_blob")
    @app.blob_trigger(arg_name="blob", path="logs/{name}", connection="AzureWebJobsStorage")
    def on_blob(blob: func.InputStream) -> None: ...

    host = LocalHost(app, env={})
    assert host.summary() == ["on_blob: not runnable locally (blobTrigger trigger)"]
    host.start()  # nothing to serve or poll
    host.stop()


def test_indexing_coexists_with_direct_get_functions_calls():
    """get_functions() is one-shot; app_functions() must neither trip over nor cause that error."""
    app = func.FunctionApp()

    @app.function_name(name="only")
    @app.route(route="only")
    def only(req: func.HttpRequest) -> str:
        return "x"

    app.get_functions()  # someone indexed it first
    assert [f.get_function_name() for f in app_functions(app)] == ["only"]
    assert [f.get_function_name() for f in app.get_functions()] == ["only"]  # and may again
    assert app_functions(app)[0] is app_functions(app)[0]  # cached


def test_a_busy_port_is_a_one_line_configuration_error(env, calls):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        host = LocalHost(build_app(calls), env=env, port=busy.getsockname()[1], function_key=KEY)
        with pytest.raises(ConfigurationError, match="cannot be used"):
            host.start()
