"""Simulated Entra ID: OpenID discovery, JWKS, and the v2.0 (and v1) token and device-code endpoints.

Faithful where the app can tell the difference: Entra's path layout, its grant types and client authentication
methods (secret post/basic, certificate `private_key_jwt`, managed identity as a federated credential), scope
rules (`/.default` for client credentials, consent for delegated scopes), and its error bodies
`{error, error_description "AADSTSxxxx: ...", error_codes, timestamp, trace_id, correlation_id}` with the
status codes MSAL and azure-identity react to. Works with real `msal` (authority `{host}/{tenant}`,
`instance_discovery=False`) and azure-identity (`authority=host`, `disable_instance_discovery=True`).

Known MSAL quirk: `acquire_token_by_username_password` first GETs `https://{host}/common/userrealm/...` on the
authority's *hostname without its port* (msal/authority.py), i.e. port 443, which nothing serves here. Callers
must skip that lookup; see `localdev.simulator.client.skip_msal_user_realm_discovery`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from localdev.simulator.counters import Counters
from localdev.simulator.directory import Directory
from localdev.simulator.entra_client_auth import ClientAuthenticator, TokenRequest
from localdev.simulator.entra_device_code import GRANT_DEVICE_CODE, DeviceCodes
from localdev.simulator.entra_errors import EntraError, missing, unknown_tenant
from localdev.simulator.entra_grants import Grants
from localdev.simulator.tokens import TokenIssuer
from localdev.simulator.wire import SimRequest, SimResponse

GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ALIASES = frozenset({"common", "organizations", "consumers"})
CLAIMS_SUPPORTED = (
    "sub iss cloud_instance_name cloud_instance_host_name cloud_graph_host_name msgraph_host aud exp iat "
    "auth_time acr nonce preferred_username name tid ver at_hash c_hash email"
)


class EntraService:
    """Routes `/{tenant}/...` requests on the main port to discovery, the token endpoint and device code.

    Client authentication, the grants (with their refresh tokens) and device flows are separate parts
    (`entra_client_auth`, `entra_grants`, `entra_device_code`); this class owns the paths and the tenant.
    """

    def __init__(
        self,
        authority: str,
        issuer: TokenIssuer,
        directories: list[Directory],
        counters: Counters,
        *,
        device_code_interval: int = 5,
        device_code_lifetime: int = 900,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.authority = authority.rstrip("/")
        self.issuer = issuer
        self.directories = {d.tenant_id: d for d in directories}
        self.default = directories[0]
        self.counters = counters
        self.clients = ClientAuthenticator(self.authority, issuer, clock)
        self.grants = Grants(issuer, counters, self.clients)
        self.device_codes = DeviceCodes(
            directories=self.directories,
            clients=self.clients,
            grants=self.grants,
            interval=device_code_interval,
            lifetime=device_code_lifetime,
            clock=clock,
        )

    # -- routing -------------------------------------------------------------------------------------

    def endpoint_name(self, req: SimRequest) -> str:
        """A stable counter name for a request (no tenant ids or user names in it)."""
        parts = [p for p in req.path.split("/") if p]
        tail = "/".join(parts[1:])
        names = {
            "v2.0/.well-known/openid-configuration": "discovery",
            ".well-known/openid-configuration": "discovery_v1",
            "discovery/v2.0/keys": "jwks",
            "discovery/keys": "jwks",
            "oauth2/v2.0/token": "token",
            "oauth2/token": "token_v1",
            "oauth2/v2.0/devicecode": "devicecode",
        }
        if len(parts) >= 2 and parts[1] == "userrealm":
            return "userrealm"
        return names.get(tail, "other")

    def handle(self, req: SimRequest) -> SimResponse:
        parts = [p for p in req.path.split("/") if p]
        correlation = req.header("client-request-id") or None
        if len(parts) < 2:
            return SimResponse.json(404, {"error": "not_found", "error_description": "Unknown endpoint."})
        tenant_seg, tail = parts[0], "/".join(parts[1:])
        try:
            if tenant_seg == "common" and parts[1] == "userrealm" and req.method == "GET":
                return self._user_realm(unquote(parts[2]) if len(parts) > 2 else "")
            directory = self._directory(tenant_seg)
            if tail == "v2.0/.well-known/openid-configuration" and req.method == "GET":
                return SimResponse.json(200, self._openid_configuration(tenant_seg, directory))
            if tail == ".well-known/openid-configuration" and req.method == "GET":
                return SimResponse.json(200, self._openid_configuration_v1(tenant_seg, directory))
            if tail in ("discovery/v2.0/keys", "discovery/keys") and req.method == "GET":
                return SimResponse.json(200, self.issuer.jwks())
            if tail == "oauth2/v2.0/token":
                self._require_post(req)
                return self._token(req, tenant_seg, directory, v1=False)
            if tail == "oauth2/token":
                self._require_post(req)
                return self._token(req, tenant_seg, directory, v1=True)
            if tail == "oauth2/v2.0/devicecode":
                self._require_post(req)
                return self.device_codes.start(req, directory)
            if tail in ("oauth2/v2.0/authorize", "oauth2/authorize"):
                raise EntraError(
                    400,
                    "invalid_request",
                    900561,
                    "Interactive sign-in is not available in the local simulator; use device code.",
                )
        except EntraError as exc:
            self.counters.incr("token_errors", f"AADSTS{exc.code}")
            return exc.response(correlation)
        return SimResponse.json(404, {"error": "not_found", "error_description": "Unknown endpoint."})

    @staticmethod
    def _require_post(req: SimRequest) -> None:
        if req.method != "POST":
            raise EntraError(
                400,
                "invalid_request",
                900561,
                "The endpoint only accepts POST, OPTIONS requests. Received a GET",
            )

    def _directory(self, tenant_seg: str) -> Directory:
        if tenant_seg.lower() in ALIASES:
            return self.default
        found = self.directories.get(tenant_seg.lower())
        if found:
            return found
        for d in self.directories.values():
            if d.domain.lower() == tenant_seg.lower():
                return d
        raise unknown_tenant(tenant_seg)

    # -- discovery -----------------------------------------------------------------------------------

    def _openid_configuration(self, tenant_seg: str, directory: Directory) -> dict[str, Any]:
        alias = tenant_seg.lower() in ALIASES
        seg = tenant_seg if alias else directory.tenant_id
        base = f"{self.authority}/{seg}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{self.authority}/{'{tenantid}' if alias else directory.tenant_id}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": CLAIMS_SUPPORTED.split(),
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def _openid_configuration_v1(self, tenant_seg: str, directory: Directory) -> dict[str, Any]:
        seg = tenant_seg if tenant_seg.lower() in ALIASES else directory.tenant_id
        base = f"{self.authority}/{seg}"
        return {
            "token_endpoint": f"{base}/oauth2/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "scopes_supported": ["openid"],
            "issuer": self.issuer.v1_issuer(directory.tenant_id),
            "authorization_endpoint": f"{base}/oauth2/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/devicecode",
            "end_session_endpoint": f"{base}/oauth2/logout",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
        }

    def _user_realm(self, username: str) -> SimResponse:
        domain = username.rpartition("@")[2].lower()
        known = any(d.domain.lower() == domain for d in self.directories.values())
        return SimResponse.json(
            200,
            {
                "ver": "1.0",
                "account_type": "Managed" if known else "Unknown",
                "domain_name": domain,
                "cloud_instance_name": "microsoftonline.com",
                "cloud_audience_urn": "urn:federation:MicrosoftOnline",
            },
        )

    # -- token endpoint ------------------------------------------------------------------------------

    def _token(self, req: SimRequest, tenant_seg: str, directory: Directory, *, v1: bool) -> SimResponse:
        form = req.form()
        grant = form.get("grant_type", "")
        if not grant:
            raise missing("grant_type")
        handlers = {
            "client_credentials": self.grants.client_credentials,
            "password": self.grants.password,
            GRANT_DEVICE_CODE: self.device_codes.redeem,
            "device_code": self.device_codes.redeem,
            GRANT_JWT_BEARER: self.grants.on_behalf_of,
            "refresh_token": self.grants.refresh,
        }
        handler = handlers.get(grant)
        if handler is None:
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        if v1 and "resource" in form and "scope" not in form:
            form["scope"] = form["resource"].rstrip("/") + "/.default"
            if grant != "client_credentials":
                form["scope"] += " openid"
        elif v1 and "scope" in form and "resource" not in form and grant == "client_credentials":
            raise missing("resource")
        payload = handler(TokenRequest(req, form, tenant_seg, directory))
        if v1:
            payload = self._as_v1(payload, form)
        return SimResponse.json(200, payload, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _as_v1(self, payload: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
        now = self.issuer.now()
        out = dict(payload)
        out["expires_in"] = str(payload["expires_in"])
        out["ext_expires_in"] = str(payload["ext_expires_in"])
        out["expires_on"] = str(now + int(payload["expires_in"]))
        out["not_before"] = str(now)
        out["resource"] = form.get("resource") or form.get("scope", "").split(" ")[0].rsplit("/", 1)[0]
        out.pop("scope", None)
        return out

    # -- admin operations ----------------------------------------------------------------------------

    def device_flows(self) -> list[dict[str, Any]]:
        return self.device_codes.pending()

    def approve_device_code(self, user_code: str, user: str) -> str:
        """Sign in `user` (key, username or object id) for a pending flow; returns the username."""
        return self.device_codes.approve(user_code, user)

    def deny_device_code(self, user_code: str) -> None:
        self.device_codes.deny(user_code)

    def expire_device_code(self, user_code: str) -> None:
        self.device_codes.expire(user_code)

    def revoke_refresh_tokens(self, client_id: str | None = None) -> int:
        return self.grants.revoke_refresh_tokens(client_id)
