"""The simulator's admin API (JSON on the main port under /_admin): faults, counters, credential events.

Tests use it to create the conditions the app must survive (5xx, latency, resets, 429 storms, revoked tokens,
rotated or expired secrets) and to read counters proving call patterns. Endpoints:

    GET    /_admin/counters                      counters snapshot (see counters.py)
    POST   /_admin/reset                         faults, counters, lifetime, expiry marks, KV denials,
                                                 MDA throttle windows, Logs Ingestion denials and rejects
    GET    /_admin/faults                        active fault rules
    POST   /_admin/faults                        add a rule (see faults.FaultRule) -> the rule with its id
    DELETE /_admin/faults                        remove every rule
    POST   /_admin/tokens/revoke                 {"client_id"?: id or app name} revoke issued tokens
    POST   /_admin/tokens/mint                   {"app"?, "audience"?, "roles"?, "scp"?, "user"?, "lifetime"?,
                                                  "expired"?} -> {"access_token", "claims"}
    POST   /_admin/tokens/lifetime               {"seconds": int | null} lifetime of tokens issued from now on
    POST   /_admin/secrets/rotate                {"name", "keep_old"?} new KV version + matching credential
    POST   /_admin/secrets/set                   {"name", "value", "content_type"?} new KV version only
    GET    /_admin/secrets/{name}                {"name", "version", "value", "content_type"} (test use)
    POST   /_admin/credentials/expire            {"app"?: "daemon", "expired"?: true} -> AADSTS7000222
    GET    /_admin/devicecode                    pending device flows (user codes)
    POST   /_admin/devicecode/approve            {"user_code", "user"?: "analyst"}
    POST   /_admin/devicecode/deny               {"user_code"}
    POST   /_admin/devicecode/expire             {"user_code"}
    POST   /_admin/keyvault/deny                 {"principal": client id, object id or app name} -> 403s
    POST   /_admin/keyvault/allow                {"principal"}
    GET    /_admin/state                         the world's description plus listener URLs
    *      /_admin/mda/{tenant}/{subpath}        the MDA service's own admin API (see mda.py)
    *      /_admin/logs/{subpath}                Logs Ingestion admin API (see logs_ingestion.py)
    *      /_admin/graph/{tenant}/{subpath}      the tenant's Graph security API admin (see graph.py)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from localdev.simulator.admin_routes import AdminCall, BodyError, find_route
from localdev.simulator.faults import FaultSpecError
from localdev.simulator.wire import SimRequest, SimResponse
from localdev.simulator.world import MdaServiceLike, World

AdminHandler = Callable[[AdminCall], Any]  # a JSON answer (sent with 200), or a service's own response


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _need(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise AdminError(400, f"'{name}' is required (a non-empty string)")
    return value


class AdminService:
    def __init__(self, world: World, state: Callable[[], dict[str, Any]]) -> None:
        self.world = world
        w = world
        # Every endpoint under /_admin (the module docstring says what each takes and answers).
        self.routes: dict[tuple[str, str], AdminHandler] = {
            ("*", "graph/"): lambda call: self._tenant_admin(call, w.graph, "Graph"),
            ("*", "mda/"): lambda call: self._tenant_admin(call, w.mda, "MDA"),
            ("*", "logs/"): lambda call: w.logs.handle_admin(call.req, call.rest),
            ("GET", "counters"): lambda call: w.counters.snapshot(),
            ("POST", "reset"): lambda call: w.reset(),
            ("GET", "faults"): lambda call: {"faults": w.faults.rules()},
            ("POST", "faults"): lambda call: w.faults.add(call.body).public(),
            ("DELETE", "faults"): self._clear_faults,
            ("POST", "tokens/revoke"): self._revoke_tokens,
            ("POST", "tokens/mint"): lambda call: w.mint_token(call.body),
            ("POST", "tokens/lifetime"): self._set_token_lifetime,
            ("POST", "secrets/rotate"): self._rotate_secret,
            ("POST", "secrets/set"): self._set_secret,
            ("GET", "secrets/"): self._get_secret,
            ("POST", "credentials/expire"): self._expire_credentials,
            ("GET", "devicecode"): lambda call: {"flows": w.entra.device_flows()},
            ("POST", "devicecode/approve"): self._approve_device_code,
            ("POST", "devicecode/deny"): self._deny_device_code,
            ("POST", "devicecode/expire"): self._expire_device_code,
            ("POST", "keyvault/deny"): lambda call: self._keyvault_access(call, deny=True),
            ("POST", "keyvault/allow"): lambda call: self._keyvault_access(call, deny=False),
            ("GET", "state"): lambda call: state(),
            ("GET", ""): lambda call: state(),
        }

    def handle(self, req: SimRequest) -> SimResponse:
        sub = req.path[len("/_admin") :].strip("/")
        try:
            found = find_route(self.routes, req.method, sub)
            if found is None:
                raise AdminError(404, f"unknown admin endpoint {req.method} /_admin/{sub}")
            handler, rest = found
            answer = handler(AdminCall(req, rest))
        except AdminError as exc:
            return SimResponse.json(exc.status, {"error": str(exc)})
        except (BodyError, FaultSpecError) as exc:
            return SimResponse.json(400, {"error": str(exc)})
        except KeyError as exc:
            return SimResponse.json(404, {"error": f"not found: {exc.args[0] if exc.args else ''}"})
        return answer if isinstance(answer, SimResponse) else SimResponse.json(200, answer)

    # -- the services' own admin APIs ----------------------------------------------------------------------

    @staticmethod
    def _tenant_admin(call: AdminCall, services: Mapping[str, MdaServiceLike], kind: str) -> SimResponse:
        """`{tenant}/{subpath}` handed to that tenant's service."""
        tenant, _, subpath = call.rest.partition("/")
        service = services.get(tenant)
        if service is None:
            return SimResponse.json(404, {"error": f"no {kind} tenant {tenant!r}"})
        return service.handle_admin(call.req, subpath)

    # -- faults and tokens ---------------------------------------------------------------------------------

    def _clear_faults(self, call: AdminCall) -> Any:
        self.world.faults.clear()
        return {"faults": []}

    def _revoke_tokens(self, call: AdminCall) -> Any:
        client_id = call.body.get("client_id")
        return self.world.revoke_tokens(str(client_id) if client_id else None)

    def _set_token_lifetime(self, call: AdminCall) -> Any:
        seconds = call.body.get("seconds")
        if seconds is not None and (not isinstance(seconds, int) or seconds < 1):
            raise AdminError(400, "'seconds' must be a positive integer or null")
        return {"lifetime": self.world.set_lifetime(seconds)}

    # -- Key Vault and credentials -------------------------------------------------------------------------

    def _rotate_secret(self, call: AdminCall) -> Any:
        body = call.body
        return self.world.rotate_secret(_need(body, "name"), keep_old=bool(body.get("keep_old")))

    def _set_secret(self, call: AdminCall) -> Any:
        body = call.body
        content_type = body.get("content_type")
        created = self.world.keyvault.set_secret(
            _need(body, "name"),
            str(body.get("value", "")),
            content_type=str(content_type) if content_type else None,
        )
        return {"name": created.name, "version": created.version}

    def _get_secret(self, call: AdminCall) -> Any:
        found = self.world.keyvault.get_secret(call.rest)
        if found is None:
            raise KeyError(f"secrets/{call.rest}")
        return {
            "name": found.name,
            "version": found.version,
            "value": found.value,
            "content_type": found.content_type,
        }

    def _expire_credentials(self, call: AdminCall) -> Any:
        body = call.body
        return self.world.expire_client_secrets(
            str(body.get("app", "daemon")), expired=bool(body.get("expired", True))
        )

    def _keyvault_access(self, call: AdminCall, *, deny: bool) -> Any:
        w = self.world
        principal = _need(call.body, "principal")
        ids = w.directory.principal_ids(principal)
        app = w.directory.app_named(principal)
        if app is not None:
            ids |= w.directory.principal_ids(app.client_id)
        if deny:
            w.keyvault.denied_principals.update(ids)
        else:
            w.keyvault.denied_principals.difference_update(ids)
        return {"denied": sorted(w.keyvault.denied_principals)}

    # -- device code ---------------------------------------------------------------------------------------

    def _approve_device_code(self, call: AdminCall) -> Any:
        body = call.body
        user = self.world.entra.approve_device_code(
            _need(body, "user_code"), str(body.get("user", "analyst"))
        )
        return {"approved": True, "user": user}

    def _deny_device_code(self, call: AdminCall) -> Any:
        self.world.entra.deny_device_code(_need(call.body, "user_code"))
        return {"denied": True}

    def _expire_device_code(self, call: AdminCall) -> Any:
        self.world.entra.expire_device_code(_need(call.body, "user_code"))
        return {"expired": True}
