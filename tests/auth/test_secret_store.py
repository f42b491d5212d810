"""SecretStore: TTL cache, bypass after rejection, single flight, bounded retries, stale value on outage."""

from __future__ import annotations

import threading

import pytest

from shared.auth.errors import KeyVaultUnavailableError
from shared.auth.keyvault import SecretStore

from .fakes import Clock, FakeReader


def _store(reader: FakeReader, clock: Clock, *, ttl: float = 900, attempts: int = 3) -> SecretStore:
    return SecretStore(
        reader,
        vault_url="https://kv.vault.azure.net",
        ttl=ttl,
        attempts=attempts,
        backoff=0.001,
        clock=clock.monotonic,
        sleep=lambda _s: None,
    )


def test_cached_for_the_ttl_then_reread() -> None:
    clock = Clock()
    reader = FakeReader({"s": "v1"})
    store = _store(reader, clock, ttl=900)
    assert store.get("s").value == "v1"
    clock.advance(899)
    reader.values["s"] = "v2"
    assert store.get("s").value == "v1"
    clock.advance(2)
    assert store.get("s").value == "v2"
    assert reader.reads == 2


def test_bypass_cache_rereads_immediately() -> None:
    clock = Clock()
    reader = FakeReader({"s": "v1"})
    store = _store(reader, clock)
    store.get("s")
    reader.values["s"] = "rotated"
    assert store.get("s", bypass_cache=True).value == "rotated"
    assert store.get("s").value == "rotated"
    assert reader.reads == 2


def test_concurrent_cold_reads_share_one_vault_read() -> None:
    clock = Clock()
    reader = FakeReader({"s": "v"}, delay=0.05)
    store = _store(reader, clock)
    barrier = threading.Barrier(32)
    values: list[str] = []

    def read() -> None:
        barrier.wait()
        values.append(store.get("s").value)

    threads = [threading.Thread(target=read) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert values == ["v"] * 32
    assert reader.reads == 1


def test_transient_failures_are_retried_within_the_budget() -> None:
    clock = Clock()
    reader = FakeReader({"s": "v"}, failures=2)
    assert _store(reader, clock, attempts=3).get("s").value == "v"
    assert reader.reads == 3


def test_unreachable_vault_gives_a_clear_error_without_the_value() -> None:
    clock = Clock()
    reader = FakeReader({"s": "super-secret-value"}, failures=10)
    with pytest.raises(KeyVaultUnavailableError) as caught:
        _store(reader, clock, attempts=3).get("s")
    message = str(caught.value)
    assert "'s'" in message and "kv.vault.azure.net" in message and "3 attempts" in message
    assert "super-secret-value" not in message
    assert reader.reads == 3


def test_an_expired_cached_value_is_served_while_the_vault_is_down() -> None:
    clock = Clock()
    reader = FakeReader({"s": "v"})
    store = _store(reader, clock, ttl=10)
    store.get("s")
    clock.advance(11)
    reader.failures = 10
    assert store.get("s").value == "v"
    # ...but a bypass read (the value was rejected) must not fall back to it.
    with pytest.raises(KeyVaultUnavailableError):
        store.get("s", bypass_cache=True)


def test_secret_value_is_not_in_repr() -> None:
    clock = Clock()
    value = _store(FakeReader({"s": "hidden-value"}), clock).get("s")
    assert "hidden-value" not in repr(value)
