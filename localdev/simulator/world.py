"""The seeded local world and the state operations the admin API exposes (rotation, expiry, revocation).

One Entra tenant with the app registrations the product uses, users, managed identities, and a Key Vault
holding every credential the app reads. Secret values are generated per run and live only here (and in the
simulated vault); `describe()` lists names and ids for simulator.json, never values (except the analyst's
password, which the simulator contract publishes for user-context tests).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from localdev.pki import ClientCertificate, make_client_certificate
from localdev.simulator.counters import Counters
from localdev.simulator.directory import (
    GRAPH_RESOURCE,
    MDA_PERMISSIONS,
    App,
    ClientSecret,
    Directory,
    FederatedCredential,
    ManagedIdentity,
    User,
    new_secret,
    new_token,
)
from localdev.simulator.entra import EntraService
from localdev.simulator.faults import FaultInjector
from localdev.simulator.keyvault import PEM_CONTENT_TYPE, PFX_CONTENT_TYPE, KeyVaultService
from localdev.simulator.logs_ingestion import LogsIngestionService
from localdev.simulator.msi import MsiService
from localdev.simulator.tokens import KEY_VAULT_RESOURCE, MDA_RESOURCE, TokenIssuer
from localdev.simulator.wire import SimRequest, SimResponse

DAEMON_ROLES = ("Investigation.read", "Investigation.manage", "Discovery.manage")
DELEGATED_MDA = {"Investigation.read", "Investigation.manage", "Discovery.read", "Discovery.manage"}
LEGACY_ALL = set(MDA_PERMISSIONS)

SECRET_NAMES = {
    "client_secret_name": "mcas-client-secret",
    "certificate_name": "mcas-client-cert",
    "certificate_pfx_name": "mcas-client-cert-pfx",
    "legacy_token_name": "mcas-api-token",
    "legacy_token_readonly_name": "mcas-api-token-readonly",
    "username_name": "mcas-user-name",
    "password_name": "mcas-user-password",
    "readonly_client_secret_name": "mcas-readonly-client-secret",
    "webhook_api_secret_name": "webhook-api-client-secret",
}


class MdaServiceLike(Protocol):
    """What the server needs from localdev.simulator.mda.MdaService (kept structural: mda.py is optional)."""

    def handle(self, req: SimRequest) -> SimResponse: ...

    def handle_admin(self, req: SimRequest, subpath: str) -> SimResponse: ...


@dataclass
class WorldOptions:
    token_lifetime: int = 3599
    device_code_interval: int = 5
    device_code_lifetime: int = 900
    mda_tenants: list[str] = field(default_factory=lambda: ["contoso"])
    rate_limit: int = 30
    rate_window: float = 60.0
    seed_alerts: int = 0


def admin_request(method: str, payload: dict[str, Any] | None = None) -> SimRequest:
    """A synthetic request for calling a service's admin entry point from inside the simulator."""
    body = json.dumps(payload).encode() if payload is not None else b""
    return SimRequest(method, "/_admin", {}, {"content-type": "application/json"}, body, "main")


class World:
    """Everything stateful in one simulator process except the listeners."""

    def __init__(self, authority: str, options: WorldOptions) -> None:
        self.authority = authority.rstrip("/")
        self.options = options
        self.counters = Counters()
        self.faults = FaultInjector(on_fire=lambda svc, kind: self.counters.incr("faults", f"{svc}:{kind}"))
        self.issuer = TokenIssuer(self.authority, lifetime_s=options.token_lifetime)
        self.directory = Directory(str(uuid.uuid4()), "mcaslocal.onmicrosoft.com")
        self.lock = threading.RLock()
        self.mda: dict[str, MdaServiceLike] = {}
        self.graph: dict[str, MdaServiceLike] = {}  # Graph security API per MDA tenant (graph.py)
        self.legacy_tokens: dict[str, set[str]] = {}
        self._seed_directory()
        self.entra = EntraService(
            self.authority,
            self.issuer,
            [self.directory],
            self.counters,
            device_code_interval=options.device_code_interval,
            device_code_lifetime=options.device_code_lifetime,
        )
        self.keyvault = KeyVaultService(
            self.authority,
            authority=self.authority,
            tenant_id=self.directory.tenant_id,
            verifier=self.issuer,
            counters=self.counters,
        )
        self.msi_header = new_secret(32).replace("~", "x").replace(".", "y")
        self.msi = MsiService(self.msi_header, self.issuer, self.directory, self.counters)
        self.logs = LogsIngestionService(self.issuer)
        self._seed_vault()

    # -- seeding -------------------------------------------------------------------------------------

    def _seed_directory(self) -> None:
        d = self.directory
        issuer = self.issuer.issuer(d.tenant_id)
        self.system_identity = d.add_identity(
            ManagedIdentity("func-mcas-local", str(uuid.uuid4()), str(uuid.uuid4()), system_assigned=True)
        )
        self.user_identity = d.add_identity(
            ManagedIdentity("id-mcas-local", str(uuid.uuid4()), str(uuid.uuid4()))
        )
        self.certificate = make_client_certificate("mcas-daemon")
        daemon_id = str(uuid.uuid4())
        self.daemon = d.add_app(
            App(
                "daemon",
                daemon_id,
                "MCAS automation (daemon)",
                secrets=[ClientSecret(new_secret())],
                certificates=[self.certificate.certificate],
                federated=[
                    FederatedCredential("function-app-system-mi", issuer, self.system_identity.principal_id),
                    FederatedCredential("function-app-user-mi", issuer, self.user_identity.principal_id),
                ],
                app_id_uri=f"api://{daemon_id}",
                exposed_scopes={"access_as_user"},
                app_roles={MDA_RESOURCE: set(DAEMON_ROLES), GRAPH_RESOURCE: {"SecurityAlert.ReadWrite.All"}},
                delegated={MDA_RESOURCE: set(DELEGATED_MDA)},
            )
        )
        self.readonly = d.add_app(
            App(
                "readonly",
                str(uuid.uuid4()),
                "MCAS reader",
                secrets=[ClientSecret(new_secret())],
                app_roles={MDA_RESOURCE: {"Investigation.read"}, GRAPH_RESOURCE: {"SecurityAlert.Read.All"}},
            )
        )
        webhook_id = str(uuid.uuid4())
        self.webhook_api = d.add_app(
            App(
                "webhook_api",
                webhook_id,
                "MCAS SOAR webhook API",
                secrets=[ClientSecret(new_secret())],
                app_id_uri=f"api://{webhook_id}",
                exposed_scopes={"access_as_user", "Jobs.Submit"},
                delegated={MDA_RESOURCE: set(DELEGATED_MDA)},
            )
        )
        self.public = d.add_app(
            App(
                "public",
                str(uuid.uuid4()),
                "MCAS operator CLI",
                public_client=True,
                delegated={
                    MDA_RESOURCE: set(DELEGATED_MDA),
                    webhook_id: {"access_as_user", "Jobs.Submit"},
                    daemon_id: {"access_as_user"},
                    KEY_VAULT_RESOURCE: {"user_impersonation"},
                },
            )
        )
        self.analyst = d.add_user(User("analyst", f"analyst@{d.domain}", new_secret(20), "Alex Analyst"))
        self.mfa_analyst = d.add_user(
            User("mfa_analyst", f"mfa.analyst@{d.domain}", new_secret(20), "Morgan MFA", mfa_required=True)
        )

    def _seed_vault(self) -> None:
        kv = self.keyvault
        kv.set_secret(SECRET_NAMES["client_secret_name"], self.daemon.secrets[0].value)
        kv.set_secret(SECRET_NAMES["readonly_client_secret_name"], self.readonly.secrets[0].value)
        kv.set_secret(SECRET_NAMES["webhook_api_secret_name"], self.webhook_api.secrets[0].value)
        self._store_certificate(self.certificate)
        full, readonly = new_token(64), new_token(96)
        self.legacy_tokens[full] = set(LEGACY_ALL)
        self.legacy_tokens[readonly] = {"Investigation.read"}
        kv.set_secret(SECRET_NAMES["legacy_token_name"], full)
        kv.set_secret(SECRET_NAMES["legacy_token_readonly_name"], readonly)
        kv.set_secret(SECRET_NAMES["username_name"], self.analyst.username)
        kv.set_secret(SECRET_NAMES["password_name"], self.analyst.password)

    def _store_certificate(self, cert: ClientCertificate) -> None:
        self.keyvault.set_secret(
            SECRET_NAMES["certificate_name"],
            cert.combined_pem.decode(),
            content_type=PEM_CONTENT_TYPE,
            certificate=cert.certificate,
        )
        self.keyvault.set_secret(
            SECRET_NAMES["certificate_pfx_name"],
            base64.b64encode(cert.pkcs12()).decode(),
            content_type=PFX_CONTENT_TYPE,
            certificate=cert.certificate,
        )

    # -- admin operations ----------------------------------------------------------------------------

    def _app_for_secret(self, name: str) -> App | None:
        return {
            SECRET_NAMES["client_secret_name"]: self.daemon,
            SECRET_NAMES["readonly_client_secret_name"]: self.readonly,
            SECRET_NAMES["webhook_api_secret_name"]: self.webhook_api,
        }.get(name)

    def rotate_secret(self, name: str, *, keep_old: bool = False) -> dict[str, Any]:
        """New value for `name` in Key Vault *and* wherever it is a credential (Entra app, MDA legacy token).

        The old credential stops working unless `keep_old` (an overlap window, as in a careful rotation).
        """
        with self.lock:
            app = self._app_for_secret(name)
            if app is not None:
                value = new_secret()
                with self.directory.lock:
                    app.secrets = ([*app.secrets] if keep_old else []) + [ClientSecret(value)]
                version = self.keyvault.set_secret(name, value)
                return {"name": name, "version": version.version}
            if name in (SECRET_NAMES["certificate_name"], SECRET_NAMES["certificate_pfx_name"]):
                cert = make_client_certificate("mcas-daemon")
                with self.directory.lock:
                    old = self.daemon.certificates if keep_old else []
                    self.daemon.certificates = [*old, cert.certificate]
                self.certificate = cert
                self._store_certificate(cert)
                latest = self.keyvault.get_secret(name)
                assert latest is not None
                return {"name": name, "version": latest.version, "thumbprint": cert.thumbprint_sha1}
            if name in (SECRET_NAMES["legacy_token_name"], SECRET_NAMES["legacy_token_readonly_name"]):
                current = self.keyvault.get_secret(name)
                roles = self.legacy_tokens.get(current.value, set()) if current else set()
                value = new_token(64 if name == SECRET_NAMES["legacy_token_name"] else 96)
                if current is not None and not keep_old:
                    self.legacy_tokens.pop(current.value, None)
                    self._mda_admin("DELETE", "tokens", {"token": current.value})
                self.legacy_tokens[value] = set(roles)
                self._mda_admin("POST", "tokens", {"token": value, "roles": sorted(roles)})
                version = self.keyvault.set_secret(name, value)
                return {"name": name, "version": version.version}
            if name == SECRET_NAMES["password_name"]:
                value = new_secret(20)
                with self.directory.lock:
                    self.analyst.password = value
                version = self.keyvault.set_secret(name, value)
                return {"name": name, "version": version.version}
            current = self.keyvault.get_secret(name)
            if current is None:
                raise KeyError(name)
            version = self.keyvault.set_secret(name, new_secret(), content_type=current.content_type)
            return {"name": name, "version": version.version}

    def _mda_admin(self, method: str, subpath: str, payload: dict[str, Any]) -> None:
        for service in self.mda.values():
            service.handle_admin(admin_request(method, payload), subpath)

    def expire_client_secrets(self, app_name: str, *, expired: bool = True) -> dict[str, Any]:
        """Mark every current secret of an app expired (AADSTS7000222) or valid again."""
        app = self.directory.app_named(app_name)
        if app is None:
            raise KeyError(app_name)
        with self.directory.lock:
            for secret in app.secrets:
                secret.expired = expired
        return {"app": app.name, "client_id": app.client_id, "expired": expired, "secrets": len(app.secrets)}

    def revoke_tokens(self, client_id: str | None) -> dict[str, Any]:
        if client_id is not None:
            app = self.directory.app_named(client_id)
            client_id = app.client_id if app else client_id
        revoked = self.issuer.revoke(client_id)
        refresh = self.entra.revoke_refresh_tokens(client_id)
        return {"revoked": revoked, "refresh_tokens_revoked": refresh, "client_id": client_id}

    def mint_token(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A token with chosen claims for tests (expired, wrong audience, a user token for an API app...)."""
        app = self.directory.app_named(str(spec.get("app", "daemon")))
        if app is None:
            raise KeyError(str(spec.get("app")))
        audience = str(spec.get("audience", MDA_RESOURCE))
        user = self.directory.user(str(spec["user"])) if spec.get("user") else None
        lifetime = int(spec.get("lifetime", self.issuer.lifetime_s))
        issued_at = self.issuer.now() - lifetime - 60 if spec.get("expired") else None
        roles = spec.get("roles")
        scp = spec.get("scp")
        token, claims = self.issuer.issue(
            tenant_id=self.directory.tenant_id,
            audience=audience,
            client_id=app.client_id,
            subject=user.pairwise_sub(app.client_id) if user else app.object_id,
            object_id=user.object_id if user else app.object_id,
            roles=[str(r) for r in roles] if isinstance(roles, list) else None,
            scp=str(scp) if scp else None,
            user={"upn": user.username, "name": user.display_name} if user else None,
            lifetime_s=lifetime,
            issued_at=issued_at,
        )
        return {"access_token": token, "claims": claims}

    def set_lifetime(self, seconds: int | None) -> int:
        self.issuer.lifetime_s = self.issuer.default_lifetime_s if seconds is None else int(seconds)
        return self.issuer.lifetime_s

    def reset(self) -> dict[str, Any]:
        """Back to a clean test state: no faults, zero counters, default lifetime, no expiry marks or denials.

        Deliberately kept: rotated credentials (Key Vault and Entra stay consistent) and issued tokens.
        """
        self.faults.clear()
        self.counters.reset()
        self.set_lifetime(None)
        self.keyvault.denied_principals.clear()
        with self.directory.lock:
            for app in self.directory.apps.values():
                for secret in app.secrets:
                    secret.expired = False
        for service in self.mda.values():
            service.handle_admin(admin_request("POST", {}), "throttle/reset")
        self.logs.clear_conditions()
        for graph in self.graph.values():
            graph.handle_admin(admin_request("POST", {}), "reset")
        return {"reset": True}

    # -- description ---------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        d = self.directory
        return {
            "tenant_id": d.tenant_id,
            "tenant_domain": d.domain,
            "mda_resource": MDA_RESOURCE,
            "apps": {
                "daemon": {
                    "client_id": self.daemon.client_id,
                    "object_id": self.daemon.object_id,
                    "roles": list(DAEMON_ROLES),
                    "app_id_uri": self.daemon.app_id_uri,
                    "certificate_thumbprint": self.certificate.thumbprint_sha1,
                },
                "readonly": {
                    "client_id": self.readonly.client_id,
                    "object_id": self.readonly.object_id,
                    "roles": ["Investigation.read"],
                },
                "public": {"client_id": self.public.client_id, "scopes": sorted(DELEGATED_MDA)},
                "webhook_api": {
                    "client_id": self.webhook_api.client_id,
                    "app_id_uri": self.webhook_api.app_id_uri,
                    "scopes": sorted(self.webhook_api.exposed_scopes),
                },
            },
            "users": {
                "analyst": {"username": self.analyst.username, "password": self.analyst.password},
                "mfa_analyst": {
                    "username": self.mfa_analyst.username,
                    "password": self.mfa_analyst.password,
                    "mfa_required": True,
                },
            },
            "managed_identities": {
                "system": {
                    "client_id": self.system_identity.client_id,
                    "principal_id": self.system_identity.principal_id,
                },
                "user": {
                    "client_id": self.user_identity.client_id,
                    "principal_id": self.user_identity.principal_id,
                },
            },
            "secrets": dict(SECRET_NAMES),
        }
