"""Callback delivery against a scripted poster: signed, retried as told, refused for private addresses."""

from __future__ import annotations

from typing import Any

import pytest

from shared import standard_webhooks as sw
from shared.jobs.callback import deliver, fixed_keys
from tests.outbound.fakes import ScriptedPoster, public

JOB_ID = "00000000-0000-4000-8000-00000000abcd"
KEY = b"callback-key-32-bytes-long......"


def _deliver(poster: ScriptedPoster, url: str = "https://soar.example.com/cb", **kwargs: Any) -> Any:
    return deliver(
        url,
        {"data": {"jobId": JOB_ID}},
        msg_id=f"job_{JOB_ID}",
        keys=fixed_keys([KEY]),
        allow_loopback=False,
        poster=poster,
        resolve=public,
        **{"sleep": lambda s: None, **kwargs},
    )


def test_callback_is_signed_with_a_stable_id_and_retried_on_503():
    poster = ScriptedPoster([503, 204])
    outcome = _deliver(poster)
    assert (outcome.status, outcome.attempts, outcome.last_status) == ("delivered", 2, 204)
    for post in poster.requests:
        assert post["headers"]["webhook-id"] == f"job_{JOB_ID}"
        assert post["destination"].address == "93.184.216.34"
        sw.verify(post["data"], post["headers"], [KEY])


def test_callback_gives_up_on_a_4xx_and_after_the_attempts():
    assert _deliver(ScriptedPoster([400])).as_dict() == {
        "status": "failed",
        "attempts": 1,
        "lastStatus": 400,
        "detail": "the receiver answered HTTP 400",
    }
    assert _deliver(ScriptedPoster([500, 502, 503])).attempts == 3


def test_callback_network_failures_read_alike_whatever_happened_at_the_socket():
    """A TLS failure (a port that answers) and a refused connection (a closed port) must look the same."""
    import ssl

    tls = _deliver(ScriptedPoster([ssl.SSLError("bad cert")] * 3)).as_dict()
    refused = _deliver(ScriptedPoster([ConnectionRefusedError("closed")] * 3)).as_dict()
    expected = {"status": "failed", "attempts": 3, "detail": "the receiver could not be reached"}
    assert tls == refused == expected


def test_callback_waits_as_a_429_says_and_stops_at_its_budget():
    sleeps: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    poster = ScriptedPoster([429, 204])
    outcome = _deliver(poster, sleep=sleep, clock=lambda: clock[0])
    assert outcome.status == "delivered" and sleeps == [2.0]  # Retry-After: 2
    poster = ScriptedPoster([429, 204], retry_after="120")
    outcome = _deliver(poster, sleep=sleep, clock=lambda: clock[0], budget_s=60)
    assert (outcome.status, outcome.attempts, len(poster.requests)) == ("failed", 1, 1)


@pytest.mark.parametrize("address", ["10.0.0.7", "127.0.0.1", "169.254.169.254", "::1", "::127.0.0.1"])
def test_callback_host_resolving_to_a_private_address_is_refused(address):
    poster = ScriptedPoster([204])
    outcome = deliver(
        "https://soar.example.com/cb",
        {},
        msg_id="m",
        keys=fixed_keys([KEY]),
        allow_loopback=True,
        poster=poster,
        resolve=lambda host, port: [address],
    )
    assert outcome.status == "refused" and not poster.requests
