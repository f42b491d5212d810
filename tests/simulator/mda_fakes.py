"""Doubles for unit-testing `MdaService` without a server: fake token verifier, manual clock, requests."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from localdev.simulator.mda import MdaService
from localdev.simulator.wire import InvalidToken, SimRequest, SimResponse

TENANT_ID = "11111111-2222-3333-4444-555555555555"
OTHER_TENANT_ID = "99999999-2222-3333-4444-555555555555"
API_URL = "https://127.0.0.1:4443"
LEGACY_READ = "R" * 64
LEGACY_ALL = "A1b2C3d4" * 10 + "=="


class FakeVerifier:
    """Accepts tokens minted by `bearer()`: "ok|<tid>|app|<roles>" or "ok|<tid>|user|<scopes>"."""

    def verify(self, token: str, *, audience: str) -> dict[str, Any]:
        parts = token.split("|")
        if len(parts) != 4 or parts[0] != "ok":
            raise InvalidToken("bad signature")
        _, tid, kind, perms = parts
        claims: dict[str, Any] = {"tid": tid, "aud": audience, "appid": "client-1", "oid": "oid-1"}
        if kind == "app":
            claims["roles"] = [p for p in perms.split(",") if p]
        else:
            claims["scp"] = perms.replace(",", " ")
            claims["upn"] = "analyst@contoso.com"
        return claims


def bearer(*perms: str, kind: str = "app", tid: str = TENANT_ID) -> str:
    return f"Bearer ok|{tid}|{kind}|{','.join(perms)}"


MANAGE = bearer("Investigation.manage", "Discovery.manage")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_service(**kwargs: Any) -> MdaService:
    options: dict[str, Any] = {
        "legacy_tokens": {
            LEGACY_READ: {"Investigation.read"},
            LEGACY_ALL: {"Investigation.manage", "Discovery.manage"},
        },
        "rate_limit": 10_000,
        "rate_window_s": 60.0,
        "api_url": API_URL,
    }
    options.update(kwargs)
    return MdaService("contoso", TENANT_ID, FakeVerifier(), **options)


def call(
    svc: MdaService,
    method: str,
    path: str,
    body: Any = None,
    *,
    auth: str | None = MANAGE,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> SimResponse:
    """One request; dict/list bodies are sent as JSON, bytes/str as they are."""
    if isinstance(body, dict | list):
        raw = json.dumps(body).encode()
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = body or b""
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if auth is not None:
        hdrs["authorization"] = auth
    q = {k: [v] for k, v in (query or {}).items()}
    return svc.handle(SimRequest(method, path, q, hdrs, raw, listener="mda:contoso"))


def call_url(
    svc: MdaService,
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> SimResponse:
    """A storage request to an issued URL (no MDA auth), with Content-Length set like a real client."""
    parts = urlsplit(url)
    hdrs = {"content-length": str(len(body))} if method == "PUT" else {}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    return svc.handle(
        SimRequest(method, parts.path, parse_qs(parts.query), hdrs, body, listener="mda:contoso")
    )


def admin(svc: MdaService, method: str, subpath: str, body: Any = None) -> Any:
    raw = json.dumps(body).encode() if body is not None else b""
    response = svc.handle_admin(SimRequest(method, f"/_admin/mda/contoso/{subpath}", {}, {}, raw), subpath)
    assert response.status == 200, response.body
    return json.loads(response.body)


def payload(response: SimResponse) -> Any:
    return json.loads(response.body)
