"""The simulator's request/response shapes, shared by the server core and every service module.

Service modules (entra, keyvault, msi, mda, admin) are plain functions or objects that take a `SimRequest`
and return a `SimResponse`; they never touch sockets, which keeps them testable without a server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs


@dataclass
class SimRequest:
    method: str
    path: str  # without the query string, percent-decoded
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    listener: str = "main"  # which listener accepted it: "main", "msi" or "mda:<tenant name>"

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class SimResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # True: the server sends nothing and closes the connection abruptly (TCP RST): a simulated reset.
    abort: bool = False

    @classmethod
    def reset(cls) -> SimResponse:
        """A "response" that makes the server drop the connection without answering."""
        return cls(status=0, abort=True)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> SimResponse:
        merged = {"Content-Type": "application/json", **(headers or {})}
        return cls(status, json.dumps(payload).encode(), merged)

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> SimResponse:
        return cls(status, text.encode(), {"Content-Type": content_type})


class TokenVerifier(Protocol):
    """Implemented by the Entra part (tokens.py); used by Key Vault and the MDA API to check bearer tokens."""

    def verify(self, token: str, *, audience: str) -> dict[str, Any]:
        """Claims of a valid, unexpired, unrevoked token for `audience`; raise `InvalidToken` otherwise."""
        ...


class InvalidToken(Exception):
    """A bearer token failed verification; the message says why (expired, wrong audience, revoked, ...)."""
