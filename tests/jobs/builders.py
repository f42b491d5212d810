"""Builders for jobs-API unit tests: a JobsApi over in-memory fakes, signed requests, local bearer tokens."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from shared import standard_webhooks as sw
from shared.jobs.bearer import BearerValidator
from shared.jobs.claims import IdempotencyStore, SeenWebhookIds
from shared.jobs.config import JobsConfig
from shared.jobs.http import ApiRequest
from shared.jobs.intake import JobsApi
from shared.jobs.schema import ValidationContext
from shared.jobs.signature import SignatureAuthenticator, WebhookKeys, status_payload
from shared.jobs.store import JobRecord, JobStore
from tests.jobs.fakes import FakeBlobs, FakeQueue, FakeTable

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"z" * 32).decode()
SEALING_KEY = b"s" * 32
TENANT_ID = "11111111-2222-3333-4444-555555555555"
AUDIENCE = "api://jobs-test"
AUTHORITY = "https://login.example.test"
ISSUER = f"{AUTHORITY}/{TENANT_ID}/v2.0"
URL = "https://func.example.test/api/jobs"
ALERT_IDS = ["5f8d70bfc1ffb25b0a541c7d", "55af7415f8a0a7a29eef2e1f"]

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "test-kid"


class FakeJwks:
    """Stands in for PyJWKClient: one key, looked up by kid."""

    def __init__(self) -> None:
        self.calls = 0

    def get_signing_key_from_jwt(self, token: str) -> Any:
        self.calls += 1
        header = jwt.get_unverified_header(token)
        if header.get("kid") != KID:
            raise jwt.PyJWKClientError("Unable to find a signing key that matches")
        return SimpleNamespace(key=_KEY.public_key())


def token(
    *,
    scp: str | None = None,
    roles: list[str] | None = None,
    aud: str = AUDIENCE,
    iss: str = ISSUER,
    tid: str = TENANT_ID,
    lifetime: int = 3600,
    issued: int | None = None,
    oid: str | None = None,
    key: Any = None,
    kid: str = KID,
    extra: dict[str, Any] | None = None,
) -> str:
    now = int(time.time()) if issued is None else issued
    claims: dict[str, Any] = {
        "aud": aud,
        "iss": iss,
        "tid": tid,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "oid": oid or str(uuid.uuid4()),
        "sub": "subject",
        "azp": "caller-app",
    }
    if scp:
        claims.update({"scp": scp, "preferred_username": "analyst@contoso.test"})
    if roles:
        claims["roles"] = roles
    claims.update(extra or {})
    return jwt.encode(claims, key or _KEY, algorithm="RS256", headers={"kid": kid})


def config(**overrides: Any) -> JobsConfig:
    values: dict[str, Any] = {
        "webhook_secret_name": "hook",
        "callback_secret_name": "hook",
        "sealing_key_name": "seal",
        "audiences": (AUDIENCE,),
        "token_tenant_id": TENANT_ID,
        "authority_host": AUTHORITY,
        "required_role": "Jobs.Submit",
        "required_scope": "Jobs.Submit",
        "allow_loopback": False,
        "tenants": ("contoso", "fabrikam"),
        "tenant_ids": (TENANT_ID, "99999999-2222-3333-4444-555555555555"),
    }
    values.update(overrides)
    return JobsConfig(**values)


@dataclass
class Rig:
    api: JobsApi
    table: FakeTable
    queue: FakeQueue
    blobs: FakeBlobs
    secrets: dict[str, str] = field(default_factory=dict)
    jwks: FakeJwks = field(default_factory=FakeJwks)


def rig(*, bearer: bool = True, secret: str = SECRET, **config_overrides: Any) -> Rig:
    table, queue, blobs = FakeTable(), FakeQueue(), FakeBlobs()
    secrets = {"hook": secret}
    cfg = config(**config_overrides)
    seen = SeenWebhookIds(table, retention_s=660)
    jwks = FakeJwks()
    validator = (
        BearerValidator(
            jwks_url=cfg.jwks_url,
            issuers=cfg.issuers,
            audiences=cfg.audiences,
            tenant_id=cfg.token_tenant_id,
            required_role=cfg.required_role,
            required_scope=cfg.required_scope,
            jwks_client=jwks,
        )
        if bearer
        else None
    )
    api = JobsApi(
        config=cfg,
        jobs=JobStore(table, blobs),
        idempotency=IdempotencyStore(table, ttl_s=24 * 3600),
        enqueue=queue.send,
        signature=SignatureAuthenticator(
            WebhookKeys(lambda bypass: secrets["hook"]),
            lambda msg_id: seen.first_use(msg_id, now=time.time()),
        ),
        bearer=validator,
        sealing_key=lambda: SEALING_KEY,
        validation=lambda: ValidationContext(
            now=datetime.now(UTC), tenants=cfg.tenants, allow_loopback=cfg.allow_loopback
        ),
    )
    return Rig(api, table, queue, blobs, secrets, jwks)


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def signed(
    payload: bytes,
    *,
    secret: str = SECRET,
    msg_id: str | None = None,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
    url: str = URL,
    method: str = "POST",
) -> ApiRequest:
    key = sw.secret_key(secret)
    ts = int(time.time()) if timestamp is None else timestamp
    all_headers = {
        "Content-Type": "application/json",
        **sw.signed_headers(key, msg_id or f"msg_{uuid.uuid4().hex}", payload, timestamp=ts),
        **(headers or {}),
    }
    return ApiRequest(method=method, url=url, headers=all_headers, body=payload)


def signed_status(job_id: str, *, secret: str = SECRET, msg_id: str | None = None) -> ApiRequest:
    """A signed `GET /api/jobs/{id}`: the signature covers the canonical request, not a body."""
    key = sw.secret_key(secret)
    headers = sw.signed_headers(key, msg_id or f"msg_{uuid.uuid4().hex}", status_payload(job_id))
    return ApiRequest(method="GET", url=f"{URL}/{job_id}", headers=headers, body=b"")


def bearer_request(
    payload: bytes,
    access_token: str,
    *,
    headers: dict[str, str] | None = None,
    url: str = URL,
    method: str = "POST",
) -> ApiRequest:
    all_headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {access_token}",
        **(headers or {}),
    }
    return ApiRequest(method=method, url=url, headers=all_headers, body=payload)


CLOSE = {"action": "alerts.close", "kind": "benign", "ids": ALERT_IDS, "reasonId": 2, "comment": "tested"}


def job_record(job_id: str = "00000000-0000-4000-8000-000000000001", **overrides: Any) -> JobRecord:
    """A queued `alerts.close` job as the store holds it; `overrides` set the fields a test cares about."""
    fields: dict[str, Any] = {
        "job_id": job_id,
        "action": "alerts.close",
        "spec": {"action": "alerts.close", "params": {}},
        "status": "queued",
        "correlation_id": "c-1",
        "context": "application",
        "requested_by": {"type": "signature"},
        "created_at": "t0",
        "updated_at": "t0",
    }
    return JobRecord(**{**fields, **overrides})
