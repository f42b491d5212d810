"""The one backoff rule: delays, jitter kinds, Retry-After parsing and deadlines."""

from __future__ import annotations

import email.utils

import pytest

from shared.backoff import Backoff, parse_retry_after


def test_delay_doubles_and_caps():
    backoff = Backoff(base=1.0, cap=5.0, jitter="none")
    assert [backoff.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize(("jitter", "low", "high"), [("full", 0.0, 4.0), ("equal", 2.0, 4.0)])
def test_jitter_bounds(jitter, low, high):
    assert Backoff(base=1.0, cap=30.0, jitter=jitter, rng=lambda: 0.0).delay(3) == low
    assert Backoff(base=1.0, cap=30.0, jitter=jitter, rng=lambda: 1.0).delay(3) == high


def test_retry_after_wins_and_is_never_shortened():
    backoff = Backoff(base=1.0, jitter="full", rng=lambda: 0.5)
    assert backoff.wait_for(1, retry_after=10.0) == 10.0
    assert backoff.wait_for(1, retry_after=10.0, told_jitter=0.1) == pytest.approx(10.5)
    assert backoff.wait_for(2) == 1.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), (" 2.5 ", 2.5), ("-3", 0.0), ("", None), (None, None), ("soon", None), ("nan", None)],
)
def test_parse_retry_after_seconds(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date():
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=lambda: now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=lambda: now) == 0.0


def test_sleep_within_respects_deadline():
    slept: list[float] = []
    backoff = Backoff(clock=lambda: 100.0, sleep=slept.append)
    assert backoff.sleep_within(5.0, deadline=110.0) is True
    assert backoff.sleep_within(20.0, deadline=110.0) is False
    assert backoff.sleep_within(20.0, deadline=None) is True
    assert slept == [5.0, 20.0]
