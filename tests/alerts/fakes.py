"""In-process stand-ins for unit tests: the simulator's alert store behind a real `MdaClient`, fake clocks,
recording sinks. No sockets, so engine behaviour is tested in milliseconds; the same scenarios run over real
HTTPS in the integration tests."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import requests

from localdev.simulator.mda_alerts import AlertStore
from localdev.simulator.mda_common import ApiError as SimApiError
from localdev.simulator.seed import AlertFactory
from shared.alerts.sinks import AlertBatch
from shared.mda.alerts import AlertsApi
from shared.mda.client import MdaClient, RetryPolicy
from shared.settings import TenantProfile

BASE = "https://contoso.us2.portal.cloudappsecurity.com"
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class FakeClock:
    """Monotonic and wall clock in one; sleeping advances it."""

    def __init__(self, start: float = T0_MS / 1000 + 7 * 86400) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


class FakeCredential:
    def authorization_header(self) -> str:
        return "Bearer fake"

    def invalidate(self) -> None:
        return None


def response(status: int, body: Any) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode()
    r.headers["Content-Type"] = "application/json"
    return r


class StoreSession:
    """Serves the alert endpoints from the simulator's `AlertStore` in process."""

    def __init__(self, store: AlertStore, *, ignore_neq: bool = False) -> None:
        self.store = store
        self.ignore_neq = ignore_neq
        self.calls: list[tuple[str, str, Any]] = []
        self.inject: list[Any] = []  # responses / exceptions served before the store answers
        self.inject_prefix = "/"  # ...only for paths starting with this
        self.after_call: Callable[[str, str], None] | None = None

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        path = url.removeprefix(BASE)
        body = kwargs.get("json")
        self.calls.append((method, path, body))
        try:
            if self.inject and path.startswith(self.inject_prefix):
                item = self.inject.pop(0)
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, requests.Response):
                    return item
                if callable(item):  # applied by the "server" but the answer is lost: ambiguous
                    answer: requests.Response = item(method, path, body)
                    return answer
            return self._serve(method, path, body)
        finally:
            if self.after_call is not None:
                self.after_call(method, path)

    def _serve(self, method: str, path: str, body: Any) -> requests.Response:
        try:
            if path == "/api/v1/alerts/":
                params = dict(body or {})
                if self.ignore_neq and isinstance(params.get("filters"), dict):
                    filters = dict(params["filters"])
                    if "id" in filters:
                        filters["id"] = {k: v for k, v in filters["id"].items() if k != "neq"}
                        if not filters["id"]:
                            del filters["id"]
                    params["filters"] = filters
                return response(200, self.store.list_alerts(params))
            close = re.fullmatch(r"/api/v1/alerts/close_(benign|false_positive|true_positive)/", path)
            if close:
                return response(200, self.store.close(close.group(1), dict(body or {}), handled_by="test"))
            single = re.fullmatch(r"/api/v1/alerts/([0-9a-f]{24})/(read/|unread/)?", path)
            if single:
                if single.group(2):
                    return response(200, self.store.mark(single.group(1), read=single.group(2) == "read/"))
                return response(200, self.store.get(single.group(1)))
        except SimApiError as exc:
            return response(exc.status, exc.payload)
        return response(404, {"detail": "Not found."})


def make_store(clock: FakeClock) -> tuple[AlertStore, AlertFactory]:
    store = AlertStore(clock=clock)
    factory = AlertFactory(seed=7, portal_url=BASE, context_id="00000000-0000-4000-8000-000000000001")
    return store, factory


def fake_client(session: Any, clock: FakeClock | None = None, **kwargs: Any) -> MdaClient:
    """A real `MdaClient` over `session` (anything with `request`), on a fake clock whose sleeps are instant,
    with a fake credential and fixed jitter."""
    clock = clock or FakeClock()
    return MdaClient(
        BASE, FakeCredential(), session=session, clock=clock, sleep=clock.sleep, rng=lambda: 0.5, **kwargs
    )


def make_api(session: StoreSession, clock: FakeClock, **kwargs: Any) -> AlertsApi:
    retry = RetryPolicy(max_attempts=3, backoff_base_s=0.01, backoff_cap_s=0.01)
    return AlertsApi(fake_client(session, clock, retry=retry, **kwargs))


def profile(name: str = "contoso") -> TenantProfile:
    return TenantProfile(name=name, api_url=BASE, tenant_id="tid", client_id="cid")


class RecordingSink:
    def __init__(self, name: str = "recording", order: int = 10) -> None:
        self.name = name
        self.order = order
        self.batches: list[AlertBatch] = []
        self.fail_on: set[int] = set()  # 1-based delivery attempt numbers that fail
        self.attempts = 0

    def deliver(self, batch: AlertBatch, *, deadline: float | None) -> None:
        from shared.alerts.sinks import SinkError

        self.attempts += 1
        if self.attempts in self.fail_on:
            raise SinkError(self.name, "refused (test)")
        self.batches.append(batch)

    @property
    def ids(self) -> list[str]:
        return [a["id"] for b in self.batches for a in b.alerts]
