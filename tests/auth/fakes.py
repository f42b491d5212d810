"""Small fakes for unit tests of the auth helper (no network)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.auth.keyvault import SecretValue
from shared.auth.retry import RetryableError
from shared.auth.tokens import AccessToken, SourceInfo


def fake_jwt(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJlLXBhcnQ"


class Clock:
    """A manual monotonic + wall clock."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeSource:
    """A token source that counts fetches; `lifetime` seconds per token; optional delay and failure."""

    clock: Clock
    lifetime: float = 3600.0
    delay: float = 0.0
    fail: Exception | None = None
    fetches: int = 0
    forced: list[bool] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Event | None = None  # when set: fetch() announces itself on `entered`, then waits here
    entered: threading.Event = field(default_factory=threading.Event)

    def info(self) -> SourceInfo:
        return SourceInfo(
            "application", "contoso", "tid-1", "cid-1", "client secret (Key Vault secret 's')", "a"
        )

    def fetch(self, *, force_refresh: bool) -> AccessToken:
        if self.gate is not None:
            self.entered.set()
            assert self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.fetches += 1
            self.forced.append(force_refresh)
            number = self.fetches
        if self.fail is not None:
            raise self.fail
        exp = self.clock.wall() + self.lifetime
        token = fake_jwt({"aud": "05a65629", "roles": ["Investigation.read"], "exp": exp, "n": number})
        return AccessToken(token, "Bearer", exp, "identity_provider")


class FakeReader:
    """A Key Vault reader with scripted failures."""

    def __init__(self, values: dict[str, str], *, failures: int = 0, delay: float = 0.0) -> None:
        self.values = dict(values)
        self.failures = failures
        self.delay = delay
        self.reads = 0
        self.lock = threading.Lock()

    def read(self, name: str) -> SecretValue:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.reads += 1
            if self.failures > 0:
                self.failures -= 1
                raise RetryableError("Key Vault answered HTTP 503")
        return SecretValue(name, self.values[name], None, "v1")


def burst(n: int, call: Callable[[], object]) -> list[object]:
    """`call` from `n` threads released together; each thread's result or exception, in thread order."""
    barrier = threading.Barrier(n)
    out: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = call()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out
