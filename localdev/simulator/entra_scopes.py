"""Entra ID's `scope` parameter: one resource per request, `/.default` versus named permissions, consent.

Shared by the delegated grants and the device-code endpoint, which rejects unknown or unconsented scopes
before a user ever signs in.
"""

from __future__ import annotations

from dataclasses import dataclass

from localdev.simulator.directory import GRAPH_RESOURCE, App, Directory, Resource
from localdev.simulator.entra_errors import EntraError, invalid_scope, missing

OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})


@dataclass
class ScopeRequest:
    """A parsed `scope` parameter: one resource, its permissions as requested, and the OIDC extras."""

    resource: Resource
    prefix: str  # how the client named the resource (kept for the response's `scope`)
    permissions: list[str]
    offline_access: bool
    openid: bool


def parse_scope(directory: Directory, scope: str) -> ScopeRequest:
    """Split `scope` into its one resource and permissions; unknown or mixed resources are errors."""
    items = [s for s in scope.split() if s]
    if not items:
        raise missing("scope")
    oidc = [s for s in items if s.lower() in OIDC_SCOPES]
    rest = [s for s in items if s.lower() not in OIDC_SCOPES]
    parsed: list[tuple[str, str]] = []
    for item in rest:
        if "://" in item:
            scheme_end = item.index("://") + 3
            slash = item.rfind("/")
            if slash < scheme_end:
                raise invalid_scope(
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
        raise invalid_scope(
            "Provided value for the input parameter scope is not valid because it contains more than one "
            "resource. Scope " + scope + " is not valid.",
            28000,
        )
    resource, prefix = next(iter(resources.values()))
    lowered = {s.lower() for s in oidc}
    return ScopeRequest(
        resource, prefix, [p for _, p in parsed], "offline_access" in lowered, "openid" in lowered
    )


def delegated_scopes(app: App, req: ScopeRequest) -> list[str]:
    """The permissions a delegated token for `app` carries; fails unless each one exists and is consented."""
    consented = app.delegated.get(req.resource.app_id, set())
    if req.resource.app_id == GRAPH_RESOURCE:
        consented = consented | {"User.Read", "openid", "profile", "offline_access", "email"}
    if ".default" in req.permissions:
        granted = sorted(consented & req.resource.scopes)
        if not granted and req.resource.app_id != GRAPH_RESOURCE:
            raise _consent_required(app)
        return granted
    out: list[str] = []
    for perm in req.permissions:
        match = next((s for s in req.resource.scopes if s.lower() == perm.lower()), None)
        if match is None:
            raise invalid_scope(
                f"The application '{app.display_name}' asked for scope '{perm}' that doesn't exist on "
                f"the resource '{req.resource.app_id}'. Contact the app vendor.",
                650053,
            )
        if match not in consented:
            raise _consent_required(app)
        out.append(match)
    return out


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
