"""Malformed answers from the Defender for Cloud Apps API: every one becomes a clear, typed error.

Three layers:
1. in process, hypothesis: arbitrary statuses, content types, bodies and Retry-After values behind a real
   `MdaClient` - every typed operation returns a usable value or raises an `ApiError` (never KeyError,
   TypeError, a JSON decoder's ValueError or RecursionError);
2. over HTTPS, the simulator's `body` fault modes (HTML pages, truncated JSON, empty bodies, missing fields,
   wrong types, huge bodies) on the alert list and on upload_url: a `MalformedResponseError`, and the next
   call (fault retired) succeeds;
3. queue-driven work under a persistent malformed answer: the alert pull job and the discovery upload retry a
   bounded number of times (the host's maxDequeueCount) and then land in the dead-letter store with the
   reason; no retry loop, no lost message.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.discovery.api import MdaDiscoveryApi
from shared.errors import McasError
from shared.mda.alerts import AlertsApi
from shared.mda.client import MdaClient, RetryPolicy
from shared.mda.errors import ApiError, MalformedResponseError
from shared.mda.filters import Filter
from tests.alerts.fakes import fake_client
from tests.fixtures.fuzz_strategies import JSON_VALUES, deep_nesting
from tests.fixtures.simulator import mda_throttle

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))
TENANT = "contoso"


# -- 1. in process ----------------------------------------------------------------------------------------

BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()[:-1]),  # truncated
    st.fixed_dictionaries(
        {"data": st.lists(JSON_VALUES, max_size=3), "hasNext": JSON_VALUES, "total": JSON_VALUES}
    ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"url": JSON_VALUES, "provider": JSON_VALUES}).map(
        lambda v: json.dumps(v).encode()
    ),
    st.sampled_from(
        [b"", b"<html><body>502 Bad Gateway</body></html>", b"\xff\xfe\x00", b"NaN", b"\xef\xbb\xbf{}"]
    ),
    st.binary(max_size=40),
    deep_nesting().map(str.encode),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=bogus-charset",
        "text/html",
        "text/plain; charset=latin-1",
        "application/octet-stream",
        "",
    ]
)
STATUSES = st.sampled_from([200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 429, 500, 502, 503])
RETRY_AFTER = st.one_of(
    st.none(),
    st.sampled_from(["1", "0", "-5", "inf", "nan", "1e400", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"]),
)


class _Answer:
    """Answers every request with a fresh copy of one response (so retries see the same thing)."""

    def __init__(self, status: int, content_type: str, body: bytes, retry_after: str | None) -> None:
        self.status, self.content_type, self.body, self.retry_after = status, content_type, body, retry_after
        self.calls = 0

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls += 1
        r = requests.Response()
        r.status_code = self.status
        r._content = self.body
        r.reason = "Reason"
        if self.content_type:
            r.headers["Content-Type"] = self.content_type
        if self.retry_after is not None:
            r.headers["Retry-After"] = self.retry_after
        r.encoding = requests.utils.get_encoding_from_headers(r.headers)
        return r


def _client(session: _Answer) -> MdaClient:
    retry = RetryPolicy(max_attempts=2, backoff_base_s=0.01, backoff_cap_s=0.01, max_throttle_retries=1)
    return fake_client(session, retry=retry)


OPERATIONS = {
    "query": lambda c: AlertsApi(c).query(Filter().gte("date", 0)),
    "get_alert": lambda c: AlertsApi(c).get_alert("a" * 24),
    "close": lambda c: AlertsApi(c).close("benign", ["a" * 24]),
    "mark_read": lambda c: AlertsApi(c).mark_read("a" * 24),
    "upload_url": lambda c: MdaDiscoveryApi(c).upload_url("f.log", "PALO_ALTO", deadline=None),
    "done_upload": lambda c: MdaDiscoveryApi(c).done_upload("https://x/y", "hq", False, deadline=None),
}


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=STATUSES,
    content_type=CONTENT_TYPES,
    body=BODIES,
    retry_after=RETRY_AFTER,
    operation=st.sampled_from(sorted(OPERATIONS)),
)
def test_any_answer_is_a_value_or_a_typed_error(status, content_type, body, retry_after, operation):
    session = _Answer(status, content_type, body, retry_after)
    try:
        value = OPERATIONS[operation](_client(session))
    except McasError as exc:  # ApiError subclasses, and the discovery API's own TerminalError subclasses
        assert str(exc)
        assert isinstance(exc, ApiError) or operation in ("upload_url", "done_upload"), repr(exc)
        return
    assert 200 <= status < 300, f"{operation} returned {value!r} for HTTP {status}"
    if operation == "query":
        assert isinstance(value.alerts, list) and all(isinstance(a, dict) for a in value.alerts)
        assert isinstance(value.has_next, bool)
    elif operation == "upload_url":
        assert isinstance(value.url, str) and isinstance(value.provider, str)


# -- 2. over HTTPS: the simulator's body modes -----------------------------------------------------------


@pytest.fixture
def api_env(app_env: dict[str, str], simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("MCAS_RATE_LIMIT_PER_MINUTE", "6000")
    # A profile name of its own: checkpoints and health rows never mix with another test's (or the demo's).
    monkeypatch.setenv("MCAS_TENANT_NAME", f"fz{uuid.uuid4().hex[:10]}")
    from shared.caches import reset_all_caches

    reset_all_caches()
    try:
        with mda_throttle(simulator, TENANT, limit=6000, window_s=60):
            yield simulator
    finally:
        reset_all_caches()


def _alerts_api() -> AlertsApi:
    from shared.mda.client import client_for
    from shared.settings import get_settings

    return AlertsApi(client_for(get_settings().default_tenant))


def _discovery_api() -> MdaDiscoveryApi:
    from shared.settings import get_settings

    return MdaDiscoveryApi.for_profile(get_settings().default_tenant)


MODES = [
    ({"body": "html"}, "no data list"),
    ({"body": "html", "status": 200}, "no data list"),
    ({"body": "truncated"}, "claims to be JSON"),
    ({"body": "empty"}, "no data list"),
    ({"body": "missing_fields"}, "no data list"),
    ({"body": "missing_fields", "fields": ["data"]}, "no data list"),
    ({"body": "wrong_types"}, "no data list"),
    ({"body": "wrong_types", "fields": ["hasNext"]}, "hasNext is not a boolean"),
    ({"body": "wrong_types", "fields": ["data"]}, "no data list"),
]


@pytest.mark.parametrize(("fault", "message"), MODES, ids=[json.dumps(m[0]) for m in MODES])
def test_alert_list_body_faults_are_malformed_response_errors(api_env, fault, message):
    api_env.mda(TENANT, "POST", "alerts/add", {"count": 3, "timestamp": int(time.time() * 1000) - 5000})
    api_env.add_fault(service="mda", path_prefix="/api/v1/alerts", count=1, **fault)
    api = _alerts_api()
    with pytest.raises(MalformedResponseError, match=message) as caught:
        api.query(Filter().gte("date", 0))
    assert caught.value.status == 200 and caught.value.path == "/api/v1/alerts/"
    page = api.query(Filter().gte("date", 0))  # the fault is spent: the same call works again
    assert len(page.alerts) >= 3


@pytest.mark.parametrize(
    "fault",
    [
        {"body": "html"},
        {"body": "truncated"},
        {"body": "empty"},
        {"body": "missing_fields", "fields": ["url"]},
        {"body": "wrong_types", "fields": ["provider"]},
    ],
    ids=json.dumps,
)
def test_upload_url_body_faults_are_malformed_response_errors(api_env, fault):
    api_env.add_fault(service="mda", path_prefix="/api/v1/discovery/upload_url", count=1, **fault)
    api = _discovery_api()
    with pytest.raises(MalformedResponseError):
        api.upload_url("fuzz.log", "PALO_ALTO", deadline=None)
    assert api.upload_url("fuzz.log", "PALO_ALTO", deadline=None).url


def test_a_huge_answer_is_refused_without_buffering_it(api_env, monkeypatch):
    """8 MiB against a 1 MiB cap (the production cap is 32 MiB; a page of 100 alerts is well under 1 MB)."""
    from shared.mda import client as mda_client

    monkeypatch.setattr(mda_client, "MAX_RESPONSE_BYTES", 1024 * 1024)
    api_env.add_fault(service="mda", path_prefix="/api/v1/alerts", count=1, body="huge", body_bytes=8 << 20)
    api = _alerts_api()
    with pytest.raises(MalformedResponseError, match="larger than 1048576 bytes"):
        api.query(Filter().gte("date", 0))
    assert isinstance(api.query(Filter().gte("date", 0)).alerts, list)  # the connection pool still works
    assert mda_client.MAX_RESPONSE_BYTES < 2 << 20 and 32 * 1024 * 1024 == 33554432


# -- 3. queue-driven work: bounded retries, then the dead-letter store ------------------------------------

HOST_JSON = {
    "functionTimeout": "00:01:00",
    "extensions": {"queues": {"maxDequeueCount": 2, "visibilityTimeout": "00:00:00", "batchSize": 4}},
}


def _host(*blueprints: Any) -> Any:
    import azure.functions as func

    from localdev.host import LocalHost

    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    for bp in blueprints:
        app.register_functions(bp)
    return LocalHost(app, host_json=HOST_JSON).start(http=False, queues=False, timers=False)


def _letter_with(marker: str, source: str) -> Any:
    from shared.deadletters import list_letters

    found = [x for x in list_letters() if marker in x.body and x.source == source]
    assert len(found) == 1, found
    return found[0]


def test_alert_pull_job_under_a_persistent_malformed_answer_is_dead_lettered(api_env, monkeypatch):
    from functions import alerts
    from shared.storage import QUEUE_ALERT_PULL_JOBS, queue_client

    monkeypatch.setenv("MCAS_ALERT_SINKS", "blob")
    api_env.add_fault(service="mda", path_prefix="/api/v1/alerts", body="html", status=200)
    marker = f"fz-{uuid.uuid4().hex[:12]}"
    host = _host(alerts.bp)
    try:
        for name in (QUEUE_ALERT_PULL_JOBS, f"{QUEUE_ALERT_PULL_JOBS}-poison"):
            queue_client(name).clear_messages()
        queue_client(QUEUE_ALERT_PULL_JOBS).send_message(json.dumps({"job_id": marker, "lookback": "1h"}))
        stats = host.drain_queues(timeout=60)
    finally:
        host.stop()
    assert (stats.failed, stats.poisoned) == (2, 1)  # two attempts (maxDequeueCount), then poison
    letter = _letter_with(marker, f"{QUEUE_ALERT_PULL_JOBS}-poison")
    assert "exhausted its retries" in letter.reason


def test_discovery_upload_under_a_persistent_malformed_answer_is_dead_lettered(api_env):
    from functions import discovery
    from shared.storage import CONTAINER_DISCOVERY_LOGS, QUEUE_DISCOVERY_JOBS, container_client, queue_client

    marker = uuid.uuid4().hex
    container_client(CONTAINER_DISCOVERY_LOGS).upload_blob(f"fuzz/{marker}.log", b"a,b,c\n", overwrite=True)
    api_env.add_fault(service="mda", path_prefix="/api/v1/discovery/upload_url", body="missing_fields")
    job = {
        "action": "discovery.upload",
        "blob": f"{CONTAINER_DISCOVERY_LOGS}/fuzz/{marker}.log",
        "source": "PALO_ALTO",
        "stream": "paloalto-hq",
    }
    host = _host(discovery.bp)
    try:
        for name in (QUEUE_DISCOVERY_JOBS, f"{QUEUE_DISCOVERY_JOBS}-poison"):
            queue_client(name).clear_messages()
        queue_client(QUEUE_DISCOVERY_JOBS).send_message(json.dumps(job))
        stats = host.drain_queues(timeout=60)
    finally:
        host.stop()
    assert (stats.failed, stats.poisoned) == (2, 1)
    letter = _letter_with(marker, f"{QUEUE_DISCOVERY_JOBS}-poison")
    assert letter.reason == "exhausted retries"
