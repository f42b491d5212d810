"""The one request loop (shared/http_retry.py) under both API clients: the same rules whichever client runs
it, each client's own messages. Scripted HTTP and a fake clock; both clients' own tests (and their
integration tests against the simulator) cover the rest."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from shared.backoff import Backoff
from shared.graph.client import GraphClient
from shared.http_retry import RequestStats, RetryingClient
from shared.mda.client import MdaClient, RetryPolicy
from shared.mda.errors import (
    ApiUnavailableError,
    AuthError,
    BudgetExhaustedError,
    MalformedResponseError,
    ServerError,
    ThrottledError,
)
from tests.alerts.fakes import FakeClock
from tests.graph.test_graph_unit import Script


class Credential:
    """Hands out a new token after every invalidation."""

    def __init__(self) -> None:
        self.version = 1

    def authorization_header(self) -> str:
        return f"Bearer token-{self.version}"

    def invalidate(self) -> None:
        self.version += 1


class Limiter:
    def __init__(self) -> None:
        self.penalties: list[float] = []

    def acquire(self, *, max_wait: float | None = None) -> float:
        return 0.0

    def penalize(self, seconds: float) -> None:
        self.penalties.append(seconds)


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body if body is not None else {}).encode()
    r.headers["Content-Type"] = "application/json"
    r.headers.update(headers or {})
    r.reason = "Reason"
    return r


Build = Callable[[Script, FakeClock, Limiter, Credential], RetryingClient]


def mda(script: Script, clock: FakeClock, limiter: Limiter, credential: Credential) -> RetryingClient:
    return MdaClient(
        "https://contoso.portal.cloudappsecurity.com",
        credential,
        session=script,
        limiter=limiter,
        retry=RetryPolicy(max_attempts=3, backoff_base_s=1.0, backoff_cap_s=4.0),
        clock=clock,
        sleep=clock.sleep,
        rng=lambda: 0.5,
    )


def graph(script: Script, clock: FakeClock, limiter: Limiter, credential: Credential) -> RetryingClient:
    return GraphClient(
        "https://graph.microsoft.com",
        credential,
        session=script,
        limiter=limiter,
        max_attempts=3,
        clock=clock,
        backoff=Backoff(base=1.0, cap=4.0, rng=lambda: 0.5, clock=clock, sleep=clock.sleep),
    )


CLIENTS = pytest.mark.parametrize("build", [mda, graph], ids=["mda", "graph"])


def send(client: RetryingClient, *, idempotent: bool = True, **kwargs: Any) -> Any:
    assert isinstance(client, MdaClient | GraphClient)
    return client.request("GET", "/a/", idempotent=idempotent, **kwargs)


def setup(build: Build, *answers: Any) -> tuple[RetryingClient, Script, FakeClock, Limiter, Credential]:
    script, clock, limiter, credential = Script(*answers), FakeClock(), Limiter(), Credential()
    return build(script, clock, limiter, credential), script, clock, limiter, credential


@CLIENTS
def test_5xx_backs_off_for_idempotent_calls_until_the_attempts_run_out(build: Build) -> None:
    client, script, clock, _, _ = setup(build, *[answer(502, {"message": "bad gateway"})] * 3)
    stats = RequestStats()
    with pytest.raises(ServerError, match="bad gateway"):
        send(client, stats=stats)
    assert len(script.sent) == 3 and clock.sleeps == [0.5, 1.0]  # full jitter (0.5) of 1 s, 2 s
    assert (stats.requests, stats.retries, stats.throttled) == (3, 2, 0)


@CLIENTS
def test_5xx_and_dropped_connections_are_not_repeated_for_non_idempotent_calls(build: Build) -> None:
    client, script, clock, _, _ = setup(build, answer(500), requests.ConnectionError("reset"))
    with pytest.raises(ServerError):
        send(client, idempotent=False)
    with pytest.raises(ApiUnavailableError):
        send(client, idempotent=False)
    assert len(script.sent) == 2 and clock.sleeps == []


@CLIENTS
def test_a_dropped_connection_is_retried_for_idempotent_calls(build: Build) -> None:
    client, script, clock, _, _ = setup(build, requests.ConnectionError("reset"), answer(200, {"ok": 1}))
    assert send(client) == {"ok": 1}
    assert len(script.sent) == 2 and clock.sleeps == [0.5]


@CLIENTS
def test_401_fetches_a_new_token_once(build: Build) -> None:
    client, script, _, _, credential = setup(
        build, answer(401), answer(200, {"ok": 1}), answer(401), answer(401)
    )
    assert send(client) == {"ok": 1}
    assert [s["headers"]["Authorization"] for s in script.sent] == ["Bearer token-1", "Bearer token-2"]
    with pytest.raises(AuthError):
        send(client)
    assert credential.version == 3 and len(script.sent) == 4


@CLIENTS
def test_429_waits_as_told_tells_the_limiter_and_repeats_even_non_idempotent_calls(build: Build) -> None:
    client, _, clock, limiter, _ = setup(
        build, answer(429, headers={"Retry-After": "4"}), answer(200, {"ok": 1})
    )
    stats = RequestStats()
    assert send(client, idempotent=False, stats=stats) == {"ok": 1}
    assert 4.0 <= clock.sleeps[0] <= 4.4 and limiter.penalties == clock.sleeps  # told, plus at most 10 %
    assert (stats.requests, stats.throttled, stats.throttle_wait_s) == (2, 1, clock.sleeps[0])


@CLIENTS
def test_no_wait_runs_past_the_deadline(build: Build) -> None:
    client, script, clock, _, _ = setup(build, answer(429, headers={"Retry-After": "30"}), answer(503))
    with pytest.raises(ThrottledError):
        send(client, deadline=clock() + 10)
    with pytest.raises(ServerError):  # the backoff (0.5 s) would leave less than one attempt's minimum
        send(client, deadline=clock() + 0.9)
    with pytest.raises(BudgetExhaustedError):
        send(client, deadline=clock() + 0.1)
    assert clock.sleeps == [] and len(script.sent) == 2


@CLIENTS
def test_an_answer_over_the_size_cap_is_refused_in_the_clients_words(build: Build) -> None:
    huge = answer(200, {"value": []}, headers={"Content-Length": str(64 << 20)})
    huge._content_consumed = True  # type: ignore[attr-defined]  # buffered: closing it needs no socket
    client, _, _, _, _ = setup(build, huge)
    words = "larger than 33554432 bytes" if isinstance(client, MdaClient) else "too large"
    with pytest.raises(MalformedResponseError, match=words):
        send(client)
