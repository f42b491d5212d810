"""Jobs / SOAR webhook settings, read through `Settings.get` and validated here (the feature that owns them).

Names and defaults are in `shared.settings.DEFAULTS` so the README settings table lists them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.errors import ConfigurationError
from shared.settings import DEFAULTS, Settings

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: larger job bodies are refused with 413
SIGNATURE_TOLERANCE_S = 5 * 60  # Standard Webhooks: refuse timestamps more than 5 minutes off
IDEMPOTENCY_TTL_S = 24 * 3600  # the same Idempotency-Key within 24 h returns the same job
TOKEN_LEEWAY_S = 60  # clock skew allowed on exp/nbf of bearer tokens

_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")  # Key Vault secret names
_ROLE = re.compile(r"^[^\s,]{1,120}$")


def _setting(settings: Settings, name: str) -> str:
    return (settings.get(name) or DEFAULTS.get(name, "")).strip()


def _secret_name(settings: Settings, name: str, default: str | None = None) -> str:
    value = _setting(settings, name) or (default or "")
    if not _NAME.match(value):
        raise ConfigurationError(
            name, f"must be a Key Vault secret name (letters, digits, '-'), got {value!r}"
        )
    return value


def _list(settings: Settings, name: str) -> tuple[str, ...]:
    return tuple(v for v in re.split(r"[,\s]+", _setting(settings, name)) if v)


@dataclass(frozen=True)
class JobsConfig:
    """Everything the intake and the worker need to know from settings."""

    webhook_secret_name: str
    callback_secret_name: str
    sealing_key_name: str
    audiences: tuple[str, ...]  # empty: bearer tokens are not accepted
    token_tenant_id: str
    authority_host: str
    required_role: str | None
    required_scope: str | None
    allow_loopback: bool
    tenants: tuple[str, ...]  # profile names; the first is the default
    tenant_ids: tuple[str, ...]  # the Entra tenant of each profile, same order

    time_budget_s: float = 480.0  # the worker stops starting API calls after this (functionTimeout is 10 min)
    # caller (`signature`, an app's client id, or `*`) -> tenant profiles its jobs may target
    tenant_scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def allowed_tenants(self, caller: str) -> tuple[str, ...]:
        """Profiles an application or signature caller may target; unlisted callers: the default only."""
        scope = self.tenant_scopes.get(caller) or self.tenant_scopes.get("*")
        if scope is None:
            return self.tenants[:1]
        return self.tenants if "*" in scope else scope

    def tenant_id_of(self, profile: str | None) -> str | None:
        """The Entra tenant behind a profile name (None: the default profile)."""
        if not self.tenant_ids:
            return None
        index = self.tenants.index(profile) if profile in self.tenants else 0
        return self.tenant_ids[index] or None

    @property
    def bearer_enabled(self) -> bool:
        return bool(self.audiences)

    @property
    def jwks_url(self) -> str:
        return f"{self.authority_host}/{self.token_tenant_id}/discovery/v2.0/keys"

    @property
    def issuers(self) -> tuple[str, ...]:
        """v2.0 tokens name the authority; v1.0 tokens (no accessTokenAcceptedVersion=2) name sts."""
        return (
            f"{self.authority_host}/{self.token_tenant_id}/v2.0",
            f"https://sts.windows.net/{self.token_tenant_id}/",
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> JobsConfig:
        webhook_secret = _secret_name(settings, "MCAS_WEBHOOK_SECRET_NAME")
        audiences = _list(settings, "MCAS_WEBHOOK_AUDIENCE")
        tenant_id = _setting(settings, "MCAS_WEBHOOK_TENANT_ID") or settings.default_tenant.tenant_id
        if audiences and not re.fullmatch(r"[0-9A-Za-z.-]{1,100}", tenant_id or ""):
            raise ConfigurationError(
                "MCAS_WEBHOOK_TENANT_ID", "is required (the Entra tenant that issues tokens for this API)"
            )
        role = _setting(settings, "MCAS_WEBHOOK_REQUIRED_ROLE")
        scope = _setting(settings, "MCAS_WEBHOOK_REQUIRED_SCOPE")
        for name, value in (("MCAS_WEBHOOK_REQUIRED_ROLE", role), ("MCAS_WEBHOOK_REQUIRED_SCOPE", scope)):
            if value and value != "*" and not _ROLE.match(value):
                raise ConfigurationError(name, f"must be one role/scope name or *, got {value!r}")
        return cls(
            webhook_secret_name=webhook_secret,
            callback_secret_name=_secret_name(settings, "MCAS_JOB_CALLBACK_SECRET_NAME", webhook_secret),
            sealing_key_name=_secret_name(settings, "MCAS_JOB_SEALING_KEY_NAME"),
            audiences=audiences,
            token_tenant_id=tenant_id,
            authority_host=settings.authority_host,
            required_role=None if role in ("", "*") else role,
            required_scope=None if scope in ("", "*") else scope,
            allow_loopback=settings.allow_loopback,
            tenants=tuple(p.name for p in settings.tenants),
            tenant_ids=tuple(p.tenant_id for p in settings.tenants),
            time_budget_s=_budget(settings),
            tenant_scopes=_tenant_scopes(settings, tuple(p.name for p in settings.tenants)),
        )


def _budget(settings: Settings) -> float:
    name = "MCAS_JOB_TIME_BUDGET_SECONDS"
    raw = _setting(settings, name)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(name, f"must be a number of seconds, got {raw!r}") from None
    if not 10 <= value <= 3600:
        raise ConfigurationError(name, f"must be between 10 and 3600 seconds, got {value:g}")
    return value


def _tenant_scopes(settings: Settings, tenants: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """`MCAS_WEBHOOK_TENANT_SCOPES`: a JSON object, caller -> list of tenant profile names (or `*`)."""
    name = "MCAS_WEBHOOK_TENANT_SCOPES"
    raw = _setting(settings, name)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ConfigurationError(
            name, "must be a JSON object: caller -> list of tenant profile names"
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(name, "must be a JSON object: caller -> list of tenant profile names")
    scopes: dict[str, tuple[str, ...]] = {}
    for caller, names in data.items():
        if not caller or len(caller) > 128 or not caller.isprintable():
            raise ConfigurationError(name, "has an empty or unreadable caller name")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigurationError(name, f"must map {caller!r} to a list of tenant profile names")
        unknown = [n for n in names if n != "*" and n not in tenants]
        if unknown:
            raise ConfigurationError(name, f"names unknown tenant profile(s) {unknown} for {caller!r}")
        scopes[caller] = tuple(dict.fromkeys(names))
    return scopes


def jobs_config() -> JobsConfig:
    """From the worker's cached settings (cheap)."""
    from shared.settings import get_settings

    return JobsConfig.from_settings(get_settings())
