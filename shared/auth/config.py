"""Auth settings, read through `Settings.get` and validated here (the module that owns them).

Names and defaults live in `shared.settings.DEFAULTS` so the README settings table covers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from shared.errors import ConfigurationError
from shared.settings import DEFAULTS, MDA_RESOURCE_APP_ID, Settings, TenantProfile

CredentialMode = Literal["secret", "certificate", "managed_identity"]
CREDENTIAL_MODES: tuple[CredentialMode, ...] = ("secret", "certificate", "managed_identity")

MDA_SCOPE = f"{MDA_RESOURCE_APP_ID}/.default"

# Audience of the managed identity token used as a federated client assertion, per cloud (Entra docs,
# "Configure an application to trust a managed identity").
_FEDERATED_AUDIENCES = {
    "login.microsoftonline.us": "api://AzureADTokenExchangeUSGov",
    "login.chinacloudapi.cn": "api://AzureADTokenExchangeChina",
}
_DEFAULT_FEDERATED_AUDIENCE = "api://AzureADTokenExchange"


def _setting(settings: Settings, name: str) -> str:
    return (settings.get(name) or DEFAULTS.get(name, "")).strip()


def _number(settings: Settings, name: str, *, minimum: float, integer: bool) -> float:
    raw = _setting(settings, name)
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigurationError(name, f"must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(name, f"must be at least {minimum:g}, got {value:g}")
    return value


def _bool(settings: Settings, name: str) -> bool:
    raw = _setting(settings, name).lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(name, f"must be true or false, got {raw!r}")


@dataclass(frozen=True)
class AuthConfig:
    """Worker-wide auth knobs (not per tenant)."""

    secret_cache_ttl: float
    token_refresh_margin: float
    retry_attempts: int
    retry_backoff: float
    credential_mode: str  # "auto" or a CredentialMode
    send_x5c: bool
    federated_audience: str
    user_name_secret: str
    user_password_secret: str
    user_scopes: tuple[str, ...]
    obo_client_id: str
    obo_client_secret_name: str

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthConfig:
        mode = _setting(settings, "MCAS_CLIENT_CREDENTIAL_MODE").lower() or "auto"
        if mode not in ("auto", *CREDENTIAL_MODES):
            raise ConfigurationError(
                "MCAS_CLIENT_CREDENTIAL_MODE", f"must be auto, {', '.join(CREDENTIAL_MODES)}; got {mode!r}"
            )
        audience = _setting(settings, "MCAS_FEDERATED_TOKEN_AUDIENCE")
        if not audience:
            host = urlsplit(settings.authority_host).hostname or ""
            audience = _FEDERATED_AUDIENCES.get(host, _DEFAULT_FEDERATED_AUDIENCE)
        scopes = tuple(s for s in _setting(settings, "MCAS_USER_SCOPES").replace(",", " ").split() if s)
        if not scopes:
            raise ConfigurationError("MCAS_USER_SCOPES", "must name at least one delegated scope")
        return cls(
            secret_cache_ttl=_number(settings, "MCAS_SECRET_CACHE_TTL", minimum=0, integer=True),
            token_refresh_margin=_number(settings, "MCAS_TOKEN_REFRESH_MARGIN", minimum=0, integer=True),
            retry_attempts=int(_number(settings, "MCAS_AUTH_RETRY_ATTEMPTS", minimum=1, integer=True)),
            retry_backoff=_number(settings, "MCAS_AUTH_RETRY_BACKOFF", minimum=0, integer=False),
            credential_mode=mode,
            send_x5c=_bool(settings, "MCAS_CLIENT_CERTIFICATE_SEND_X5C"),
            federated_audience=audience,
            user_name_secret=_setting(settings, "MCAS_USER_NAME_SECRET"),
            user_password_secret=_setting(settings, "MCAS_USER_PASSWORD_SECRET"),
            user_scopes=scopes,
            obo_client_id=_setting(settings, "MCAS_OBO_CLIENT_ID"),
            obo_client_secret_name=_setting(settings, "MCAS_OBO_CLIENT_SECRET_NAME"),
        )

    def credential_mode_for(self, profile: TenantProfile) -> CredentialMode:
        """`auto`: a certificate when the profile names one, otherwise the client secret."""
        if self.credential_mode == "auto":
            return "certificate" if profile.client_certificate_name else "secret"
        mode: CredentialMode = self.credential_mode  # type: ignore[assignment]
        if mode == "certificate" and not profile.client_certificate_name:
            raise ConfigurationError(
                "MCAS_CLIENT_CERTIFICATE_NAME", "is required when MCAS_CLIENT_CREDENTIAL_MODE=certificate"
            )
        return mode
