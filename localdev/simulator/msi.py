"""Simulated App Service managed identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER), plain HTTP.

`ManagedIdentityCredential` (and `DefaultAzureCredential`) send
`GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=...[&client_id=...]` with `X-IDENTITY-HEADER`, and
expect
`{access_token, expires_on (epoch seconds as a string), resource, token_type}`. Tokens for
`api://AzureADTokenExchange` carry the identity's principal id as `sub`: that is the assertion an app presents
when the managed identity is its federated credential.
"""

from __future__ import annotations

import hmac
from typing import Any

from localdev.simulator.counters import Counters
from localdev.simulator.directory import Directory, ManagedIdentity
from localdev.simulator.tokens import TokenIssuer
from localdev.simulator.wire import SimRequest, SimResponse

API_VERSION = "2019-08-01"


def _bad_request(message: str) -> SimResponse:
    return SimResponse.json(400, {"statusCode": 400, "message": message, "error": "invalid_request"})


class MsiService:
    def __init__(
        self, header_secret: str, issuer: TokenIssuer, directory: Directory, counters: Counters
    ) -> None:
        self.header_secret = header_secret
        self.issuer = issuer
        self.directory = directory
        self.counters = counters

    def endpoint_name(self, req: SimRequest) -> str:
        return "token" if req.path.rstrip("/") == "/msi/token" else "other"

    def _identity(self, req: SimRequest) -> ManagedIdentity | None:
        client_id = req.arg("client_id")
        principal = req.arg("principal_id") or req.arg("object_id")
        with self.directory.lock:
            if client_id:
                return self.directory.identities.get(client_id.lower())
            if principal:
                return next(
                    (i for i in self.directory.identities.values() if i.principal_id == principal.lower()),
                    None,
                )
            return self.directory.system_identity()

    def handle(self, req: SimRequest) -> SimResponse:
        if req.path.rstrip("/") != "/msi/token":
            return SimResponse.json(404, {"statusCode": 404, "message": "Not found."})
        if req.method != "GET":
            return SimResponse.json(405, {"statusCode": 405, "message": "Only GET is supported."})
        header = req.header("x-identity-header")
        if not header or not hmac.compare_digest(header.encode(), self.header_secret.encode()):
            return _bad_request("The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
        if req.arg("api-version") != API_VERSION:
            return _bad_request(f"api-version must be {API_VERSION}.")
        resource = req.arg("resource")
        if not resource:
            return _bad_request("The resource parameter is required.")
        identity = self._identity(req)
        if identity is None:
            return _bad_request("No managed identity matches the requested client_id / principal_id.")
        target = self.directory.resource(resource.removesuffix("/.default"))
        if target is None:
            return _bad_request(
                f"AADSTS500011: The resource principal named {resource} was not found in the tenant named "
                f"{self.directory.domain}."
            )
        roles = identity.app_roles.get(target.app_id, set()) & set(target.roles)
        token, claims = self.issuer.issue(
            tenant_id=self.directory.tenant_id,
            audience=target.audience,
            client_id=identity.client_id,
            subject=identity.principal_id,
            object_id=identity.principal_id,
            roles=sorted(roles),
            acr="2",
            extra={
                "xms_mirid": f"/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/local/"
                f"providers/Microsoft.ManagedIdentity/identities/{identity.name}"
            },
        )
        self.counters.incr("tokens", "managed_identity")
        self.counters.incr("tokens_by_client", identity.client_id)
        payload: dict[str, Any] = {
            "access_token": token,
            "expires_on": str(claims["exp"]),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }
        return SimResponse.json(200, payload)
