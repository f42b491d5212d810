"""The app's one typed settings object.

Read from app settings / environment once, validated with errors that name the setting and say what is
wrong. The names are part of the product's interface and are documented in the README settings table;
`tests/infra/test_settings_drift.py` keeps the table and this module in step.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from shared.caches import register_cache_reset
from shared.errors import ConfigurationError

AuthMode = Literal["application", "user", "legacy"]
AUTH_MODES: tuple[AuthMode, ...] = ("application", "user", "legacy")
AlertSource = Literal["mda", "graph"]
ALERT_SOURCES: tuple[AlertSource, ...] = ("mda", "graph")

MDA_RESOURCE_APP_ID = "05a65629-4c1b-48c1-a78b-804c4abdd4af"

# Documented tenant API host suffixes (https://learn.microsoft.com/defender-cloud-apps/api-introduction).
# The generic portal host is refused on purpose:
# it round-robins across regions and answers with spurious 401s.
API_HOST_SUFFIXES: dict[str, str] = {
    ".portal.cloudappsecurity.com": "commercial",
    ".portal.cloudappsecurity.us": "gcc-high",
    ".portal.cloudappsecuritygov.com": "gcc",
}
GENERIC_API_HOSTS = frozenset(
    {"portal.cloudappsecurity.com", "portal.cloudappsecurity.us", "portal.cloudappsecuritygov.com"}
)
AUTHORITY_HOSTS: dict[str, str] = {
    "login.microsoftonline.com": "commercial / GCC",
    "login.microsoftonline.us": "GCC High / DoD",
}
KEY_VAULT_SUFFIXES = (".vault.azure.net", ".vault.usgovcloudapi.net", ".vault.azure.cn")
# Microsoft Graph roots that serve security alerts_v2 (https://learn.microsoft.com/graph/deployments); the
# China cloud's Graph does not offer alerts_v2, so it is not accepted here.
GRAPH_HOSTS: dict[str, str] = {
    "graph.microsoft.com": "global / GCC",
    "graph.microsoft.us": "GCC High",
    "dod-graph.microsoft.us": "DoD",
}

DEFAULTS: dict[str, str] = {
    "MCAS_AUTH_MODE": "application",
    "MCAS_AUTHORITY_HOST": "https://login.microsoftonline.com",
    "MCAS_CLIENT_SECRET_NAME": "mcas-client-secret",
    "MCAS_LEGACY_TOKEN_NAME": "mcas-api-token",
    "MCAS_RATE_LIMIT_PER_MINUTE": "30",
    "MCAS_ALLOW_LOOPBACK": "false",
    "MCAS_TENANT_NAME": "default",
    # Alert source per tenant: the Defender for Cloud Apps API or Microsoft Graph security alerts_v2.
    "MCAS_ALERT_SOURCE": "mda",
    "MCAS_GRAPH_URL": "https://graph.microsoft.com",
    "MCAS_GRAPH_SERVICE_SOURCES": "microsoftDefenderForCloudApps",
    "MCAS_GRAPH_SCOPE": "",
    "MCAS_GRAPH_RATE_LIMIT_PER_MINUTE": "150",
    # Auth (shared/auth, validated in shared/auth/config.py).
    "MCAS_CLIENT_CREDENTIAL_MODE": "auto",
    "MCAS_SECRET_CACHE_TTL": "900",
    "MCAS_TOKEN_REFRESH_MARGIN": "300",
    "MCAS_AUTH_RETRY_ATTEMPTS": "4",
    "MCAS_AUTH_RETRY_BACKOFF": "0.5",
    "MCAS_CLIENT_CERTIFICATE_SEND_X5C": "false",
    "MCAS_FEDERATED_TOKEN_AUDIENCE": "",
    "MCAS_USER_NAME_SECRET": "mcas-user-name",
    "MCAS_USER_PASSWORD_SECRET": "mcas-user-password",
    "MCAS_USER_SCOPES": "05a65629-4c1b-48c1-a78b-804c4abdd4af/.default",
    "MCAS_OBO_CLIENT_ID": "",
    "MCAS_OBO_CLIENT_SECRET_NAME": "",
    # SOAR jobs API (shared/jobs, validated in shared/jobs/config.py).
    "MCAS_WEBHOOK_SECRET_NAME": "mcas-webhook-secret",
    "MCAS_WEBHOOK_AUDIENCE": "",
    "MCAS_WEBHOOK_TENANT_ID": "",
    "MCAS_WEBHOOK_REQUIRED_ROLE": "Jobs.Submit",
    "MCAS_WEBHOOK_REQUIRED_SCOPE": "Jobs.Submit",
    "MCAS_WEBHOOK_TENANT_SCOPES": "",
    "MCAS_JOB_SEALING_KEY_NAME": "mcas-job-sealing-key",
    "MCAS_JOB_CALLBACK_SECRET_NAME": "",
    "MCAS_JOB_TIME_BUDGET_SECONDS": "480",
    # Observability (shared/logging_setup.py, shared/telemetry.py, shared/health.py).
    "MCAS_LOG_FORMAT": "json",
    "MCAS_LOG_LEVEL": "",
    "MCAS_TELEMETRY_EXPORT_LOGS": "false",
    "MCAS_HEALTH_TIMEOUT_SECONDS": "5",
    "MCAS_HEALTH_MAX_PULL_AGE": "1h",
}


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 - the only hosts `MCAS_ALLOW_LOOPBACK` opens up."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _https_url(name: str, value: str, *, allow_loopback: bool) -> tuple[str, str]:
    """Split and check an https URL; return (normalised origin, path)."""
    parts = urlsplit(value.strip())
    host = parts.hostname or ""
    if parts.scheme != "https" or not host:
        raise ConfigurationError(name, f"must be an https:// URL with a host, got {value!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(name, "must not carry a query, fragment or user info")
    if is_loopback_host(host) and not allow_loopback:
        raise ConfigurationError(
            name, f"loopback host {host!r} is only accepted when MCAS_ALLOW_LOOPBACK=true (local development)"
        )
    origin = f"https://{parts.netloc.lower()}"
    return origin, parts.path.rstrip("/")


def parse_extra_api_host_suffixes(raw: str) -> tuple[str, ...]:
    """`MCAS_EXTRA_API_HOST_SUFFIXES`: clouds whose API host is not documented (DoD), e.g. `.portal.x.mil`."""
    suffixes = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    for suffix in suffixes:
        labels = suffix.split(".")
        if not suffix.startswith(".") or len(labels) < 3 or not all(labels[1:]):
            raise ConfigurationError(
                "MCAS_EXTRA_API_HOST_SUFFIXES",
                f"entries must look like '.portal.example.com' (a leading dot, two labels or more), "
                f"got {suffix!r}",
            )
    return suffixes


def validate_api_url(
    value: str, *, allow_loopback: bool, name: str = "MCAS_API_URL", extra_suffixes: tuple[str, ...] = ()
) -> str:
    """Normalise a tenant API URL to its origin (`https://<tenant>.<region>.portal.cloudappsecurity.com`)."""
    origin, path = _https_url(name, value, allow_loopback=allow_loopback)
    if path not in ("", "/api"):
        raise ConfigurationError(
            name, f"must be the tenant URL without a path (optionally ending in /api), got {path!r}"
        )
    host = urlsplit(origin).hostname or ""
    if is_loopback_host(host):
        return origin
    if host in GENERIC_API_HOSTS:
        raise ConfigurationError(
            name,
            "use your tenant's own API URL (Defender portal > Settings > Cloud Apps > System > About), "
            "not the "
            "generic portal host, which is slower and gives spurious 401s",
        )
    suffixes = (*API_HOST_SUFFIXES, *extra_suffixes)
    if not any(host.endswith(suffix) for suffix in suffixes):
        allowed = ", ".join(f"*{s}" for s in suffixes)
        raise ConfigurationError(name, f"host {host!r} is not a Defender for Cloud Apps API host ({allowed})")
    return origin


def validate_authority_host(value: str, *, allow_loopback: bool) -> str:
    name = "MCAS_AUTHORITY_HOST"
    origin, path = _https_url(name, value, allow_loopback=allow_loopback)
    if path:
        raise ConfigurationError(
            name, "must be the authority host only, e.g. https://login.microsoftonline.com"
        )
    host = urlsplit(origin).hostname or ""
    if not is_loopback_host(host) and host not in AUTHORITY_HOSTS:
        raise ConfigurationError(
            name, f"host {host!r} is not a known Entra ID authority ({', '.join(AUTHORITY_HOSTS)})"
        )
    return origin


def validate_graph_url(value: str, *, allow_loopback: bool, name: str = "MCAS_GRAPH_URL") -> str:
    """Normalise a Microsoft Graph root (`https://graph.microsoft.com`); the version path is the client's."""
    origin, path = _https_url(name, value, allow_loopback=allow_loopback)
    if path:
        raise ConfigurationError(name, f"must be the Graph root without a path, got {path!r}")
    host = urlsplit(origin).hostname or ""
    if not is_loopback_host(host) and host not in GRAPH_HOSTS:
        raise ConfigurationError(
            name, f"host {host!r} is not a Microsoft Graph root serving alerts_v2 ({', '.join(GRAPH_HOSTS)})"
        )
    return origin


def parse_service_sources(value: str, *, name: str = "MCAS_GRAPH_SERVICE_SOURCES") -> tuple[str, ...]:
    """A comma list of Graph `serviceSource` values; open enum, so only the shape is checked."""
    items = tuple(part.strip() for part in value.split(",") if part.strip())
    if not items:
        raise ConfigurationError(
            name, "must name at least one serviceSource, e.g. microsoftDefenderForCloudApps"
        )
    for item in items:
        if not item.isalnum():
            raise ConfigurationError(
                name, f"entries are serviceSource names (letters and digits), got {item!r}"
            )
    return items


def validate_key_vault_url(value: str, *, allow_loopback: bool) -> str:
    name = "MCAS_KEY_VAULT_URL"
    origin, path = _https_url(name, value, allow_loopback=allow_loopback)
    if path:
        raise ConfigurationError(name, "must be the vault URL only, e.g. https://my-vault.vault.azure.net")
    host = urlsplit(origin).hostname or ""
    if not is_loopback_host(host) and not host.endswith(KEY_VAULT_SUFFIXES):
        raise ConfigurationError(
            name, f"host {host!r} is not a Key Vault host ({', '.join(KEY_VAULT_SUFFIXES)})"
        )
    return origin


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(name, f"must be true or false, got {value!r}")


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(name, f"must be a whole number, got {value!r}") from None
    if number <= 0:
        raise ConfigurationError(name, f"must be greater than zero, got {number}")
    return number


@dataclass(frozen=True)
class TenantProfile:
    """One Defender for Cloud Apps tenant the app works for (several for MSSPs)."""

    name: str
    api_url: str
    tenant_id: str
    client_id: str
    auth_mode: AuthMode = "application"
    client_secret_name: str = DEFAULTS["MCAS_CLIENT_SECRET_NAME"]
    client_certificate_name: str | None = None
    legacy_token_name: str = DEFAULTS["MCAS_LEGACY_TOKEN_NAME"]
    rate_limit_per_minute: int = 30
    alert_source: AlertSource = "mda"
    graph_url: str = DEFAULTS["MCAS_GRAPH_URL"]
    graph_service_sources: tuple[str, ...] = ("microsoftDefenderForCloudApps",)
    graph_scope: str | None = None  # default: `<graph_url>/.default`
    graph_rate_limit_per_minute: int = 150

    @property
    def authority_tenant(self) -> str:
        return self.tenant_id

    @property
    def graph_token_scope(self) -> str:
        """Client-credentials scope for Graph: the root's `/.default` unless overridden."""
        return self.graph_scope or f"{self.graph_url}/.default"


@dataclass(frozen=True)
class StorageSettings:
    """`AzureWebJobsStorage`: a connection string locally, identity-based service URIs in Azure."""

    connection_string: str | None = None
    blob_service_uri: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    credential: str | None = None  # "managedidentity" when identity-based
    client_id: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.connection_string or self.queue_service_uri)


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build with `Settings.from_env()`; tests pass their own mapping."""

    tenants: tuple[TenantProfile, ...]
    authority_host: str
    key_vault_url: str | None
    allow_loopback: bool
    storage: StorageSettings
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def default_tenant(self) -> TenantProfile:
        return self.tenants[0]

    def tenant(self, name: str) -> TenantProfile:
        for profile in self.tenants:
            if profile.name == name:
                return profile
        raise ConfigurationError("MCAS_TENANT_PROFILES", f"no tenant profile named {name!r}")

    @property
    def verify_key_vault_challenge_resource(self) -> bool:
        """Relaxed only for a loopback vault in explicit loopback development mode."""
        if not self.key_vault_url:
            return True
        host = urlsplit(self.key_vault_url).hostname or ""
        return not (self.allow_loopback and is_loopback_host(host))

    def get(self, name: str, default: str | None = None) -> str | None:
        """Raw access for settings owned by a single feature module (validated there)."""
        value = self.extra.get(name)
        return value if value not in (None, "") else default

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)

        def read(name: str) -> str:
            return (env.get(name) or DEFAULTS.get(name, "")).strip()

        allow_loopback = _bool("MCAS_ALLOW_LOOPBACK", read("MCAS_ALLOW_LOOPBACK"))
        authority_host = validate_authority_host(read("MCAS_AUTHORITY_HOST"), allow_loopback=allow_loopback)
        extra_suffixes = parse_extra_api_host_suffixes(read("MCAS_EXTRA_API_HOST_SUFFIXES"))
        vault = read("MCAS_KEY_VAULT_URL")
        key_vault_url = validate_key_vault_url(vault, allow_loopback=allow_loopback) if vault else None

        base = profile_from_mapping(
            {
                "name": read("MCAS_TENANT_NAME"),
                "api_url": read("MCAS_API_URL"),
                "tenant_id": read("MCAS_TENANT_ID"),
                "client_id": read("MCAS_CLIENT_ID"),
                "auth_mode": read("MCAS_AUTH_MODE"),
                "client_secret_name": read("MCAS_CLIENT_SECRET_NAME"),
                "client_certificate_name": read("MCAS_CLIENT_CERTIFICATE_NAME"),
                "legacy_token_name": read("MCAS_LEGACY_TOKEN_NAME"),
                "rate_limit_per_minute": read("MCAS_RATE_LIMIT_PER_MINUTE"),
                "alert_source": read("MCAS_ALERT_SOURCE"),
                "graph_url": read("MCAS_GRAPH_URL"),
                "graph_service_sources": read("MCAS_GRAPH_SERVICE_SOURCES"),
                "graph_scope": read("MCAS_GRAPH_SCOPE"),
                "graph_rate_limit_per_minute": read("MCAS_GRAPH_RATE_LIMIT_PER_MINUTE"),
            },
            setting_prefix="MCAS_",
            allow_loopback=allow_loopback,
            extra_suffixes=extra_suffixes,
            required=not env.get("MCAS_TENANT_PROFILES"),
        )
        tenants = _tenant_profiles(
            env.get("MCAS_TENANT_PROFILES", ""),
            base,
            allow_loopback=allow_loopback,
            extra_suffixes=extra_suffixes,
        )
        if key_vault_url is None:
            raise ConfigurationError(
                "MCAS_KEY_VAULT_URL", "is required: the app reads its API credentials from Key Vault"
            )
        return cls(
            tenants=tenants,
            authority_host=authority_host,
            key_vault_url=key_vault_url,
            allow_loopback=allow_loopback,
            storage=_storage_settings(env),
            extra=env,
        )


PROFILE_KEYS = {
    "name": "TENANT_NAME",
    "api_url": "API_URL",
    "tenant_id": "TENANT_ID",
    "client_id": "CLIENT_ID",
    "auth_mode": "AUTH_MODE",
    "client_secret_name": "CLIENT_SECRET_NAME",
    "client_certificate_name": "CLIENT_CERTIFICATE_NAME",
    "legacy_token_name": "LEGACY_TOKEN_NAME",
    "rate_limit_per_minute": "RATE_LIMIT_PER_MINUTE",
    "alert_source": "ALERT_SOURCE",
    "graph_url": "GRAPH_URL",
    "graph_service_sources": "GRAPH_SERVICE_SOURCES",
    "graph_scope": "GRAPH_SCOPE",
    "graph_rate_limit_per_minute": "GRAPH_RATE_LIMIT_PER_MINUTE",
}


def profile_from_mapping(
    raw: Mapping[str, object],
    *,
    setting_prefix: str,
    allow_loopback: bool,
    extra_suffixes: tuple[str, ...] = (),
    required: bool = True,
) -> TenantProfile | None:
    """Validate one tenant profile; errors name `<setting_prefix><KEY>` (e.g. MCAS_API_URL)."""

    def setting(key: str) -> str:
        return f"{setting_prefix}{PROFILE_KEYS[key]}"

    def text(key: str) -> str:
        value = raw.get(key)
        return "" if value is None else str(value).strip()

    api_url = text("api_url")
    if not api_url:
        if required:
            raise ConfigurationError(setting("api_url"), "is required (your tenant's API URL)")
        return None
    auth_mode = text("auth_mode") or "application"
    if auth_mode not in AUTH_MODES:
        raise ConfigurationError(
            setting("auth_mode"), f"must be one of {', '.join(AUTH_MODES)}, got {auth_mode!r}"
        )
    tenant_id, client_id = text("tenant_id"), text("client_id")
    if auth_mode != "legacy":
        for key, value in (("tenant_id", tenant_id), ("client_id", client_id)):
            if not value:
                raise ConfigurationError(setting(key), f"is required for MCAS_AUTH_MODE={auth_mode}")
    alert_source = text("alert_source") or "mda"
    if alert_source not in ALERT_SOURCES:
        raise ConfigurationError(
            setting("alert_source"), f"must be one of {', '.join(ALERT_SOURCES)}, got {alert_source!r}"
        )
    sources = raw.get("graph_service_sources")
    if isinstance(sources, list | tuple):
        sources = ",".join(str(item) for item in sources)
    name = text("name") or "default"
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigurationError(setting("name"), f"may hold only letters, digits, '-' and '_', got {name!r}")
    return TenantProfile(
        name=name,
        api_url=validate_api_url(
            api_url, allow_loopback=allow_loopback, name=setting("api_url"), extra_suffixes=extra_suffixes
        ),
        tenant_id=tenant_id,
        client_id=client_id,
        auth_mode=auth_mode,
        client_secret_name=text("client_secret_name") or DEFAULTS["MCAS_CLIENT_SECRET_NAME"],
        client_certificate_name=text("client_certificate_name") or None,
        legacy_token_name=text("legacy_token_name") or DEFAULTS["MCAS_LEGACY_TOKEN_NAME"],
        rate_limit_per_minute=_positive_int(
            setting("rate_limit_per_minute"),
            text("rate_limit_per_minute") or DEFAULTS["MCAS_RATE_LIMIT_PER_MINUTE"],
        ),
        alert_source=alert_source,
        graph_url=validate_graph_url(
            text("graph_url") or DEFAULTS["MCAS_GRAPH_URL"],
            allow_loopback=allow_loopback,
            name=setting("graph_url"),
        ),
        graph_service_sources=parse_service_sources(
            str(sources or DEFAULTS["MCAS_GRAPH_SERVICE_SOURCES"]), name=setting("graph_service_sources")
        ),
        graph_scope=text("graph_scope") or None,
        graph_rate_limit_per_minute=_positive_int(
            setting("graph_rate_limit_per_minute"),
            text("graph_rate_limit_per_minute") or DEFAULTS["MCAS_GRAPH_RATE_LIMIT_PER_MINUTE"],
        ),
    )


def _tenant_profiles(
    raw: str, base: TenantProfile | None, *, allow_loopback: bool, extra_suffixes: tuple[str, ...] = ()
) -> tuple[TenantProfile, ...]:
    """`MCAS_TENANT_PROFILES`: a JSON list of profiles; omitted keys inherit from the flat MCAS_* settings."""
    if not raw.strip():
        assert base is not None
        return (base,)
    profiles: list[TenantProfile] = []
    for index, item in enumerate(profile_list(raw)):
        inherited = {k: getattr(base, k) for k in PROFILE_KEYS if base is not None and k != "name"}
        check_profile_keys(item, index)
        profile = profile_from_mapping(
            {**inherited, **item},
            setting_prefix=f"MCAS_TENANT_PROFILES[{index}].",
            allow_loopback=allow_loopback,
            extra_suffixes=extra_suffixes,
        )
        assert profile is not None
        profiles.append(profile)
    check_unique_names([p.name for p in profiles])
    return tuple(profiles)


def profile_list(raw: str) -> list[dict[str, Any]]:
    """The objects of an `MCAS_TENANT_PROFILES` JSON list (the setting, or a file to import as tenants)."""
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            "MCAS_TENANT_PROFILES", f"is not valid JSON ({exc.msg} at char {exc.pos})"
        ) from None
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise ConfigurationError("MCAS_TENANT_PROFILES", "must be a non-empty JSON list of objects")
    return items


def check_profile_keys(item: Mapping[str, object], index: int) -> None:
    """Entry `index` of an `MCAS_TENANT_PROFILES` list may hold only profile keys (a typo must not pass)."""
    unknown = set(item) - set(PROFILE_KEYS)
    if unknown:
        raise ConfigurationError(f"MCAS_TENANT_PROFILES[{index}]", f"unknown keys {sorted(unknown)}")


def check_unique_names(names: list[str]) -> None:
    """Profile names key checkpoints, leases and sinks: two profiles may not share one."""
    if len(set(names)) != len(names):
        raise ConfigurationError("MCAS_TENANT_PROFILES", f"profile names must be unique, got {names}")


def _storage_settings(env: Mapping[str, str]) -> StorageSettings:
    prefix = "AzureWebJobsStorage"
    return StorageSettings(
        connection_string=env.get(prefix) or None,
        blob_service_uri=env.get(f"{prefix}__blobServiceUri") or None,
        queue_service_uri=env.get(f"{prefix}__queueServiceUri") or None,
        table_service_uri=env.get(f"{prefix}__tableServiceUri") or None,
        credential=env.get(f"{prefix}__credential") or None,
        client_id=env.get(f"{prefix}__clientId") or None,
    )


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The worker's settings, validated on first use (not at import, so indexing never fails on config)."""
    return Settings.from_env()


def reset_settings_cache() -> None:
    """For tests and `mcasctl`, which change the environment within one process."""
    get_settings.cache_clear()


register_cache_reset(reset_settings_cache)
