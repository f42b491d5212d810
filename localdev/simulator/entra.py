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

import base64
import binascii
import json
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from localdev.simulator.counters import Counters
from localdev.simulator.directory import GRAPH_RESOURCE, App, Directory, Resource, User
from localdev.simulator.tokens import TokenIssuer, audience_matches
from localdev.simulator.wire import InvalidToken, SimRequest, SimResponse

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
ALIASES = frozenset({"common", "organizations", "consumers"})
CLAIMS_SUPPORTED = (
    "sub iss cloud_instance_name cloud_instance_host_name cloud_graph_host_name msgraph_host aud exp iat "
    "auth_time acr nonce preferred_username name tid ver at_hash c_hash email"
)
NO_CREDENTIAL = (
    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
)


class EntraError(Exception):
    """An Entra protocol error; `response()` renders the real service's error body."""

    def __init__(self, status: int, error: str, code: int, description: str, **extra: Any) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description
        self.extra = extra

    def response(self, correlation_id: str | None = None) -> SimResponse:
        trace_id = str(uuid.uuid4())
        correlation = correlation_id or str(uuid.uuid4())
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        body = {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} "
            f"Correlation ID: {correlation} Timestamp: {stamp}",
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
            **self.extra,
        }
        return SimResponse.json(self.status, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})


def _missing(name: str) -> EntraError:
    return EntraError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'."
    )


def _unknown_tenant(name: str) -> EntraError:
    return EntraError(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are signing into "
        "the correct cloud. Check with your subscription administrator, this may happen if there are no "
        "active subscriptions for the tenant.",
    )


def _invalid_scope(description: str, code: int = 70011) -> EntraError:
    return EntraError(400, "invalid_scope", code, description)


def _client_auth_error(code: int, description: str) -> EntraError:
    return EntraError(401, "invalid_client", code, description)


def _no_client_credential() -> EntraError:
    return _client_auth_error(7000218, NO_CREDENTIAL)


def _unknown_user() -> EntraError:
    return EntraError(400, "invalid_grant", 50034, "The user account does not exist in the directory.")


@dataclass
class ScopeRequest:
    """A parsed `scope` parameter: one resource, its permissions as requested, and the OIDC extras."""

    resource: Resource
    prefix: str  # how the client named the resource (kept for the response's `scope`)
    permissions: list[str]
    offline_access: bool
    openid: bool


@dataclass
class RefreshGrant:
    client_id: str
    tenant_id: str
    user_id: str
    revoked: bool = False


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


class EntraService:
    """Routes `/{tenant}/...` requests on the main port. Holds device flows and refresh tokens."""

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
        self.device_code_interval = device_code_interval
        self.device_code_lifetime = device_code_lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._device_flows: dict[str, DeviceFlow] = {}  # device code -> flow
        self._refresh: dict[str, RefreshGrant] = {}

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
                return self._devicecode(req, directory)
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
        raise _unknown_tenant(tenant_seg)

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
            raise _missing("grant_type")
        handlers = {
            "client_credentials": self._grant_client_credentials,
            "password": self._grant_password,
            GRANT_DEVICE_CODE: self._grant_device_code,
            "device_code": self._grant_device_code,
            GRANT_JWT_BEARER: self._grant_obo,
            "refresh_token": self._grant_refresh,
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
            raise _missing("resource")
        payload = handler(req, form, tenant_seg, directory)
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

    def _token_endpoints(self, tenant_seg: str, directory: Directory) -> set[str]:
        """Audiences accepted in a client assertion: the token endpoint under any name of the tenant."""
        names = {tenant_seg, directory.tenant_id, directory.domain}
        out: set[str] = set()
        for name in names:
            out.update(
                {
                    f"{self.authority}/{name}/oauth2/v2.0/token",
                    f"{self.authority}/{name}/oauth2/token",
                    f"{self.authority}/{name}/v2.0",
                }
            )
        return out

    def _authenticate_client(
        self, req: SimRequest, form: dict[str, str], tenant_seg: str, directory: Directory
    ) -> tuple[App, str]:
        """Identify and authenticate the client; returns (app, method) with method in
        secret / certificate / federated / public."""
        client_id = form.get("client_id", "")
        secret = form.get("client_secret")
        auth = req.header("authorization")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise EntraError(
                    401, "invalid_client", 7000216, "'client_assertion' or 'client_secret' is required."
                ) from None
            basic_id, _, basic_secret = decoded.partition(":")
            client_id = client_id or unquote(basic_id.replace("+", " "))
            secret = unquote(basic_secret.replace("+", " "))
        if not client_id:
            raise _missing("client_id")
        with directory.lock:
            app = directory.app(client_id)
            if app is None:
                raise EntraError(
                    400,
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{client_id}' was not found in the directory "
                    f"'{directory.domain}'. This can happen if the application has not been installed by "
                    "the administrator of the tenant or consented to by any user in the tenant. You may have "
                    "sent your authentication request to the wrong tenant.",
                )
            assertion = form.get("client_assertion")
            if assertion is not None:
                if app.public_client:
                    raise self._public_with_credential()
                if form.get("client_assertion_type") != ASSERTION_TYPE:
                    raise EntraError(
                        400,
                        "invalid_request",
                        50027,
                        "JWT token is invalid or malformed: client_assertion_type must be "
                        f"'{ASSERTION_TYPE}'.",
                    )
                return app, self._verify_client_assertion(app, assertion, tenant_seg, directory)
            if secret is not None:
                if app.public_client:
                    raise self._public_with_credential()
                match = next((s for s in app.secrets if s.matches(secret)), None)
                if match is None:
                    raise _client_auth_error(
                        7000215,
                        "Invalid client secret provided. Ensure the secret being sent in the request is the "
                        "client secret value, not the client secret ID, for a secret added to app "
                        f"'{app.client_id}'.",
                    )
                if match.expired:
                    raise _client_auth_error(
                        7000222,
                        f"The provided client secret keys for app '{app.client_id}' are expired. Visit the "
                        "Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or "
                        "consider using certificate credentials for added security: https://aka.ms/certCreds.",
                    )
                return app, "secret"
            if app.public_client:
                return app, "public"
            raise _no_client_credential()

    def _authenticate_confidential_client(
        self, req: SimRequest, form: dict[str, str], tenant_seg: str, directory: Directory
    ) -> tuple[App, str]:
        """`_authenticate_client` for grants only a confidential client may use (client credentials, OBO)."""
        app, method = self._authenticate_client(req, form, tenant_seg, directory)
        if method == "public":
            raise _no_client_credential()
        return app, method

    @staticmethod
    def _public_with_credential() -> EntraError:
        return _client_auth_error(
            700025, "Client is public so neither 'client_assertion' nor 'client_secret' should be presented."
        )

    def _verify_client_assertion(
        self, app: App, assertion: str, tenant_seg: str, directory: Directory
    ) -> str:
        """Certificate assertions are self-issued (iss = sub = client id); anything else must be a federated
        credential's token (here: a managed identity token from this simulator)."""
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from None
        if unverified.get("iss") == app.client_id:
            self._verify_certificate_assertion(app, assertion, header, tenant_seg, directory)
            return "certificate"
        self._verify_federated_assertion(app, assertion)
        return "federated"

    def _verify_certificate_assertion(
        self, app: App, assertion: str, header: dict[str, Any], tenant_seg: str, directory: Directory
    ) -> None:
        def thumb(name: str) -> bytes | None:
            value = header.get(name)
            if not isinstance(value, str):
                return None
            try:
                return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            except (binascii.Error, ValueError):
                return None

        sha1, sha256 = thumb("x5t"), thumb("x5t#S256")
        cert = app.certificate_by_thumbprint(sha1=sha1, sha256=sha256)
        if cert is None:
            shown = (sha256 or sha1 or b"").hex().upper()
            raise _client_auth_error(
                700027,
                "Client assertion contains an invalid signature. [Reason - The key was not found., "
                f"Thumbprint of key used by client: '{shown}', Please visit the Azure Portal, Graph "
                "Explorer or directly "
                f"use MS Graph to see configured keys for app Id '{app.client_id}'.]",
            )
        if cert.not_valid_after_utc.timestamp() < self._clock():
            raise _client_auth_error(
                700027, "Client assertion contains an invalid signature. [Reason - The key used is expired.]"
            )
        public_key = cert.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise _client_auth_error(700027, "Client assertion failed signature validation.")
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256", "PS256"],
                options={"verify_aud": False, "require": ["exp", "aud", "iss", "sub"]},
                leeway=300,
            )
        except jwt.ExpiredSignatureError:
            raise _client_auth_error(700024, "Client assertion is not within its valid time range.") from None
        except jwt.InvalidSignatureError:
            raise _client_auth_error(700027, "Client assertion failed signature validation.") from None
        except jwt.PyJWTError as exc:
            raise EntraError(
                400, "invalid_request", 50027, f"JWT token is invalid or malformed ({type(exc).__name__})."
            ) from None
        endpoints = self._token_endpoints(tenant_seg, directory)
        if not any(audience_matches(claims.get("aud"), e) for e in endpoints):
            raise _client_auth_error(
                700212,
                f"Client assertion audience claim does not match the token endpoint. Audience: "
                f"'{claims.get('aud')}'.",
            )
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise _client_auth_error(
                700023,
                "Client assertion issuer and subject must both be the client id of the application.",
            )

    def _verify_federated_assertion(self, app: App, assertion: str) -> None:
        try:
            claims = self.issuer.decode(assertion)
        except InvalidToken as exc:
            if "expired" in str(exc):
                raise _client_auth_error(
                    700024, "Client assertion is not within its valid time range."
                ) from None
            raise _client_auth_error(700027, "Client assertion failed signature validation.") from None
        if self.issuer.is_revoked(str(claims.get("jti", ""))):
            raise _client_auth_error(
                700027, "Client assertion failed signature validation. [Reason - revoked]"
            )
        iss, sub, aud = str(claims.get("iss")), str(claims.get("sub")), claims.get("aud")
        records = [f for f in app.federated if f.issuer.rstrip("/") == iss.rstrip("/")]
        if not records:
            raise _client_auth_error(
                700211, f"No matching federated identity record found for presented assertion issuer '{iss}'."
            )
        records = [f for f in records if any(audience_matches(aud, a) for a in f.audiences)]
        if not records:
            raise _client_auth_error(
                700212,
                f"No matching federated identity record found for presented assertion audience '{aud}'.",
            )
        if not any(f.subject == sub for f in records):
            raise _client_auth_error(
                700213,
                f"No matching federated identity record found for presented assertion subject '{sub}'.",
            )

    # -- scopes --------------------------------------------------------------------------------------

    def _parse_scope(self, directory: Directory, scope: str) -> ScopeRequest:
        items = [s for s in scope.split() if s]
        if not items:
            raise _missing("scope")
        oidc = [s for s in items if s.lower() in OIDC_SCOPES]
        rest = [s for s in items if s.lower() not in OIDC_SCOPES]
        parsed: list[tuple[str, str]] = []
        for item in rest:
            if "://" in item:
                scheme_end = item.index("://") + 3
                slash = item.rfind("/")
                if slash < scheme_end:
                    raise _invalid_scope(
                        f"The provided value for the input parameter 'scope' is not valid. "
                        f"The scope {item} is not valid."
                    )
                parsed.append((item[:slash], item[slash + 1 :]))
            elif "/" in item:
                prefix, _, perm = item.partition("/")
                parsed.append((prefix, perm))
            else:
                parsed.append((GRAPH_RESOURCE, item))
        if not parsed:
            parsed = [(GRAPH_RESOURCE, ".default")] if oidc else []
        resources: dict[str, tuple[Resource, str]] = {}
        for prefix, _ in parsed:
            res = directory.resource(prefix)
            if res is None:
                raise EntraError(
                    400,
                    "invalid_resource",
                    500011,
                    f"The resource principal named {prefix} was not found in the tenant named "
                    f"{directory.domain}. This can happen if the application has not been installed by the "
                    "administrator of the tenant or consented to by any user in the tenant. You might have "
                    "sent your authentication request to the wrong tenant.",
                )
            resources.setdefault(res.app_id, (res, prefix))
        if len(resources) > 1:
            raise _invalid_scope(
                "Provided value for the input parameter scope is not valid because it contains more than one "
                "resource. Scope " + scope + " is not valid.",
                28000,
            )
        resource, prefix = next(iter(resources.values()))
        lowered = {s.lower() for s in oidc}
        return ScopeRequest(
            resource, prefix, [p for _, p in parsed], "offline_access" in lowered, "openid" in lowered
        )

    def _delegated_scopes(self, app: App, req: ScopeRequest) -> list[str]:
        consented = app.delegated.get(req.resource.app_id, set())
        if req.resource.app_id == GRAPH_RESOURCE:
            consented = consented | {"User.Read", "openid", "profile", "offline_access", "email"}
        if ".default" in req.permissions:
            granted = sorted(consented & req.resource.scopes)
            if not granted and req.resource.app_id != GRAPH_RESOURCE:
                raise self._consent_required(app)
            return granted
        out: list[str] = []
        for perm in req.permissions:
            match = next((s for s in req.resource.scopes if s.lower() == perm.lower()), None)
            if match is None:
                raise _invalid_scope(
                    f"The application '{app.display_name}' asked for scope '{perm}' that doesn't exist on "
                    f"the resource '{req.resource.app_id}'. Contact the app vendor.",
                    650053,
                )
            if match not in consented:
                raise self._consent_required(app)
            out.append(match)
        return out

    @staticmethod
    def _consent_required(app: App) -> EntraError:
        return EntraError(
            400,
            "invalid_grant",
            65001,
            f"The user or administrator has not consented to use the application with ID '{app.client_id}' "
            f"named '{app.display_name}'. Send an interactive authorization request for this user and "
            "resource.",
            suberror="consent_required",
        )

    # -- grants --------------------------------------------------------------------------------------

    def _count(self, grant: str, app: App, method: str) -> None:
        self.counters.incr("tokens", grant)
        self.counters.incr("tokens_by_client", app.client_id)
        self.counters.incr("client_auth", method)

    def _grant_client_credentials(
        self, req: SimRequest, form: dict[str, str], tenant_seg: str, directory: Directory
    ) -> dict[str, Any]:
        app, method = self._authenticate_confidential_client(req, form, tenant_seg, directory)
        scope = form.get("scope", "")
        if not scope:
            raise _missing("scope")
        items = scope.split()
        if len(items) != 1 or not items[0].endswith("/.default"):
            raise _invalid_scope(
                f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                "scope "
                "value with /.default suffixed to the resource identifier (application ID URI).",
                1002012,
            )
        parsed = self._parse_scope(directory, scope)
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

    def _user_token_response(
        self,
        form: dict[str, str],
        directory: Directory,
        app: App,
        user: User,
        *,
        parsed: ScopeRequest,
        method: str,
        grant: str,
    ) -> dict[str, Any]:
        """The token response of a delegated grant (`grant` names it in the counters) for `user`."""
        scopes = self._delegated_scopes(app, parsed)
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

    def _grant_password(
        self, req: SimRequest, form: dict[str, str], tenant_seg: str, directory: Directory
    ) -> dict[str, Any]:
        app, method = self._authenticate_client(req, form, tenant_seg, directory)
        username, password = form.get("username"), form.get("password")
        if not username:
            raise _missing("username")
        if password is None:
            raise _missing("password")
        parsed = self._parse_scope(directory, form.get("scope", ""))
        user = directory.users.get(username.lower())
        if user is None:
            raise EntraError(
                400,
                "invalid_grant",
                50034,
                f"The user account {{EUII Hidden}} does not exist in the {directory.tenant_id} directory. "
                "To sign into this application, the account must be added to the directory.",
            )
        if not secrets.compare_digest(user.password.encode(), password.encode()):
            raise EntraError(
                400,
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            )
        if user.mfa_required:
            raise EntraError(
                400,
                "invalid_grant",
                50076,
                "Due to a configuration change made by your administrator, or because you moved to a new "
                "location, you must use multi-factor authentication to access "
                f"'{parsed.resource.app_id}'.",
                suberror="basic_action",
                claims='{"access_token":{"capolids":{"essential":true,"values":["mfa"]}}}',
            )
        return self._user_token_response(
            form, directory, app, user, parsed=parsed, method=method, grant="password"
        )

    def _grant_obo(
        self, req: SimRequest, form: dict[str, str], tenant_seg: str, directory: Directory
    ) -> dict[str, Any]:
        app, method = self._authenticate_confidential_client(req, form, tenant_seg, directory)
        if form.get("requested_token_use") != "on_behalf_of":
            raise _missing("requested_token_use")
        assertion = form.get("assertion")
        if not assertion:
            raise _missing("assertion")
        try:
            claims = self.issuer.decode(assertion)
        except InvalidToken as exc:
            if "expired" in str(exc):
                raise EntraError(
                    400,
                    "invalid_grant",
                    500133,
                    "Assertion is not within its valid time range. Ensure that the access token is not "
                    "expired "
                    "before using it for user assertion, or request a new token.",
                ) from None
            raise EntraError(400, "invalid_grant", 50013, "Assertion failed signature validation.") from None
        if self.issuer.is_revoked(str(claims.get("jti", ""))):
            raise EntraError(
                400, "invalid_grant", 50013, "Assertion failed signature validation. [Reason - revoked]"
            )
        accepted = {app.client_id} | ({app.app_id_uri} if app.app_id_uri else set())
        if not any(audience_matches(claims.get("aud"), a) for a in accepted):
            raise EntraError(
                400,
                "invalid_grant",
                500131,
                f"Assertion audience does not match the Client app presenting the assertion. The audience in "
                f"the assertion was '{claims.get('aud')}' and the expected audience is '{app.client_id}' or "
                "one of the Application Id URIs of this application.",
            )
        user = directory.user(str(claims.get("oid", ""))) if claims.get("idtyp") == "user" else None
        if user is None:
            raise EntraError(
                400,
                "invalid_grant",
                50013,
                "Assertion failed signature validation. [Reason - the assertion is not a user token.]",
            )
        parsed = self._parse_scope(directory, form.get("scope", ""))
        return self._user_token_response(
            form, directory, app, user, parsed=parsed, method=method, grant="on_behalf_of"
        )

    def _grant_refresh(
        self, req: SimRequest, form: dict[str, str], tenant_seg: str, directory: Directory
    ) -> dict[str, Any]:
        app, method = self._authenticate_client(req, form, tenant_seg, directory)
        token = form.get("refresh_token")
        if not token:
            raise _missing("refresh_token")
        with self._lock:
            grant = self._refresh.get(token)
        if grant is None or grant.revoked or grant.client_id != app.client_id:
            raise EntraError(
                400,
                "invalid_grant",
                70000,
                "The provided value for the 'refresh_token' is not valid or has been revoked.",
            )
        user = directory.user(grant.user_id)
        if user is None:
            raise _unknown_user()
        parsed = self._parse_scope(directory, form.get("scope", "") or "openid")
        return self._user_token_response(
            form, directory, app, user, parsed=parsed, method=method, grant="refresh_token"
        )

    # -- device code ---------------------------------------------------------------------------------

    def _devicecode(self, req: SimRequest, directory: Directory) -> SimResponse:
        form = req.form()
        client_id = form.get("client_id", "")
        if not client_id:
            raise _missing("client_id")
        app = directory.app(client_id)
        if app is None:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{directory.domain}'.",
            )
        scope = form.get("scope", "")
        parsed = self._parse_scope(directory, scope)
        self._delegated_scopes(app, parsed)  # fail early on unknown or unconsented scopes
        alphabet = string.ascii_uppercase + string.digits
        user_code = "".join(secrets.choice(alphabet) for _ in range(9))
        device_code = "DAQABIQEAAAD" + secrets.token_urlsafe(96)
        flow = DeviceFlow(
            device_code,
            user_code,
            app.client_id,
            directory.tenant_id,
            scope,
            self._clock() + self.device_code_lifetime,
            self.device_code_interval,
        )
        with self._lock:
            self._device_flows[device_code] = flow
        uri = "https://microsoft.com/devicelogin"
        return SimResponse.json(
            200,
            {
                "user_code": user_code,
                "device_code": device_code,
                "verification_uri": uri,
                "expires_in": self.device_code_lifetime,
                "interval": self.device_code_interval,
                "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
                f"{user_code} "
                "to authenticate.",
            },
        )

    def _grant_device_code(
        self, req: SimRequest, form: dict[str, str], tenant_seg: str, directory: Directory
    ) -> dict[str, Any]:
        app, method = self._authenticate_client(req, form, tenant_seg, directory)
        code = form.get("device_code") or form.get("code")
        if not code:
            raise _missing("device_code")
        now = self._clock()
        with self._lock:
            flow = self._device_flows.get(code)
            if flow is None or flow.client_id != app.client_id:
                raise EntraError(
                    400, "invalid_grant", 70000, "The provided value for the 'device_code' is not valid."
                )
            if now > flow.expires_at:
                del self._device_flows[code]
                raise EntraError(
                    400,
                    "expired_token",
                    70020,
                    "The provided value for the input parameter 'device_code' is not valid. This device code "
                    "has expired.",
                )
            if flow.denied:
                del self._device_flows[code]
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
            del self._device_flows[code]
            user_id = flow.approved_user
        user = directory.user(user_id)
        if user is None:
            raise _unknown_user()
        parsed = self._parse_scope(directory, flow.scope)
        return self._user_token_response(
            form, directory, app, user, parsed=parsed, method=method, grant="device_code"
        )

    # -- admin operations ----------------------------------------------------------------------------

    def device_flows(self) -> list[dict[str, Any]]:
        now = self._clock()
        with self._lock:
            return [f.public(now) for f in self._device_flows.values() if f.expires_at >= now]

    def _flow_by_user_code(self, user_code: str) -> DeviceFlow:
        wanted = user_code.strip().upper().replace("-", "")
        with self._lock:
            for flow in self._device_flows.values():
                if flow.user_code == wanted:
                    return flow
        raise KeyError(f"no pending device code {user_code!r}")

    def approve_device_code(self, user_code: str, user: str) -> str:
        """Sign in `user` (key, username or object id) for a pending flow; returns the username."""
        flow = self._flow_by_user_code(user_code)
        directory = self.directories[flow.tenant_id]
        found = directory.user(user)
        if found is None:
            raise KeyError(f"no user {user!r}")
        with self._lock:
            flow.approved_user = found.object_id
        return found.username

    def deny_device_code(self, user_code: str) -> None:
        flow = self._flow_by_user_code(user_code)
        with self._lock:
            flow.denied = True

    def expire_device_code(self, user_code: str) -> None:
        flow = self._flow_by_user_code(user_code)
        with self._lock:
            flow.expires_at = self._clock() - 1

    def revoke_refresh_tokens(self, client_id: str | None = None) -> int:
        with self._lock:
            count = 0
            for grant in self._refresh.values():
                if not grant.revoked and (client_id is None or grant.client_id == client_id):
                    grant.revoked = True
                    count += 1
            return count
