"""Python handle on a running simulator, and a launcher for simulator processes (tests, demo, benchmarks).

proc = start_simulator(state_dir, mda_tenants=["contoso"], rate_limit=30)
sim = proc.handle
os.environ.update(sim.app_env("contoso"))          # every app setting for a run against the simulator
sim.add_fault(service="keyvault", error_rate=1.0, count=2)
sim.counters()["tokens"]["client_credentials"]
proc.stop()
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "simulator.json"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class SimulatorError(RuntimeError):
    """The simulator could not be started, or an admin call failed."""


def skip_msal_user_realm_discovery(host: str = "127.0.0.1") -> None:
    """Stop MSAL's ROPC flow from calling `https://{host}/common/userrealm/...` on port 443.

    MSAL drops the authority's port for that lookup (msal/authority.py), so against a simulator on an
    ephemeral port it would hit a closed port 443. Real Entra hosts are unaffected. Test/dev use only.
    """
    import msal.authority

    msal.authority.Authority._domains_without_user_realm_discovery.add(host)


@dataclass
class SimulatorHandle:
    """Everything simulator.json says, plus admin helpers. Cheap to create; holds no connections."""

    info: dict[str, Any]
    state_dir: Path | None = None
    _session: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, state_dir: Path | str) -> SimulatorHandle:
        directory = Path(state_dir)
        return cls(json.loads((directory / STATE_FILE).read_text()), directory)

    # -- simulator.json fields -----------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        info = self.__dict__.get("info") or {}
        if name in info:
            return info[name]
        raise AttributeError(name)

    @property
    def authority_host(self) -> str:
        return str(self.info["authority_host"])

    @property
    def tenant_id(self) -> str:
        return str(self.info["tenant_id"])

    @property
    def authority(self) -> str:
        """`{authority_host}/{tenant_id}`, the MSAL authority."""
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def key_vault_url(self) -> str:
        return str(self.info["key_vault_url"])

    @property
    def bundle_file(self) -> str:
        return str(self.info["bundle_file"])

    @property
    def ca_file(self) -> str:
        return str(self.info["ca_file"])

    def client_id(self, app: str = "daemon") -> str:
        return str(self.info["apps"][app]["client_id"])

    def api_url(self, tenant: str = "contoso") -> str:
        tenants = self.info.get("mda_tenants", {})
        if tenant not in tenants:
            raise SimulatorError(f"no MDA tenant {tenant!r} in this simulator (has {sorted(tenants)})")
        return str(tenants[tenant]["api_url"])

    def graph_url(self, tenant: str = "contoso") -> str:
        """The tenant's simulated Microsoft Graph root (the security API's host)."""
        self.api_url(tenant)
        return str(self.info["mda_tenants"][tenant]["graph_url"])

    # -- admin API -----------------------------------------------------------------------------------

    def admin(self, method: str, path: str, json: Any = None) -> Any:
        """Call `/_admin{path}` and return the decoded JSON; raise SimulatorError on a non-2xx answer."""
        import requests

        if self._session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies, and our CA regardless of REQUESTS_CA_BUNDLE
            self._session = session
        url = f"{self.info['admin_url']}/{path.lstrip('/')}"
        response = self._session.request(method, url, json=json, verify=self.bundle_file, timeout=30)
        if not response.ok:
            raise SimulatorError(f"admin {method} {path} -> {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("GET", "/counters")
        return result

    def reset(self) -> None:
        """Clear faults and counters (also expiry marks, lifetime overrides, KV denials, MDA throttle)."""
        self.admin("POST", "/reset")

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        """service=entra|keyvault|msi|mda|blob|s3|logs|all, error_rate, status, latency_ms, latency_rate,
        reset_rate, throttle_burst, count, path_prefix, retry_after; or a malformed-answer rule:
        body=html|truncated|empty|missing_fields|wrong_types|huge, fields, body_bytes (see faults.py)."""
        result: dict[str, Any] = self.admin("POST", "/faults", spec)
        return result

    def clear_faults(self) -> None:
        self.admin("DELETE", "/faults")

    def revoke_tokens(self, client_id: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("POST", "/tokens/revoke", {"client_id": client_id})
        return result

    def mint_token(self, **spec: Any) -> str:
        """A signed token with chosen claims: app, audience, roles, scp, user, lifetime, expired."""
        return str(self.admin("POST", "/tokens/mint", spec)["access_token"])

    def set_token_lifetime(self, seconds: int | None) -> None:
        self.admin("POST", "/tokens/lifetime", {"seconds": seconds})

    def rotate_secret(self, name: str, *, keep_old: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("POST", "/secrets/rotate", {"name": name, "keep_old": keep_old})
        return result

    def set_secret(self, name: str, value: str, content_type: str | None = None) -> dict[str, Any]:
        body = {"name": name, "value": value, "content_type": content_type}
        result: dict[str, Any] = self.admin("POST", "/secrets/set", body)
        return result

    def secret_value(self, name: str) -> str:
        """The latest value of a Key Vault secret (tests only; the app reads it through Key Vault)."""
        return str(self.admin("GET", f"/secrets/{name}")["value"])

    def expire_client_secret(self, app: str = "daemon", *, expired: bool = True) -> None:
        self.admin("POST", "/credentials/expire", {"app": app, "expired": expired})

    def approve_device_code(self, user_code: str, user: str = "analyst") -> None:
        self.admin("POST", "/devicecode/approve", {"user_code": user_code, "user": user})

    def mda(self, tenant: str, method: str, subpath: str, json: Any = None) -> Any:
        """The MDA service's admin API for one tenant (see localdev/simulator/mda.py)."""
        return self.admin(method, f"/mda/{tenant}/{subpath.lstrip('/')}", json)

    # -- Logs Ingestion endpoint (see localdev/simulator/logs_ingestion.py) ------------------------------

    def logs(self, method: str, subpath: str, json: Any = None) -> Any:
        """The Logs Ingestion endpoint's admin API (records, stats, reject, deny, rules)."""
        return self.admin(method, f"/logs/{subpath.lstrip('/')}", json)

    def logs_records(self, stream: str | None = None, *, page: int = 2000) -> list[dict[str, Any]]:
        """Every row the endpoint accepted, oldest first (fetched in pages)."""
        rows: list[dict[str, Any]] = []
        query = f"stream={stream}&" if stream else ""
        while True:
            got = self.logs("GET", f"records?{query}offset={len(rows)}&limit={page}")
            rows.extend(got["records"])
            if len(rows) >= got["count"] or not got["records"]:
                return rows

    def logs_stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.logs("GET", "stats")
        return result

    def logs_env(self, **overrides: str) -> dict[str, str]:
        """The `logs` sink's settings for this simulator's endpoint and data collection rule."""
        info = self.info["logs_ingestion"]
        env = {
            "MCAS_LOGS_INGESTION_ENDPOINT": str(info["endpoint"]),
            "MCAS_LOGS_DCR_IMMUTABLE_ID": str(info["dcr_immutable_id"]),
            "MCAS_LOGS_STREAM": str(info["stream"]),
        }
        env.update(overrides)
        return env

    def graph(self, tenant: str, method: str, subpath: str, json: Any = None) -> Any:
        """The tenant's Graph security API admin (see localdev/simulator/graph.py)."""
        return self.admin(method, f"/graph/{tenant}/{subpath.lstrip('/')}", json)

    # -- app settings --------------------------------------------------------------------------------

    def app_env(
        self, tenant: str = "contoso", auth_mode: str = "application", **overrides: str
    ) -> dict[str, str]:
        """Every app setting for a run of the Functions app against this simulator."""
        app = {"application": "daemon", "user": "public", "legacy": "daemon"}.get(auth_mode, "daemon")
        env = {
            "MCAS_API_URL": self.api_url(tenant),
            "MCAS_GRAPH_URL": self.graph_url(tenant),
            "MCAS_TENANT_ID": self.tenant_id,
            "MCAS_CLIENT_ID": self.client_id(app),
            "MCAS_AUTH_MODE": auth_mode,
            "MCAS_TENANT_NAME": tenant,
            "MCAS_AUTHORITY_HOST": self.authority_host,
            "MCAS_KEY_VAULT_URL": self.key_vault_url,
            "MCAS_ALLOW_LOOPBACK": "true",
            "IDENTITY_ENDPOINT": str(self.info["msi_endpoint"]),
            "IDENTITY_HEADER": str(self.info["msi_header"]),
            "REQUESTS_CA_BUNDLE": self.bundle_file,
        }
        env.update(overrides)
        return env


@dataclass
class SimulatorProcess:
    """A simulator subprocess started by `start_simulator`; attribute access falls through to its handle,
    so `proc.app_env()`, `proc.admin(...)`, `proc.tenant_id` work like on a `SimulatorHandle`."""

    process: subprocess.Popen[bytes]
    handle: SimulatorHandle
    state_dir: Path
    log_file: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def __getattr__(self, name: str) -> Any:
        handle = self.__dict__.get("handle")
        if handle is None:
            raise AttributeError(name)
        return getattr(handle, name)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time. Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _flags(options: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, list | tuple):
            args += [flag, ",".join(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args


def start_simulator(state_dir: Path | str, *, timeout: float = 30.0, **options: Any) -> SimulatorProcess:
    """Start `python -m localdev.simulator` and wait for its simulator.json.

    Options map to CLI flags: mda_tenants (list or "a,b"), rate_limit, rate_window, token_lifetime,
    seed_alerts, device_code_interval, device_code_lifetime, pki_dir, verbose. The process exits on its own if
    this one dies. stderr goes to STATE_DIR/simulator.log and is included in the error if the start fails.
    """
    directory = Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    state_file = directory / STATE_FILE
    state_file.unlink(missing_ok=True)
    log_file = directory / "simulator.log"
    options.setdefault("parent_pid", os.getpid())
    cmd = [sys.executable, "-m", "localdev.simulator", "--state-dir", str(directory), *_flags(options)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
    with log_file.open("wb") as log:
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, cwd=_PROJECT_ROOT, env=env)
    deadline = time.monotonic() + timeout
    while True:
        if state_file.exists():
            try:
                info = json.loads(state_file.read_text())
            except ValueError:
                info = None
            if info and info.get("pid") == process.pid:
                return SimulatorProcess(process, SimulatorHandle(info, directory), directory, log_file)
        if process.poll() is not None:
            raise SimulatorError(
                f"simulator exited with {process.returncode} before it was ready:\n"
                f"{log_file.read_text(errors='replace')[-4000:]}"
            )
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise SimulatorError(
                f"simulator not ready after {timeout:.0f}s:\n{log_file.read_text(errors='replace')[-4000:]}"
            )
        time.sleep(0.02)
