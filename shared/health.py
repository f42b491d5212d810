"""Health of the worker's dependencies, for `GET /api/health`: 200 when every check passes, else 503.

Checks (they run concurrently; each is cut off after `MCAS_HEALTH_TIMEOUT_SECONDS`, default 5):
- `keyvault`: the vault answers, with the worker's identity, a metadata-only request (the versions of the
  secret the configured auth mode reads; a listing when it reads none). No secret value is fetched.
- `token`: the shared credential yields an authorization header for every tenant profile (usually from its
  cache, which is the point: that is what the next invocation will use).
- `storage`: a table write-and-read round trip in `mcasHealth` and a queue properties read.
- `pulls`: per tenant, the newest successful alert pull in `mcasHealth` (rows written by
  shared/alerts/pull.py: partition `alerts.<tenant>`, newest first) with its lag; fails when a tenant has run
  but not succeeded within `MCAS_HEALTH_MAX_PULL_AGE` (default 1h). A tenant that has never run is `pending`.

The HTTP body (`HealthReport.public_dict`, for anyone holding the function key) names the failing checks
with a generic reason each; what exactly failed (the vault's answer, the token endpoint's error, storage
errors, secret and setting names) goes to the log only (`HealthReport.as_dict`, redacted by the auth helper's
redaction). Everything heavy is imported on call.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.auth.redaction import redact
from shared.caches import register_cache_reset
from shared.errors import ConfigurationError, McasError
from shared.settings import DEFAULTS, Settings, TenantProfile, get_settings

log = logging.getLogger(__name__)

CHECK_NAMES = ("keyvault", "token", "storage", "pulls")
_DETAIL_LIMIT = 300


# What a caller of /api/health learns about a failing check; the detail stays in the log.
PUBLIC_FAILURE = {
    "keyvault": "Key Vault is unreachable or refused the app",
    "token": "a token could not be obtained",
    "storage": "storage is unreachable or refused the app",
    "pulls": "alert pulls are failing or stale",
    "settings": "the app settings are invalid",
}


@dataclass
class CheckResult:
    ok: bool
    detail: str
    duration_ms: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    public_detail: str | None = None  # safe for the HTTP body; None: a generic line by check name
    public_data: tuple[str, ...] = ()  # keys of `data` safe for the HTTP body

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "duration_ms": self.duration_ms, **self.data}

    def public_dict(self, name: str) -> dict[str, Any]:
        detail = self.public_detail or ("ok" if self.ok else PUBLIC_FAILURE.get(name, "the check failed"))
        shown = {key: _scrub(self.data[key]) for key in self.public_data if key in self.data}
        return {"ok": self.ok, "detail": detail, "duration_ms": self.duration_ms, **shown}


_PRIVATE_KEYS = frozenset({"last_error"})


def _scrub(value: Any) -> Any:
    """`value` without the keys that carry raw error text."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in _PRIVATE_KEYS}
    return value


@dataclass
class HealthReport:
    checks: dict[str, CheckResult]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, result in self.checks.items() if not result.ok]

    @property
    def status_code(self) -> int:
        return 200 if self.ok else 503

    def as_dict(self) -> dict[str, Any]:
        from shared.version import APP_VERSION

        return {
            "status": "ok" if self.ok else "failing",
            "failing": self.failing,
            "checks": {name: result.as_dict() for name, result in self.checks.items()},
            "version": APP_VERSION,
        }

    def public_dict(self) -> dict[str, Any]:
        """The HTTP body: check names, generic reasons, durations, per-tenant pull times; no detail."""
        body = self.as_dict()
        body["checks"] = {name: result.public_dict(name) for name, result in self.checks.items()}
        return body


Check = Callable[[Settings, float], CheckResult]


def _describe(exc: BaseException) -> str:
    """One redacted line: our errors say what is wrong; anything else is named by its type."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, McasError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return redact(text)[:_DETAIL_LIMIT]


def _setting(settings: Settings, name: str) -> str:
    return (settings.get(name) or DEFAULTS.get(name, "")).strip()


def health_timeout(settings: Settings) -> float:
    raw = _setting(settings, "MCAS_HEALTH_TIMEOUT_SECONDS")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(
            "MCAS_HEALTH_TIMEOUT_SECONDS", f"must be a number of seconds, got {raw!r}"
        ) from None
    if not 0 < value <= 60:
        raise ConfigurationError("MCAS_HEALTH_TIMEOUT_SECONDS", f"must be between 0 and 60, got {raw!r}")
    return value


def max_pull_age(settings: Settings) -> float:
    from shared.timeparse import setting_seconds

    return setting_seconds(_setting(settings, "MCAS_HEALTH_MAX_PULL_AGE"), name="MCAS_HEALTH_MAX_PULL_AGE")


# -- keyvault ---------------------------------------------------------------------------------------


def _vault_secret_name(settings: Settings, profile: TenantProfile) -> str | None:
    """The secret the configured auth mode reads for `profile`; None when it reads none."""
    from shared.auth.config import AuthConfig

    config = AuthConfig.from_settings(settings)
    if profile.auth_mode == "legacy":
        return profile.legacy_token_name
    if profile.auth_mode == "user":
        return config.user_name_secret
    mode = config.credential_mode_for(profile)
    if mode == "certificate":
        return profile.client_certificate_name
    if mode == "secret":
        return profile.client_secret_name
    return None


@functools.lru_cache(maxsize=4)
def _probe_client(vault_url: str, verify_challenge_resource: bool, timeout: float) -> Any:
    """A SecretClient for probes only: no retries (the check reports, the caller decides), short timeouts."""
    from azure.keyvault.secrets import SecretClient

    from shared.auth.identity import default_credential

    return SecretClient(
        vault_url,
        default_credential(),
        verify_challenge_resource=verify_challenge_resource,
        retry_total=0,
        connection_timeout=timeout,
        read_timeout=timeout,
    )


def check_keyvault(settings: Settings, timeout: float) -> CheckResult:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    if not settings.key_vault_url:
        return CheckResult(False, "MCAS_KEY_VAULT_URL is not set")
    client = _probe_client(settings.key_vault_url, settings.verify_key_vault_challenge_resource, timeout)
    name = _vault_secret_name(settings, settings.default_tenant)
    try:
        if name:
            next(iter(client.list_properties_of_secret_versions(name, max_page_size=1)), None)
        else:
            next(iter(client.list_properties_of_secrets(max_page_size=1)), None)
    except ResourceNotFoundError:
        return CheckResult(False, f"vault reachable, but secret {name!r} does not exist")
    except HttpResponseError as exc:
        status = getattr(exc, "status_code", None)
        return CheckResult(False, f"vault answered HTTP {status}" if status else _describe(exc))
    what = f"secret {name!r}" if name else "secret listing"
    return CheckResult(True, f"vault reachable ({what})")


# -- token ------------------------------------------------------------------------------------------


def check_token(settings: Settings, timeout: float) -> CheckResult:
    from shared.auth import api_credential

    obtained: list[str] = []
    for profile in settings.tenants:
        try:
            api_credential(profile, settings=settings).authorization_header()
        except Exception as exc:
            return CheckResult(
                False,
                f"tenant {profile.name}: {_describe(exc)}",
                data={"tenants": obtained},
                public_detail=f"a token could not be obtained for tenant {profile.name}",
                public_data=("tenants",),
            )
        obtained.append(profile.name)
    return CheckResult(
        True,
        f"token obtained for {len(obtained)} tenant(s)",
        data={"tenants": obtained},
        public_data=("tenants",),
    )


# -- storage ----------------------------------------------------------------------------------------

_PROBE_PARTITION = "health.probe"


def check_storage(settings: Settings, timeout: float) -> CheckResult:
    from shared.storage import QUEUE_ALERT_PULL_JOBS, TABLE_HEALTH, queue_client, table_client

    row = f"{socket.gethostname()}-{os.getpid()}"[:200]
    table = table_client(TABLE_HEALTH)
    now = _now_iso()
    table.upsert_entity({"PartitionKey": _PROBE_PARTITION, "RowKey": row, "at": now}, retry_total=0)
    if table.get_entity(_PROBE_PARTITION, row, retry_total=0).get("at") != now:
        return CheckResult(False, "table round trip read back a different value")
    queue_client(QUEUE_ALERT_PULL_JOBS).get_queue_properties(retry_total=0)
    return CheckResult(True, "table round trip and queue read succeeded")


# -- pulls ------------------------------------------------------------------------------------------


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime | None:
    from shared.timeparse import parse_instant

    try:
        return parse_instant(text, "iso8601")
    except (ValueError, AttributeError):
        return None


def _first(table: Any, query: str, pk: str) -> dict[str, Any] | None:
    pages = table.query_entities(query, parameters={"pk": pk}, results_per_page=1, retry_total=0)
    return next(iter(pages), None)


def _tenant_pulls(table: Any, tenant: str, now: datetime, max_age: float) -> tuple[bool, dict[str, Any]]:
    pk = f"alerts.{tenant}"
    newest = _first(table, "PartitionKey eq @pk", pk)
    if newest is None:
        return True, {"status": "pending", "detail": "no pull has run yet"}
    success = newest if not newest.get("error") else _first(table, "PartitionKey eq @pk and error eq ''", pk)
    info: dict[str, Any] = {"last_run": newest.get("end") or newest.get("start")}
    if newest.get("error"):
        info["last_error"] = redact(str(newest["error"]))[:_DETAIL_LIMIT]
    if success is None:
        return False, {**info, "status": "failing", "detail": "no successful pull yet"}
    ended = _parse_iso(str(success.get("end") or success.get("start") or ""))
    age = (now - ended).total_seconds() if ended else None
    lag = success.get("lag_s")
    info.update(
        {
            "last_success": success.get("end"),
            "age_s": round(age, 1) if age is not None else None,
            "lag_s": round(float(lag), 1) if isinstance(lag, int | float) and lag >= 0 else None,
            "alerts_delivered": success.get("alerts_delivered"),
        }
    )
    if age is None or age > max_age:
        return False, {**info, "status": "stale", "detail": f"no successful pull in the last {max_age:.0f}s"}
    return True, {**info, "status": "ok"}


def _no_sink_problem(settings: Settings) -> str | None:
    """The timer refuses to run without a sink: say so here rather than report stale pulls an hour later."""
    from shared.alerts.config import AlertConfig

    try:
        sinks = AlertConfig.from_settings(settings).sinks
    except ConfigurationError as exc:
        return f"alert settings: {exc}"
    return None if sinks else "MCAS_ALERT_SINKS names no sink: the alert timer does not run"


def _future_checkpoint(tenant: str, now: datetime) -> str | None:
    """A watermark in the future makes every pull deliver nothing; it must show here, not only in logs."""
    from shared.alerts.checkpoints import STREAM_SCHEDULED, checkpoint_store, future_problem

    checkpoint = checkpoint_store().load(STREAM_SCHEDULED, tenant)
    if checkpoint is None:
        return None
    problem = future_problem(checkpoint.watermark_ms, now_s=now.timestamp())
    return f"checkpoint {problem}; repair with `mcasctl alerts checkpoint set`" if problem else None


def check_pulls(settings: Settings, timeout: float) -> CheckResult:
    from shared.storage import TABLE_HEALTH, table_client

    max_age = max_pull_age(settings)
    table = table_client(TABLE_HEALTH)
    now = datetime.now(UTC)
    tenants: dict[str, Any] = {}
    bad: list[str] = []
    no_sink = _no_sink_problem(settings)
    if no_sink:
        bad.append(no_sink)
    for profile in settings.tenants:
        ok, info = _tenant_pulls(table, profile.name, now, max_age)
        future = _future_checkpoint(profile.name, now)
        if future:
            ok, info = False, {**info, "status": "future_checkpoint", "detail": future}
        tenants[profile.name] = info
        if not ok:
            bad.append(f"{profile.name} ({info['detail']})")
    shown = ("tenants",)
    if bad:
        detail = "; ".join(bad)  # generated here from ages and states: no error text
        return CheckResult(False, detail, data={"tenants": tenants}, public_detail=detail, public_data=shown)
    return CheckResult(
        True, f"{len(tenants)} tenant(s) checked", data={"tenants": tenants}, public_data=shown
    )


# -- runner -----------------------------------------------------------------------------------------

CHECKS: dict[str, Check] = {
    "keyvault": check_keyvault,
    "token": check_token,
    "storage": check_storage,
    "pulls": check_pulls,
}


def _run_bounded(checks: Mapping[str, Check], settings: Settings, timeout: float) -> dict[str, CheckResult]:
    """Run every check in its own daemon thread; whatever has not answered by the deadline fails.

    Daemon threads, not an executor: a hung dependency must not hold up the response or worker shutdown.
    """
    results: dict[str, CheckResult] = {}
    lock = threading.Lock()
    done = threading.Semaphore(0)

    def run(name: str, check: Check) -> None:
        started = time.monotonic()
        try:
            result = check(settings, timeout)
        except Exception as exc:
            result = CheckResult(False, _describe(exc))
        result.duration_ms = int((time.monotonic() - started) * 1000)
        with lock:
            results[name] = result
        done.release()

    for name, check in checks.items():
        threading.Thread(target=run, args=(name, check), name=f"health-{name}", daemon=True).start()
    deadline = time.monotonic() + timeout
    for _ in checks:
        if not done.acquire(timeout=max(0.0, deadline - time.monotonic())):
            break
    with lock:
        finished = dict(results)
    for name in checks:
        if name not in finished:
            finished[name] = CheckResult(
                False,
                f"timed out after {timeout:g}s",
                duration_ms=int(timeout * 1000),
                public_detail=f"timed out after {timeout:g}s",
            )
    return {name: finished[name] for name in checks}


def check_health(
    settings: Settings | None = None, *, checks: Mapping[str, Check] | None = None
) -> HealthReport:
    """Run the checks (default: all). Never raises; unusable settings fail a `settings` check."""
    try:
        settings = settings or get_settings()
        timeout = health_timeout(settings)
        max_pull_age(settings)  # validate before any thread starts
    except Exception as exc:
        return HealthReport({"settings": CheckResult(False, _describe(exc))})
    report = HealthReport(_run_bounded(checks if checks is not None else CHECKS, settings, timeout))
    if not report.ok:
        log.warning(
            "health: failing %s", "; ".join(f"{n}: {report.checks[n].detail}" for n in report.failing)
        )
    return report


def reset_health_clients() -> None:
    _probe_client.cache_clear()


register_cache_reset(reset_health_clients)
