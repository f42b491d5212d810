"""Route tables for the simulator's admin APIs: each service lists its endpoints in one mapping.

A table maps `(method, path)` to a handler that takes an `AdminCall`. A path ending in "/" is a prefix: the
handler gets what follows it as `call.rest`. The method "*" accepts any method. An exact path wins over a
prefix, and a longer prefix over a shorter one.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, TypeVar

from localdev.simulator.wire import SimRequest

ANY_METHOD = "*"

_Handler = TypeVar("_Handler")


class BodyError(ValueError):
    """The admin request's body is not a JSON object."""


class AdminCall:
    """One admin request as a handler sees it."""

    def __init__(self, req: SimRequest, rest: str = "") -> None:
        self.req = req
        self.rest = rest  # what follows a prefix route's path ("" for an exact route)

    @classmethod
    def with_body(cls, req: SimRequest) -> AdminCall:
        """A call whose body is read at once, for a service that refuses a malformed body before it looks up
        the path (`BodyError`)."""
        call = cls(req)
        _ = call.body
        return call

    @cached_property
    def body(self) -> dict[str, Any]:
        """The JSON object sent ({} for an empty body); `BodyError` for anything else. Read on first use, so
        an endpoint that takes no body ignores whatever was sent."""
        if not self.req.body:
            return {}
        try:
            payload = self.req.json()
        except ValueError:
            raise BodyError("request body must be JSON") from None
        if not isinstance(payload, dict):
            raise BodyError("request body must be a JSON object")
        return payload


def find_route(
    table: Mapping[tuple[str, str], _Handler], method: str, path: str
) -> tuple[_Handler, str] | None:
    """The handler for `method` and `path`, and the rest of the path after a prefix route; None if no route
    matches."""
    for wanted in (method, ANY_METHOD):
        handler = table.get((wanted, path))
        if handler is not None:
            return handler, ""
    prefixes = [
        (prefix, handler)
        for (accepted, prefix), handler in table.items()
        if prefix.endswith("/") and accepted in (method, ANY_METHOD) and path.startswith(prefix)
    ]
    if not prefixes:
        return None
    prefix, handler = max(prefixes, key=lambda found: len(found[0]))
    return handler, path[len(prefix) :]
