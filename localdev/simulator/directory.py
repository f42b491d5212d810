"""The simulated Entra ID directory: app registrations, credentials, users, managed identities, resources.

Plain data plus lookups; the protocol (token endpoint, errors) lives in entra.py and the seeding in world.py.
Mutations (rotation, expiry marks) happen under `Directory.lock` because admin calls race with token requests.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import threading
import uuid
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from localdev.simulator.tokens import KEY_VAULT_RESOURCE, MDA_RESOURCE, TOKEN_EXCHANGE_AUDIENCE

GRAPH_RESOURCE = "00000003-0000-0000-c000-000000000000"
KEY_VAULT_APP_ID = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
TOKEN_EXCHANGE_APP_ID = "fb60f99c-7a34-4190-8149-302f77469936"
MONITOR_RESOURCE = "https://monitor.azure.com"
MONITOR_APP_ID = "monitor.azure.com"  # the simulator needs an id; tokens carry the audience URI
MDA_PERMISSIONS = frozenset(
    {
        "Investigation.read",
        "Investigation.manage",
        "Discovery.read",
        "Discovery.manage",
        "Settings.read",
        "Settings.manage",
    }
)


def new_secret(length: int = 40) -> str:
    """A client-secret-like random string (Entra secrets are 40 chars of letters, digits and ~._-)."""
    alphabet = string.ascii_letters + string.digits + "~._-"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_token(length: int = 64) -> str:
    """A legacy MDA API token: case-sensitive [0-9a-zA-Z], 64+ characters."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class ClientSecret:
    value: str
    key_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    expired: bool = False

    def matches(self, candidate: str) -> bool:
        return hmac.compare_digest(self.value.encode(), candidate.encode())


@dataclass
class FederatedCredential:
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (TOKEN_EXCHANGE_AUDIENCE,)


@dataclass
class App:
    """An app registration and its service principal in the tenant."""

    name: str
    client_id: str
    display_name: str
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    public_client: bool = False
    secrets: list[ClientSecret] = field(default_factory=list)
    certificates: list[x509.Certificate] = field(default_factory=list)
    federated: list[FederatedCredential] = field(default_factory=list)
    app_id_uri: str | None = None
    exposed_scopes: set[str] = field(default_factory=set)  # delegated scopes it exposes as an API
    app_roles: dict[str, set[str]] = field(default_factory=dict)  # resource app id -> granted roles
    delegated: dict[str, set[str]] = field(default_factory=dict)  # resource app id -> consented scopes

    def certificate_by_thumbprint(
        self, *, sha1: bytes | None, sha256: bytes | None
    ) -> x509.Certificate | None:
        for cert in self.certificates:
            if sha1 is not None and cert.fingerprint(hashes.SHA1()) == sha1:  # noqa: S303 - x5t is SHA-1
                return cert
            if sha256 is not None and cert.fingerprint(hashes.SHA256()) == sha256:
                return cert
        return None


@dataclass
class User:
    key: str  # short name used by tests and the admin API ("analyst")
    username: str
    password: str
    display_name: str
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    mfa_required: bool = False

    def pairwise_sub(self, client_id: str) -> str:
        """Entra's `sub` is pairwise per app; derive it stably from the user and the client."""
        return hashlib.sha256(f"{self.object_id}:{client_id}".encode()).hexdigest()[:43]


@dataclass
class ManagedIdentity:
    name: str
    client_id: str
    principal_id: str
    system_assigned: bool = False
    app_roles: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    """Something tokens can be requested for: a Microsoft API or an app exposing an API."""

    app_id: str
    audience: str  # the `aud` claim of tokens for it
    identifiers: frozenset[str]  # prefixes accepted in scopes (app id, identifier URIs)
    display_name: str
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()


WELL_KNOWN_RESOURCES = (
    Resource(
        MDA_RESOURCE,
        MDA_RESOURCE,
        frozenset({MDA_RESOURCE}),
        "Microsoft Cloud App Security",
        MDA_PERMISSIONS,
        MDA_PERMISSIONS,
    ),
    Resource(
        KEY_VAULT_APP_ID,
        KEY_VAULT_RESOURCE,
        frozenset({KEY_VAULT_RESOURCE, KEY_VAULT_APP_ID}),
        "Azure Key Vault",
        frozenset(),
        frozenset({"user_impersonation"}),
    ),
    Resource(
        GRAPH_RESOURCE,
        GRAPH_RESOURCE,
        frozenset({GRAPH_RESOURCE, "https://graph.microsoft.com"}),
        "Microsoft Graph",
        frozenset({"SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"}),
        frozenset({"User.Read", "openid", "profile", "email", "offline_access"}),
    ),
    Resource(
        TOKEN_EXCHANGE_APP_ID,
        TOKEN_EXCHANGE_AUDIENCE,
        frozenset({TOKEN_EXCHANGE_AUDIENCE, TOKEN_EXCHANGE_APP_ID}),
        "AAD Token Exchange Endpoint",
    ),
    # Azure Monitor (Logs Ingestion API): access is Azure RBAC on the data collection rule, not app roles.
    Resource(
        MONITOR_APP_ID,
        MONITOR_RESOURCE,
        frozenset({MONITOR_RESOURCE, MONITOR_APP_ID}),
        "Azure Monitor",
    ),
)


class Directory:
    """One Entra tenant."""

    def __init__(self, tenant_id: str, domain: str) -> None:
        self.tenant_id = tenant_id
        self.domain = domain
        self.apps: dict[str, App] = {}
        self.users: dict[str, User] = {}  # lower-cased username -> user
        self.identities: dict[str, ManagedIdentity] = {}  # client id -> identity
        self.aliases: dict[str, str] = {}  # extra identifier (a simulated Graph host) -> resource app id
        self.lock = threading.RLock()

    def add_app(self, app: App) -> App:
        self.apps[app.client_id] = app
        return app

    def add_user(self, user: User) -> User:
        self.users[user.username.lower()] = user
        return user

    def add_identity(self, identity: ManagedIdentity) -> ManagedIdentity:
        self.identities[identity.client_id] = identity
        return identity

    def app(self, client_id: str) -> App | None:
        return self.apps.get(client_id.strip().lower()) or self.apps.get(client_id.strip())

    def app_named(self, name_or_id: str) -> App | None:
        found = self.app(name_or_id)
        if found:
            return found
        return next((a for a in self.apps.values() if a.name == name_or_id), None)

    def user(self, name: str) -> User | None:
        """By username (case-insensitive), short key ("analyst") or object id."""
        found = self.users.get(name.lower())
        if found:
            return found
        return next((u for u in self.users.values() if name in (u.key, u.object_id)), None)

    def system_identity(self) -> ManagedIdentity | None:
        return next((i for i in self.identities.values() if i.system_assigned), None)

    def resource(self, identifier: str) -> Resource | None:
        """Resolve a scope prefix (GUID, identifier URI) to a resource, including apps that expose an API."""
        wanted = identifier.rstrip("/")
        wanted = self.aliases.get(wanted, wanted)
        for res in WELL_KNOWN_RESOURCES:
            if wanted in res.identifiers or wanted.lower() in {i.lower() for i in res.identifiers}:
                return res
        for app in self.apps.values():
            ids = {app.client_id}
            if app.app_id_uri:
                ids.add(app.app_id_uri)
            if wanted in ids:
                return Resource(
                    app.client_id,
                    app.client_id,
                    frozenset(ids),
                    app.display_name,
                    frozenset(),
                    frozenset(app.exposed_scopes),
                )
        return None

    def principal_ids(self, client_id: str) -> set[str]:
        """Every id that names the caller behind `client_id` (app or managed identity)."""
        ids = {client_id}
        app = self.apps.get(client_id)
        if app:
            ids.update({app.object_id, app.name})
        identity = self.identities.get(client_id)
        if identity:
            ids.update({identity.principal_id, identity.name})
        return ids
