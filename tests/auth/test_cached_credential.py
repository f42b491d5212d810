"""CachedCredential: fast path, single flight, proactive refresh, invalidation after 401, async use."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from shared.auth.errors import IdentityProviderUnavailableError
from shared.auth.tokens import CachedCredential, unverified_claims

from .fakes import Clock, FakeSource, burst


def _cached(
    margin: float = 300, *, delay: float = 0.0, lifetime: float = 3600.0
) -> tuple[Clock, FakeSource, CachedCredential]:
    """A fake clock, a fake token source on it and the cached credential over both."""
    clock = Clock()
    fake = FakeSource(clock, lifetime=lifetime, delay=delay)
    credential = CachedCredential(fake, refresh_margin=margin, clock=clock.monotonic, wall_clock=clock.wall)
    return clock, fake, credential


def test_cold_burst_makes_one_fetch_and_everyone_gets_the_same_header() -> None:
    _, source, credential = _cached(delay=0.05)
    headers = burst(64, credential.authorization_header)
    assert source.fetches == 1
    assert len(set(headers)) == 1
    assert str(headers[0]).startswith("Bearer ey")


def test_cached_until_refresh_margin_then_refreshed() -> None:
    clock, source, credential = _cached(margin=300, lifetime=3600)
    first = credential.authorization_header()
    clock.advance(3299)
    assert credential.authorization_header() == first
    assert source.fetches == 1
    clock.advance(2)  # inside the margin: proactive refresh
    second = credential.authorization_header()
    assert second != first
    assert source.fetches == 2


def test_margin_is_capped_for_short_lived_tokens() -> None:
    """A 60 s token with a 300 s margin must not be refreshed on every call."""
    clock, source, credential = _cached(margin=300, lifetime=60)
    credential.authorization_header()
    clock.advance(20)
    credential.authorization_header()
    assert source.fetches == 1
    clock.advance(11)  # past half the lifetime
    credential.authorization_header()
    assert source.fetches == 2


def test_failed_proactive_refresh_keeps_the_valid_token() -> None:
    clock, source, credential = _cached(lifetime=3600)
    first = credential.authorization_header()
    clock.advance(3400)
    source.fail = IdentityProviderUnavailableError("token endpoint down")
    assert credential.authorization_header() == first
    clock.advance(200)  # now past expiry - skew: no usable token, the error surfaces
    with pytest.raises(IdentityProviderUnavailableError):
        credential.authorization_header()


def test_while_one_caller_refreshes_others_keep_the_current_token() -> None:
    clock, source, credential = _cached(lifetime=3600)
    first = credential.authorization_header()
    clock.advance(3400)
    source.gate = threading.Event()
    refresher = threading.Thread(target=credential.authorization_header)
    refresher.start()
    assert source.entered.wait(5)  # the refresh is in flight...
    assert credential.authorization_header() == first  # ...and this caller did not wait for it
    source.gate.set()
    refresher.join(5)
    assert credential.authorization_header() != first
    assert source.fetches == 2


def test_invalidate_forces_a_fresh_token() -> None:
    _, source, credential = _cached()
    first = credential.authorization_header()
    credential.invalidate()
    second = credential.authorization_header()
    assert second != first
    assert source.forced == [False, True]


def test_401_storm_for_one_token_causes_one_refresh() -> None:
    """Every caller that used the rejected token invalidates; only the first invalidation counts."""
    _, source, credential = _cached(delay=0.02)
    barrier = threading.Barrier(32)
    seen: list[str] = []

    def caller() -> None:
        credential.authorization_header()
        barrier.wait()  # everyone holds the old token
        credential.invalidate()  # "the API said 401"
        seen.append(credential.authorization_header())

    threads = [threading.Thread(target=caller) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert source.fetches == 2
    assert len(set(seen)) == 1


def test_invalidate_with_an_old_header_does_not_drop_the_new_token() -> None:
    _, source, credential = _cached()
    old = credential.authorization_header()
    credential.invalidate(old)
    new = credential.authorization_header()
    credential.invalidate(old)  # a late 401 for the old token
    assert credential.authorization_header() == new
    assert source.fetches == 2


def test_forced_refresh_survives_a_failure() -> None:
    """After invalidate(), a failed fetch must not let the next attempt reuse a cached (rejected) token."""
    _, source, credential = _cached()
    credential.authorization_header()
    credential.invalidate()
    source.fail = IdentityProviderUnavailableError("down")
    with pytest.raises(IdentityProviderUnavailableError):
        credential.authorization_header()
    source.fail = None
    credential.authorization_header()
    assert source.forced == [False, True, True]


def test_async_burst_shares_one_fetch() -> None:
    _, source, credential = _cached(delay=0.05)

    async def main() -> list[str]:
        return await asyncio.gather(*(credential.authorization_header_async() for _ in range(50)))

    headers = asyncio.run(main())
    assert len(set(headers)) == 1
    assert source.fetches == 1


def test_describe_reports_claims_never_the_token() -> None:
    _, _, credential = _cached()
    description = credential.describe()
    assert description.source == "identity_provider"
    assert description.roles == ("Investigation.read",)
    assert description.audience == "05a65629"
    assert credential.describe().source == "cache"
    token = credential.authorization_header().split(" ", 1)[1]
    assert token not in repr(description) and token not in str(description.as_dict())


def test_unverified_claims_tolerates_garbage() -> None:
    assert unverified_claims("not-a-jwt") == {}
    assert unverified_claims("a.!!!.c") == {}


class _RealClock(Clock):
    def wall(self) -> float:
        return time.time()


def test_the_fast_path_never_fetches_again() -> None:
    """A fresh token is served from the cache however often it is asked for (its cost per call is measured
    by bench/bench_auth.py, not asserted here)."""
    source = FakeSource(_RealClock())
    credential = CachedCredential(source, refresh_margin=300)
    first = credential.authorization_header()
    assert all(credential.authorization_header() == first for _ in range(20_000))
    assert source.fetches == 1
