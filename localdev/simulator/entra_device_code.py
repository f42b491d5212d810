"""Entra ID's device-code flow (RFC 8628): the `devicecode` endpoint, polling the token endpoint, and the
administrator's hand in it (approve as a user, deny, expire), since nobody opens a browser here.

Polling answers as Entra does: `authorization_pending` until approved, `slow_down` when polled faster than
the interval, `expired_token` and `authorization_declined`; a flow is redeemed once.
"""

from __future__ import annotations

import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localdev.simulator.directory import Directory
from localdev.simulator.entra_client_auth import ClientAuthenticator, TokenRequest
from localdev.simulator.entra_errors import EntraError, invalid_grant, missing, unknown_client, unknown_user
from localdev.simulator.entra_grants import Grants
from localdev.simulator.entra_scopes import delegated_scopes, parse_scope
from localdev.simulator.wire import SimRequest, SimResponse

GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class DeviceFlow:
    device_code: str
    user_code: str
    client_id: str
    tenant_id: str
    scope: str
    expires_at: float
    interval: int
    last_poll: float | None = None
    approved_user: str | None = None
    denied: bool = False

    def public(self, now: float) -> dict[str, Any]:
        return {
            "user_code": self.user_code,
            "client_id": self.client_id,
            "scope": self.scope,
            "expires_in": max(0, int(self.expires_at - now)),
            "approved": self.approved_user is not None,
            "denied": self.denied,
        }


@dataclass
class DeviceCodes:
    """Pending device flows of every directory; `redeem` is the token endpoint's device-code grant."""

    directories: dict[str, Directory]
    clients: ClientAuthenticator
    grants: Grants
    interval: int
    lifetime: int
    clock: Callable[[], float]
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _flows: dict[str, DeviceFlow] = field(default_factory=dict, init=False, repr=False)  # device code -> flow

    def start(self, req: SimRequest, directory: Directory) -> SimResponse:
        """The `devicecode` endpoint: a new flow, refused at once for unknown clients or scopes."""
        form = req.form()
        client_id = form.get("client_id", "")
        if not client_id:
            raise missing("client_id")
        app = directory.app(client_id)
        if app is None:
            raise unknown_client(client_id, directory.domain)
        scope = form.get("scope", "")
        parsed = parse_scope(directory, scope)
        delegated_scopes(app, parsed)  # fail early on unknown or unconsented scopes
        alphabet = string.ascii_uppercase + string.digits
        user_code = "".join(secrets.choice(alphabet) for _ in range(9))
        device_code = "DAQABIQEAAAD" + secrets.token_urlsafe(96)
        flow = DeviceFlow(
            device_code,
            user_code,
            app.client_id,
            directory.tenant_id,
            scope,
            self.clock() + self.lifetime,
            self.interval,
        )
        with self._lock:
            self._flows[device_code] = flow
        uri = "https://microsoft.com/devicelogin"
        return SimResponse.json(
            200,
            {
                "user_code": user_code,
                "device_code": device_code,
                "verification_uri": uri,
                "expires_in": self.lifetime,
                "interval": self.interval,
                "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
                f"{user_code} "
                "to authenticate.",
            },
        )

    def redeem(self, call: TokenRequest) -> dict[str, Any]:
        """The device-code grant: one poll of a flow, or its tokens once a user approved it."""
        form, directory = call.form, call.directory
        app, method = self.clients.authenticate(call)
        code = form.get("device_code") or form.get("code")
        if not code:
            raise missing("device_code")
        now = self.clock()
        with self._lock:
            flow = self._flows.get(code)
            if flow is None or flow.client_id != app.client_id:
                raise invalid_grant(70000, "The provided value for the 'device_code' is not valid.")
            if now > flow.expires_at:
                del self._flows[code]
                raise EntraError(
                    400,
                    "expired_token",
                    70020,
                    "The provided value for the input parameter 'device_code' is not valid. This device code "
                    "has expired.",
                )
            if flow.denied:
                del self._flows[code]
                raise EntraError(
                    400, "authorization_declined", 70000, "The user declined the sign-in request."
                )
            if flow.approved_user is None:
                too_fast = flow.last_poll is not None and now - flow.last_poll < flow.interval
                flow.last_poll = now
                if too_fast:
                    raise EntraError(
                        400, "slow_down", 70016, "OAuth 2.0 device flow error. Slow down polling."
                    )
                raise EntraError(
                    400,
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                )
            del self._flows[code]
            user_id = flow.approved_user
        user = directory.user(user_id)
        if user is None:
            raise unknown_user()
        parsed = parse_scope(directory, flow.scope)
        return self.grants.user_token_response(
            call, app, user, parsed=parsed, method=method, grant="device_code"
        )

    def pending(self) -> list[dict[str, Any]]:
        now = self.clock()
        with self._lock:
            return [f.public(now) for f in self._flows.values() if f.expires_at >= now]

    def _flow_by_user_code(self, user_code: str) -> DeviceFlow:
        wanted = user_code.strip().upper().replace("-", "")
        with self._lock:
            for flow in self._flows.values():
                if flow.user_code == wanted:
                    return flow
        raise KeyError(f"no pending device code {user_code!r}")

    def approve(self, user_code: str, user: str) -> str:
        """Sign in `user` (key, username or object id) for a pending flow; returns the username."""
        flow = self._flow_by_user_code(user_code)
        directory = self.directories[flow.tenant_id]
        found = directory.user(user)
        if found is None:
            raise KeyError(f"no user {user!r}")
        with self._lock:
            flow.approved_user = found.object_id
        return found.username

    def deny(self, user_code: str) -> None:
        flow = self._flow_by_user_code(user_code)
        with self._lock:
            flow.denied = True

    def expire(self, user_code: str) -> None:
        flow = self._flow_by_user_code(user_code)
        with self._lock:
            flow.expires_at = self.clock() - 1
