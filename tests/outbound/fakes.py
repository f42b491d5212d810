"""A scripted `Poster` (shared/outbound/pinned.py) for sender unit tests: answers statuses or raises."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.outbound.addresses import Destination
from shared.outbound.pinned import Answer


class ScriptedPoster:
    """Answers each POST with the next scripted item: a status (a 429 carries `Retry-After`) or an error."""

    def __init__(self, script: list[Any], *, retry_after: str | None = "2") -> None:
        self.script = list(script)
        self.retry_after = retry_after
        self.requests: list[dict[str, Any]] = []

    def post(
        self, destination: Destination, *, data: bytes, headers: Mapping[str, str], timeout: float
    ) -> Answer:
        self.requests.append(
            {"destination": destination, "data": data, "headers": dict(headers), "timeout": timeout}
        )
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        extra = {"Retry-After": self.retry_after} if item == 429 and self.retry_after is not None else {}
        return Answer(int(item), extra)


def public(host: str, port: int) -> list[str]:
    """A resolver answering one public address for any name."""
    return ["93.184.216.34"]
