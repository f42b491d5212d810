"""Entra ID's token grants: client credentials, password (ROPC), on-behalf-of and refresh token.

Each grant authenticates the client, checks its own inputs, and answers with the token response the real
service sends; the delegated grants share one response builder (access token with `scp`, optional refresh
and id tokens, `client_info`), which the device-code grant uses too. Refresh tokens live here.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from localdev.simulator.counters import Counters
from localdev.simulator.directory import GRAPH_RESOURCE, App, Directory, User
from localdev.simulator.entra_client_auth import ClientAuthenticator, TokenRequest
from localdev.simulator.entra_errors import invalid_grant, invalid_scope, missing, unknown_user
from localdev.simulator.entra_scopes import ScopeRequest, delegated_scopes, parse_scope
from localdev.simulator.tokens import TokenIssuer, audience_matches
from localdev.simulator.wire import InvalidToken


@dataclass
class RefreshGrant:
    client_id: str
    tenant_id: str
    user_id: str
    revoked: bool = False


class Grants:
    """The grants that need no device flow; holds the refresh tokens it issued."""

    def __init__(self, issuer: TokenIssuer, counters: Counters, clients: ClientAuthenticator) -> None:
        self.issuer = issuer
        self.counters = counters
        self.clients = clients
        self._lock = threading.Lock()
        self._refresh: dict[str, RefreshGrant] = {}

    def _count(self, grant: str, app: App, method: str) -> None:
        self.counters.incr("tokens", grant)
        self.counters.incr("tokens_by_client", app.client_id)
        self.counters.incr("client_auth", method)

    def client_credentials(self, call: TokenRequest) -> dict[str, Any]:
        form, directory = call.form, call.directory
        app, method = self.clients.authenticate_confidential(call)
        scope = form.get("scope", "")
        if not scope:
            raise missing("scope")
        items = scope.split()
        if len(items) != 1 or not items[0].endswith("/.default"):
            raise invalid_scope(
                f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                "scope "
                "value with /.default suffixed to the resource identifier (application ID URI).",
                1002012,
            )
        parsed = parse_scope(directory, scope)
        granted = app.app_roles.get(parsed.resource.app_id, set()) & set(parsed.resource.roles)
        token, _ = self.issuer.issue(
            tenant_id=directory.tenant_id,
            audience=parsed.resource.audience,
            client_id=app.client_id,
            subject=app.object_id,
            object_id=app.object_id,
            roles=sorted(granted),
            acr="2" if method in ("certificate", "federated") else "1",
        )
        self._count("client_credentials", app, method)
        return {
            "token_type": "Bearer",
            "expires_in": self.issuer.lifetime_s,
            "ext_expires_in": self.issuer.lifetime_s,
            "access_token": token,
        }

    def user_token_response(
        self, call: TokenRequest, app: App, user: User, *, parsed: ScopeRequest, method: str, grant: str
    ) -> dict[str, Any]:
        """The token response of a delegated grant (`grant` names it in the counters) for `user`."""
        form, directory = call.form, call.directory
        scopes = delegated_scopes(app, parsed)
        acr = {"public": "0", "secret": "1"}.get(method, "2")
        token, _ = self.issuer.issue(
            tenant_id=directory.tenant_id,
            audience=parsed.resource.audience,
            client_id=app.client_id,
            subject=user.pairwise_sub(app.client_id),
            object_id=user.object_id,
            scp=" ".join(scopes) if scopes else "openid",
            user={"upn": user.username, "name": user.display_name},
            acr=acr,
        )
        shown = [f"{parsed.prefix}/{s}" if parsed.resource.app_id != GRAPH_RESOURCE else s for s in scopes]
        if ".default" in parsed.permissions:
            shown.append(f"{parsed.prefix}/.default")
        payload: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(shown),
            "expires_in": self.issuer.lifetime_s,
            "ext_expires_in": self.issuer.lifetime_s,
            "access_token": token,
        }
        if parsed.offline_access:
            payload["refresh_token"] = self._new_refresh_token(app, directory, user)
        if parsed.openid:
            payload["id_token"] = self._id_token(app, directory, user)
        if form.get("client_info") == "1":
            info = json.dumps({"uid": user.object_id, "utid": directory.tenant_id}).encode()
            payload["client_info"] = base64.urlsafe_b64encode(info).rstrip(b"=").decode()
        self._count(grant, app, method)
        return payload

    def _id_token(self, app: App, directory: Directory, user: User) -> str:
        now = self.issuer.now()
        return self.issuer.sign(
            {
                "aud": app.client_id,
                "iss": self.issuer.issuer(directory.tenant_id),
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "name": user.display_name,
                "oid": user.object_id,
                "preferred_username": user.username,
                "sub": user.pairwise_sub(app.client_id),
                "tid": directory.tenant_id,
                "ver": "2.0",
            }
        )

    def _new_refresh_token(self, app: App, directory: Directory, user: User) -> str:
        token = "1.SIM." + secrets.token_urlsafe(96)
        with self._lock:
            self._refresh[token] = RefreshGrant(app.client_id, directory.tenant_id, user.object_id)
        return token

    def password(self, call: TokenRequest) -> dict[str, Any]:
        form, directory = call.form, call.directory
        app, method = self.clients.authenticate(call)
        username, password = form.get("username"), form.get("password")
        if not username:
            raise missing("username")
        if password is None:
            raise missing("password")
        parsed = parse_scope(directory, form.get("scope", ""))
        user = directory.users.get(username.lower())
        if user is None:
            raise invalid_grant(
                50034,
                f"The user account {{EUII Hidden}} does not exist in the {directory.tenant_id} directory. "
                "To sign into this application, the account must be added to the directory.",
            )
        if not secrets.compare_digest(user.password.encode(), password.encode()):
            raise invalid_grant(
                50126,
                "Error validating credentials due to invalid username or password.",
            )
        if user.mfa_required:
            raise invalid_grant(
                50076,
                "Due to a configuration change made by your administrator, or because you moved to a new "
                "location, you must use multi-factor authentication to access "
                f"'{parsed.resource.app_id}'.",
                suberror="basic_action",
                claims='{"access_token":{"capolids":{"essential":true,"values":["mfa"]}}}',
            )
        return self.user_token_response(call, app, user, parsed=parsed, method=method, grant="password")

    def on_behalf_of(self, call: TokenRequest) -> dict[str, Any]:
        form, directory = call.form, call.directory
        app, method = self.clients.authenticate_confidential(call)
        if form.get("requested_token_use") != "on_behalf_of":
            raise missing("requested_token_use")
        assertion = form.get("assertion")
        if not assertion:
            raise missing("assertion")
        try:
            claims = self.issuer.decode(assertion)
        except InvalidToken as exc:
            if "expired" in str(exc):
                raise invalid_grant(
                    500133,
                    "Assertion is not within its valid time range. Ensure that the access token is not "
                    "expired "
                    "before using it for user assertion, or request a new token.",
                ) from None
            raise invalid_grant(50013, "Assertion failed signature validation.") from None
        if self.issuer.is_revoked(str(claims.get("jti", ""))):
            raise invalid_grant(50013, "Assertion failed signature validation. [Reason - revoked]")
        accepted = {app.client_id} | ({app.app_id_uri} if app.app_id_uri else set())
        if not any(audience_matches(claims.get("aud"), a) for a in accepted):
            raise invalid_grant(
                500131,
                f"Assertion audience does not match the Client app presenting the assertion. The audience in "
                f"the assertion was '{claims.get('aud')}' and the expected audience is '{app.client_id}' or "
                "one of the Application Id URIs of this application.",
            )
        user = directory.user(str(claims.get("oid", ""))) if claims.get("idtyp") == "user" else None
        if user is None:
            raise invalid_grant(
                50013,
                "Assertion failed signature validation. [Reason - the assertion is not a user token.]",
            )
        parsed = parse_scope(directory, form.get("scope", ""))
        return self.user_token_response(call, app, user, parsed=parsed, method=method, grant="on_behalf_of")

    def refresh(self, call: TokenRequest) -> dict[str, Any]:
        form, directory = call.form, call.directory
        app, method = self.clients.authenticate(call)
        token = form.get("refresh_token")
        if not token:
            raise missing("refresh_token")
        with self._lock:
            grant = self._refresh.get(token)
        if grant is None or grant.revoked or grant.client_id != app.client_id:
            raise invalid_grant(
                70000,
                "The provided value for the 'refresh_token' is not valid or has been revoked.",
            )
        user = directory.user(grant.user_id)
        if user is None:
            raise unknown_user()
        parsed = parse_scope(directory, form.get("scope", "") or "openid")
        return self.user_token_response(call, app, user, parsed=parsed, method=method, grant="refresh_token")

    def revoke_refresh_tokens(self, client_id: str | None = None) -> int:
        with self._lock:
            count = 0
            for grant in self._refresh.values():
                if not grant.revoked and (client_id is None or grant.client_id == client_id):
                    grant.revoked = True
                    count += 1
            return count
