"""The outbound pieces on their own: the address policy, the pinned TLS connection (against a real HTTPS
receiver with the test CA) and the signed sender's retry rules (scripted answers)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from shared import standard_webhooks as sw
from shared.outbound.addresses import Destination, DestinationRefused, checked_destination, is_public
from shared.outbound.pinned import PinnedPoster
from shared.outbound.sender import ALERT_WEBHOOK, CALLBACK, SignedSender
from tests.jobs.harness import WEBHOOK_SECRET
from tests.outbound.fakes import ScriptedPoster, public

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("64:ff9b::5db8:d822", True),  # NAT64 of 93.184.216.34
        ("::ffff:93.184.216.34", True),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # shared address space (carrier NAT)
        ("224.0.0.1", False),
        ("::127.0.0.1", False),  # IPv4-compatible loopback
        ("::ffff:127.0.0.1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::5db8:d822", False),  # local-use NAT64 prefix
        ("2002:0a00:0001::1", False),  # 6to4 of 10.0.0.1
        ("fd00::1", False),
        ("::", False),
    ],
)
def test_public_means_globally_routable_judging_embedded_ipv4(address, expected):
    assert is_public(ipaddress.ip_address(address)) is expected


def test_every_resolved_address_is_checked_and_the_first_is_pinned():
    url = "https://hooks.example.com:8443/x"
    pinned = checked_destination(
        url,
        public_only=True,
        allow_loopback=False,
        resolve=lambda h, p: ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    )
    assert (pinned.host, pinned.port, pinned.address) == ("hooks.example.com", 8443, "93.184.216.34")
    with pytest.raises(DestinationRefused):
        checked_destination(
            url, public_only=True, allow_loopback=True, resolve=lambda h, p: ["93.184.216.34", "127.0.0.1"]
        )
    with pytest.raises(DestinationRefused, match="does not resolve"):
        checked_destination(url, public_only=True, allow_loopback=False, resolve=lambda h, p: [])
    # The operator's own receiver may be private, but loopback still needs the switch and a loopback name.
    assert checked_destination(
        url, public_only=False, allow_loopback=False, resolve=lambda h, p: ["10.1.2.3"]
    )
    with pytest.raises(DestinationRefused, match="loopback"):
        checked_destination(url, public_only=False, allow_loopback=True, resolve=lambda h, p: ["127.0.0.1"])


def test_the_pinned_connection_verifies_the_certificate_against_the_host_name(receiver):
    """The socket goes to the pinned address; TLS checks the URL's name (the test certificate names
    `localhost`), so pinning an address never weakens certificate verification."""
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    poster = PinnedPoster()
    body = b'{"ok":true}'
    headers = {**sw.signed_headers(sw.secret_key(WEBHOOK_SECRET), "msg_pinned", body), "Content-Type": "a/j"}
    try:
        good = Destination(f"https://localhost:{port}/cb", "localhost", port, "127.0.0.1")
        assert poster.post(good, data=body, headers=headers, timeout=10).status_code == 204
        assert receiver.deliveries[-1].headers["host"] == f"localhost:{port}"  # the name, not the address
        wrong = Destination(f"https://wrong.example.com:{port}/cb", "wrong.example.com", port, "127.0.0.1")
        with pytest.raises(Exception, match=r"(?i)certificate|hostname"):
            poster.post(wrong, data=body, headers=headers, timeout=10)
    finally:
        poster.close()
    assert len(receiver.deliveries) == 1


def _sender(script: list[Any], keys: list[list[bytes]] | None = None, **kwargs: Any):
    poster = ScriptedPoster(script, retry_after=kwargs.pop("retry_after", "2"))
    reads: list[bool] = []
    clock = [0.0]
    sleeps: list[float] = []

    def read(refresh: bool) -> list[bytes]:
        reads.append(refresh)
        return (keys or [[KEY], [KEY]])[1 if refresh else 0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    sender = SignedSender.build(
        kwargs.pop("config", CALLBACK),
        read,
        allow_loopback=False,
        poster=poster,
        resolve=public,
        rng=lambda: 0.5,
        clock=lambda: clock[0],
        sleep=sleep,
        now=lambda: 1_767_225_600.0,
    )
    return sender, poster, reads, sleeps, clock


def test_a_401_rereads_the_secret_once_and_signs_with_the_new_key():
    new = b"n" * 32
    sender, poster, reads, sleeps, _ = _sender([401, 204], keys=[[KEY], [new]])
    outcome = sender.send("https://hooks.example.com/x", b"{}", msg_id="msg_1", deadline=None)
    assert outcome.delivered and reads == [False, True] and sleeps == []
    last = poster.requests[-1]
    sw.verify(last["data"], last["headers"], [new], now=lambda: 1_767_225_600.0)
    sender, poster, reads, _, _ = _sender([401, 401])
    outcome = sender.send("https://hooks.example.com/x", b"{}", msg_id="msg_1", deadline=None)
    assert (outcome.stopped, outcome.attempts, reads) == ("answer", 2, [False, True])


def test_retry_after_as_an_http_date_and_the_deadline():
    sender, poster, _, sleeps, clock = _sender([429, 204], retry_after="Thu, 01 Jan 2026 00:00:07 GMT")
    assert sender.send("https://hooks.example.com/x", b"{}", msg_id="m", deadline=None).delivered
    assert sleeps == [7.0]  # the date is 7 s after `now`
    sender, poster, _, sleeps, clock = _sender([429, 204], retry_after="30")
    outcome = sender.send("https://hooks.example.com/x", b"{}", msg_id="m", deadline=clock[0] + 10)
    assert (outcome.stopped, len(poster.requests), sleeps) == ("deadline", 1, [])


def test_the_two_configurations_differ_only_in_policy():
    assert CALLBACK.public_only and not ALERT_WEBHOOK.public_only
    sender, poster, *_ = _sender([204], config=ALERT_WEBHOOK)
    outcome = sender.send("https://hooks.example.com/x", b"{}", msg_id="m", deadline=None)
    assert outcome.delivered and "alert webhook" in poster.requests[0]["headers"]["User-Agent"]


def test_a_secret_that_cannot_be_read_sends_nothing():
    def broken(refresh: bool) -> list[bytes]:
        raise sw.WebhookSecretError("the webhook secret is not valid base64")

    poster = ScriptedPoster([204])
    sender = SignedSender.build(CALLBACK, broken, allow_loopback=False, poster=poster, resolve=public)
    outcome = sender.send("https://hooks.example.com/x", b"{}", msg_id="m", deadline=None)
    assert (outcome.stopped, outcome.detail, poster.requests) == ("no_key", "no signing key is available", [])
