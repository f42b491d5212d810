"""Who called the jobs API, and the one error type every authentication step raises.

Three kinds of caller, each the owner of the jobs it submits (`scope_key`):
- `signature`: a SOAR platform holding the shared Standard Webhooks secret -> jobs run in application context;
  the subject is the fingerprint of the key that signed;
- `application`: an Entra ID app-only token -> application context; the subject is the calling app
  (`azp`/`appid`) in its tenant;
- `user`: an analyst's delegated token -> the worker acts on-behalf-of that user; the subject is the user's
  `oid` in its tenant.
The user's raw token (`assertion`) is kept on the object only for sealing at intake; it never appears in
`repr`, in logs, in job records in clear, or in responses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.errors import McasError

PrincipalKind = Literal["signature", "application", "user"]
RunContext = Literal["application", "user"]


class AuthFailure(McasError):
    """Authentication (401) or authorization (403) refused. `message` is safe to send back to the caller."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status} {code}: {message}")


class AuthUnavailable(McasError):
    """Authentication could not be decided right now (JWKS or Key Vault unreachable): answer 503, not 401."""


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    subject: str  # user: oid; application: the app's client id (azp/appid); signature: the key fingerprint
    tenant_id: str | None = None
    client_id: str | None = None  # the calling app (azp / appid)
    name: str | None = None  # user: upn / preferred_username
    expires_at: int | None = None  # user: the assertion's exp (epoch seconds)
    assertion: str | None = field(default=None, repr=False, compare=False)

    @property
    def context(self) -> RunContext:
        return "user" if self.kind == "user" else "application"

    @property
    def scope_key(self) -> str:
        """Partitions Idempotency-Keys and job visibility per caller (never includes the token)."""
        raw = f"{self.kind}\n{self.tenant_id or ''}\n{self.subject}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def requested_by(self) -> dict[str, Any]:
        """JSON-safe attribution stored with the job and shown in its status."""
        data: dict[str, Any] = {"type": self.kind}
        if self.kind != "signature":
            data["id"] = self.subject
            if self.tenant_id:
                data["tenantId"] = self.tenant_id
            if self.client_id:
                data["clientId"] = self.client_id
        if self.name:
            data["name"] = self.name
        return data

    @property
    def caller(self) -> str:
        """The name `MCAS_WEBHOOK_TENANT_SCOPES` knows this caller by: `signature` or the app's client id."""
        if self.kind == "signature":
            return "signature"
        return self.client_id or self.subject
