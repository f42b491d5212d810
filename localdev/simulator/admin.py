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

from collections.abc import Callable
from typing import Any

from localdev.simulator.faults import FaultSpecError
from localdev.simulator.wire import SimRequest, SimResponse
from localdev.simulator.world import World


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _body(req: SimRequest) -> dict[str, Any]:
    try:
        payload = req.json()
    except ValueError:
        raise AdminError(400, "request body must be JSON") from None
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise AdminError(400, "request body must be a JSON object")
    return payload


def _need(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise AdminError(400, f"'{name}' is required (a non-empty string)")
    return value


class AdminService:
    def __init__(self, world: World, state: Callable[[], dict[str, Any]]) -> None:
        self.world = world
        self._state = state

    def handle(self, req: SimRequest) -> SimResponse:
        sub = req.path[len("/_admin") :].strip("/")
        if sub.startswith("graph/"):
            tenant, _, subpath = sub[len("graph/") :].partition("/")
            graph = self.world.graph.get(tenant)
            if graph is None:
                return SimResponse.json(404, {"error": f"no Graph tenant {tenant!r}"})
            return graph.handle_admin(req, subpath)
        if sub.startswith("mda/"):
            tenant, _, subpath = sub[len("mda/") :].partition("/")
            service = self.world.mda.get(tenant)
            if service is None:
                return SimResponse.json(404, {"error": f"no MDA tenant {tenant!r}"})
            return service.handle_admin(req, subpath)
        if sub.startswith("logs/"):
            return self.world.logs.handle_admin(req, sub[len("logs/") :])
        try:
            return SimResponse.json(200, self._route(req.method, sub, req))
        except AdminError as exc:
            return SimResponse.json(exc.status, {"error": str(exc)})
        except FaultSpecError as exc:
            return SimResponse.json(400, {"error": str(exc)})
        except KeyError as exc:
            return SimResponse.json(404, {"error": f"not found: {exc.args[0] if exc.args else ''}"})

    def _route(self, method: str, sub: str, req: SimRequest) -> Any:
        w = self.world
        match (method, sub):
            case ("GET", "counters"):
                return w.counters.snapshot()
            case ("POST", "reset"):
                return w.reset()
            case ("GET", "faults"):
                return {"faults": w.faults.rules()}
            case ("POST", "faults"):
                return w.faults.add(_body(req)).public()
            case ("DELETE", "faults"):
                w.faults.clear()
                return {"faults": []}
            case ("POST", "tokens/revoke"):
                client_id = _body(req).get("client_id")
                return w.revoke_tokens(str(client_id) if client_id else None)
            case ("POST", "tokens/mint"):
                return w.mint_token(_body(req))
            case ("POST", "tokens/lifetime"):
                seconds = _body(req).get("seconds")
                if seconds is not None and (not isinstance(seconds, int) or seconds < 1):
                    raise AdminError(400, "'seconds' must be a positive integer or null")
                return {"lifetime": w.set_lifetime(seconds)}
            case ("POST", "secrets/rotate"):
                body = _body(req)
                return w.rotate_secret(_need(body, "name"), keep_old=bool(body.get("keep_old")))
            case ("POST", "secrets/set"):
                body = _body(req)
                content_type = body.get("content_type")
                created = w.keyvault.set_secret(
                    _need(body, "name"),
                    str(body.get("value", "")),
                    content_type=str(content_type) if content_type else None,
                )
                return {"name": created.name, "version": created.version}
            case ("GET", _) if sub.startswith("secrets/"):
                found = w.keyvault.get_secret(sub[len("secrets/") :])
                if found is None:
                    raise KeyError(sub)
                return {
                    "name": found.name,
                    "version": found.version,
                    "value": found.value,
                    "content_type": found.content_type,
                }
            case ("POST", "credentials/expire"):
                body = _body(req)
                return w.expire_client_secrets(
                    str(body.get("app", "daemon")), expired=bool(body.get("expired", True))
                )
            case ("GET", "devicecode"):
                return {"flows": w.entra.device_flows()}
            case ("POST", "devicecode/approve"):
                body = _body(req)
                user = w.entra.approve_device_code(_need(body, "user_code"), str(body.get("user", "analyst")))
                return {"approved": True, "user": user}
            case ("POST", "devicecode/deny"):
                w.entra.deny_device_code(_need(_body(req), "user_code"))
                return {"denied": True}
            case ("POST", "devicecode/expire"):
                w.entra.expire_device_code(_need(_body(req), "user_code"))
                return {"expired": True}
            case ("POST", "keyvault/deny" | "keyvault/allow"):
                principal = _need(_body(req), "principal")
                ids = w.directory.principal_ids(principal)
                app = w.directory.app_named(principal)
                if app is not None:
                    ids |= w.directory.principal_ids(app.client_id)
                if sub.endswith("deny"):
                    w.keyvault.denied_principals.update(ids)
                else:
                    w.keyvault.denied_principals.difference_update(ids)
                return {"denied": sorted(w.keyvault.denied_principals)}
            case ("GET", "state" | ""):
                return self._state()
        raise AdminError(404, f"unknown admin endpoint {method} /_admin/{sub}")
