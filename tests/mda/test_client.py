"""MdaClient request policies, with a scripted session and a fake clock (no network, milliseconds)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from shared.errors import TerminalError, TransientError
from shared.mda.client import MdaClient, RequestStats, RetryPolicy
from shared.mda.errors import (
    ApiUnavailableError,
    AuthError,
    BadRequestError,
    BudgetExhaustedError,
    NotFoundError,
    ServerError,
    ThrottledError,
    is_ambiguous,
)
from shared.ratelimit import LocalRateLimiter

BASE = "https://contoso.us2.portal.cloudappsecurity.com"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeCredential:
    def __init__(self) -> None:
        self.version = 1
        self.invalidations = 0

    def authorization_header(self) -> str:
        return f"Bearer token-v{self.version}"

    def invalidate(self) -> None:
        self.invalidations += 1
        self.version += 1


def response(status: int, body: Any = None, headers: dict[str, str] | None = None, text: str | None = None):
    r = requests.Response()
    r.status_code = status
    if text is not None:
        r._content = text.encode()
        r.headers["Content-Type"] = "text/plain"
    elif body is not None:
        r._content = json.dumps(body).encode()
        r.headers["Content-Type"] = "application/json"
    else:
        r._content = b""
    r.headers.update(headers or {})
    r.reason = "Reason"
    return r


class ScriptedSession:
    """Answers from a script; each entry is a Response or an exception to raise."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any):
        self.calls.append({"method": method, "url": url, **kwargs})
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


def make(script: list[Any], **kwargs: Any) -> tuple[MdaClient, ScriptedSession, FakeClock, FakeCredential]:
    clock = FakeClock()
    session = ScriptedSession(script)
    cred = FakeCredential()
    client = MdaClient(
        BASE,
        cred,
        session=session,
        clock=clock,
        sleep=clock.sleep,
        rng=lambda: 0.5,
        **kwargs,
    )
    return client, session, clock, cred


def test_success_parses_json_and_sends_auth_and_timeout():
    client, session, _, _ = make([response(200, {"data": [], "hasNext": False})])
    assert client.request("POST", "/api/v1/alerts/", json={"limit": 1}, idempotent=True) == {
        "data": [],
        "hasNext": False,
    }
    call = session.calls[0]
    assert call["url"] == f"{BASE}/api/v1/alerts/"
    assert call["headers"]["Authorization"] == "Bearer token-v1"
    assert call["timeout"] > 0
    assert call["allow_redirects"] is False


def test_text_and_empty_bodies():
    client, _, _, _ = make([response(200, text="block script"), response(200)])
    assert client.request("GET", "/x/", idempotent=True) == "block script"
    assert client.request("POST", "/y/", idempotent=False) is None


def test_429_waits_retry_after_header_then_succeeds():
    throttled = response(
        429,
        {"error": {"message": "Request was throttled. Expected available in 7 seconds."}},
        headers={"Retry-After": "3"},
    )
    client, _, clock, _ = make([throttled, response(200, {"ok": 1})])
    stats = RequestStats()
    assert client.request("GET", "/a/", idempotent=True, stats=stats) == {"ok": 1}
    assert clock.sleeps == [pytest.approx(3 * 1.05)]  # told 3 s + jitter (never less than told)
    assert stats.throttled == 1 and stats.requests == 2


def test_429_body_seconds_used_without_header_and_fallback_60():
    body = {"error": {"message": "Request was throttled. Expected available in 7 seconds."}}
    client, _, clock, _ = make([response(429, body), response(429, {}), response(200, {})])
    client.request(
        "POST", "/close/", idempotent=False
    )  # 429 is a refusal: safe to repeat even when not idempotent
    assert clock.sleeps == [pytest.approx(7 * 1.05), pytest.approx(60 * 1.05)]


def test_429_not_slept_past_deadline():
    client, _, clock, _ = make([response(429, {}, headers={"Retry-After": "30"})])
    with pytest.raises(ThrottledError) as info:
        client.request("GET", "/a/", idempotent=True, deadline=clock() + 10)
    assert info.value.retry_after == 30 and clock.sleeps == []
    assert isinstance(info.value, TransientError)


def test_5xx_retried_with_capped_backoff_for_idempotent_calls():
    client, session, clock, _ = make(
        [response(503, {"detail": "busy"})] * 4 + [response(200, {"ok": True})],
        retry=RetryPolicy(max_attempts=5, backoff_base_s=1.0, backoff_cap_s=3.0),
    )
    assert client.request("GET", "/a/", idempotent=True) == {"ok": True}
    assert clock.sleeps == [0.5, 1.0, 1.5, 1.5]  # full jitter (rng=0.5) of 1, 2, 3 (capped), 3
    assert len(session.calls) == 5


def test_5xx_and_timeouts_not_retried_for_non_idempotent_calls():
    client, session, _, _ = make([response(502, {"detail": "bad gateway"})])
    with pytest.raises(ServerError) as info:
        client.request("POST", "/api/v1/alerts/close_benign/", json={}, idempotent=False)
    assert len(session.calls) == 1 and is_ambiguous(info.value)
    client, session, _, _ = make([requests.ReadTimeout("slow")])
    with pytest.raises(ApiUnavailableError):
        client.request("POST", "/api/v1/alerts/close_benign/", json={}, idempotent=False)
    assert len(session.calls) == 1


def test_connection_errors_retried_then_raised():
    client, session, _, _ = make([requests.ConnectionError("reset")] * 3, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ApiUnavailableError) as info:
        client.request("GET", "/a/", idempotent=True)
    assert len(session.calls) == 3 and info.value.status is None


def test_tls_failures_are_not_retried():
    client, session, _, _ = make([requests.exceptions.SSLError("certificate verify failed")] * 3)
    with pytest.raises(ApiUnavailableError, match="TLS"):
        client.request("GET", "/a/", idempotent=True)
    assert len(session.calls) == 1


def test_401_invalidates_credential_and_retries_once():
    client, session, _, cred = make([response(401, {"detail": "Invalid token"}), response(200, {"ok": 1})])
    assert client.request("POST", "/c/", idempotent=False) == {"ok": 1}
    assert cred.invalidations == 1
    assert session.calls[1]["headers"]["Authorization"] == "Bearer token-v2"
    client, _, _, cred = make([response(401, {"detail": "Invalid token"})] * 2)
    with pytest.raises(AuthError) as info:
        client.request("GET", "/a/", idempotent=True)
    assert info.value.status == 401 and info.value.message == "Invalid token" and cred.invalidations == 1


@pytest.mark.parametrize(
    ("status", "body", "error_type", "message", "code", "correlation"),
    [
        (
            403,
            {"detail": "Insufficient role based permissions", "correlation_id": "c-1"},
            AuthError,
            "Insufficient role based permissions",
            None,
            "c-1",
        ),
        (404, {"detail": "Not found."}, NotFoundError, "Not found.", None, None),
        (
            400,
            {"detail": "bad", "errorMessageCode": "CONSOLE_DISCOVERY_X"},
            BadRequestError,
            "bad",
            "CONSOLE_DISCOVERY_X",
            None,
        ),
    ],
)
def test_error_mapping(status, body, error_type, message, code, correlation):  # noqa: PLR0917
    client, _, _, _ = make([response(status, body)])
    with pytest.raises(error_type) as info:
        client.request("GET", "/a/", idempotent=True)
    err = info.value
    assert (err.status, err.message, err.error_code, err.correlation_id) == (
        status,
        message,
        code,
        correlation,
    )
    assert isinstance(err, TerminalError)


def test_authorization_never_in_error_or_logs(caplog):
    caplog.set_level("DEBUG")
    client, _, _, _ = make([response(500, {"detail": "boom"})], retry=RetryPolicy(max_attempts=2))
    client._session.script.append(response(500, {"detail": "boom"}))  # type: ignore[union-attr]
    with pytest.raises(ServerError) as info:
        client.request("GET", "/a/", idempotent=True)
    assert "token-v" not in str(info.value)
    assert "token-v" not in caplog.text


def test_limiter_gates_every_attempt_and_budget_is_respected():
    clock = FakeClock()
    limiter = LocalRateLimiter(2, 10.0, margin_s=0.0, clock=clock, sleep=clock.sleep)
    client, _, _, _ = make([response(200, {})] * 3, limiter=limiter)
    client._clock = clock
    for _ in range(2):
        client.request("GET", "/a/", idempotent=True)
    with pytest.raises(BudgetExhaustedError):
        client.request("GET", "/a/", idempotent=True, deadline=clock() + 5)
    assert clock.sleeps == []  # refused up front instead of sleeping past the budget
    stats = RequestStats()
    client.request("GET", "/a/", idempotent=True, stats=stats)
    assert clock.sleeps == [10.0] and stats.limiter_wait_s == 10.0


def test_rejects_plain_http_base_url():
    with pytest.raises(ValueError, match="https"):
        MdaClient("http://127.0.0.1:1", FakeCredential())
