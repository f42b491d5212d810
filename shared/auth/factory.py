"""Builds and keeps the worker's credentials: one per profile, one MSAL app per (authority, tenant, client).

Everything here is lazily built and reset through `shared.caches.reset_all_caches()` (tests, `mcasctl`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.auth.confidential import (
    CertificateLoader,
    ClientCredentialLoader,
    ConfidentialClient,
    FederatedIdentityLoader,
    SecretLoader,
)
from shared.auth.config import MDA_SCOPE, AuthConfig
from shared.auth.keyvault import secret_store
from shared.auth.legacy import LegacySource
from shared.auth.obo import OboCredentials, OnBehalfOfSource
from shared.auth.public import (
    DeviceCodePrompt,
    PersistedCache,
    PublicClient,
    UserSource,
    default_token_cache_path,
)
from shared.auth.tokens import AccessToken, CachedCredential, SourceInfo, TokenDescription
from shared.caches import KeptObjects, register_cache_reset
from shared.errors import ConfigurationError
from shared.settings import Settings, TenantProfile

_lock = threading.Lock()
_credentials: KeptObjects[tuple[Any, ...], CachedCredential] = KeptObjects()
_confidential: KeptObjects[tuple[Any, ...], ConfidentialClient] = KeptObjects()
_public: KeptObjects[tuple[Any, ...], PublicClient] = KeptObjects()
_configs: dict[int, tuple[Settings, AuthConfig]] = {}
_obo = OboCredentials()


def auth_config(settings: Settings) -> AuthConfig:
    with _lock:
        cached = _configs.get(id(settings))
        if cached is None or cached[0] is not settings:
            cached = (settings, AuthConfig.from_settings(settings))
            _configs.clear()
            _configs[id(settings)] = cached
        return cached[1]


class ClientCredentialsSource:
    def __init__(self, client: ConfidentialClient, *, tenant_name: str, scope: str = MDA_SCOPE) -> None:
        self._client = client
        self._tenant_name = tenant_name
        self._scope = scope

    def info(self) -> SourceInfo:
        return self._client.source_info(mode="application", tenant_name=self._tenant_name)

    def fetch(self, *, force_refresh: bool) -> AccessToken:
        return self._client.acquire_for_client([self._scope], force_refresh=force_refresh)


def _loader(
    settings: Settings, config: AuthConfig, profile: TenantProfile, *, secret_name: str
) -> ClientCredentialLoader:
    mode = config.credential_mode_for(profile)
    if mode == "managed_identity":
        return FederatedIdentityLoader(config.federated_audience)
    store = secret_store(settings)
    if mode == "certificate":
        assert profile.client_certificate_name
        return CertificateLoader(store, profile.client_certificate_name, send_x5c=config.send_x5c)
    return SecretLoader(store, secret_name)


def confidential_client(
    settings: Settings, config: AuthConfig, profile: TenantProfile, *, client_id: str, secret_name: str
) -> ConfidentialClient:
    """The worker's MSAL confidential app for (authority, tenant, client id, credential)."""
    loader = _loader(settings, config, profile, secret_name=secret_name)
    key = (
        settings.authority_host,
        profile.tenant_id,
        client_id,
        loader.kind,
        getattr(loader, "name", None),
        settings.key_vault_url,
    )
    return _confidential.get(
        key,
        lambda: ConfidentialClient(
            authority_host=settings.authority_host,
            tenant_id=profile.tenant_id,
            client_id=client_id,
            loader=loader,
            attempts=config.retry_attempts,
            backoff=config.retry_backoff,
        ),
    )


def public_client(settings: Settings, config: AuthConfig, profile: TenantProfile) -> PublicClient:
    key = (settings.authority_host, profile.tenant_id, profile.client_id)
    return _public.get(
        key,
        lambda: PublicClient(
            authority_host=settings.authority_host,
            tenant_id=profile.tenant_id,
            client_id=profile.client_id,
            persisted=PersistedCache(default_token_cache_path()),
            attempts=config.retry_attempts,
            backoff=config.retry_backoff,
        ),
    )


def _build(settings: Settings, config: AuthConfig, profile: TenantProfile) -> CachedCredential:
    source: Any
    if profile.auth_mode == "legacy":
        source = LegacySource(
            secret_store(settings),
            secret_name=profile.legacy_token_name,
            tenant_name=profile.name,
            api_url=profile.api_url,
            ttl=config.secret_cache_ttl,
        )
    elif profile.auth_mode == "user":
        source = UserSource(
            public_client(settings, config, profile),
            scopes=list(config.user_scopes),
            store=secret_store(settings) if settings.key_vault_url else None,
            username_secret=config.user_name_secret,
            password_secret=config.user_password_secret,
            tenant_name=profile.name,
        )
    else:
        return _client_credentials(settings, config, profile, MDA_SCOPE)
    return CachedCredential(source, refresh_margin=config.token_refresh_margin)


def _client_credentials(
    settings: Settings, config: AuthConfig, profile: TenantProfile, scope: str
) -> CachedCredential:
    """Application context for `scope` with the profile's own app registration and client credential."""
    client = confidential_client(
        settings, config, profile, client_id=profile.client_id, secret_name=profile.client_secret_name
    )
    source = ClientCredentialsSource(client, tenant_name=profile.name, scope=scope)
    return CachedCredential(source, refresh_margin=config.token_refresh_margin)


def credential_for(settings: Settings, profile: TenantProfile) -> CachedCredential:
    config = auth_config(settings)
    key = (profile, settings.authority_host, settings.key_vault_url, config)
    return _credentials.get(key, lambda: _build(settings, config, profile))


def resource_credential_for(settings: Settings, profile: TenantProfile, scope: str) -> CachedCredential:
    """Application-context token for another resource (Microsoft Graph, Azure Monitor): the same app
    registration and credential (secret, certificate or federated managed identity) as the MDA API, one
    cached single-flight credential per (profile, scope). MSAL keeps one token per audience."""
    if profile.auth_mode != "application":
        raise ConfigurationError(
            "MCAS_AUTH_MODE",
            f"tokens for {scope} need application context (client credentials); tenant {profile.name!r} "
            f"uses {profile.auth_mode}",
        )
    config = auth_config(settings)
    key = (profile, settings.authority_host, settings.key_vault_url, config, scope)
    return _credentials.get(key, lambda: _client_credentials(settings, config, profile, scope))


def obo_credential_for(settings: Settings, profile: TenantProfile, user_assertion: str) -> CachedCredential:
    config = auth_config(settings)
    client_id = config.obo_client_id
    if not client_id:
        if profile.auth_mode != "application":
            raise ConfigurationError(
                "MCAS_OBO_CLIENT_ID",
                f"is required for on-behalf-of requests when MCAS_AUTH_MODE={profile.auth_mode} (the "
                "confidential app that receives the analysts' tokens)",
            )
        client_id = profile.client_id
    secret_name = config.obo_client_secret_name or profile.client_secret_name
    scope_key = (profile, settings.authority_host, settings.key_vault_url, config, client_id, secret_name)

    def build() -> CachedCredential:
        client = confidential_client(settings, config, profile, client_id=client_id, secret_name=secret_name)
        source = OnBehalfOfSource(
            client, user_assertion, scopes=list(config.user_scopes), tenant_name=profile.name
        )
        return CachedCredential(source, refresh_margin=config.token_refresh_margin)

    return _obo.get(scope_key, user_assertion, build)


def reset_credentials() -> None:
    _credentials.clear()
    _confidential.clear()
    _public.clear()
    with _lock:
        _configs.clear()
    _obo.clear()


register_cache_reset(reset_credentials)


def device_code_login(
    settings: Settings,
    profile: TenantProfile,
    on_prompt: Callable[[DeviceCodePrompt], None],
    *,
    timeout: float | None = None,
) -> TokenDescription:
    """`mcasctl login`: device code sign-in for the profile's public client; the cache is persisted (0600)."""
    if profile.auth_mode != "user":
        raise ConfigurationError(
            "MCAS_AUTH_MODE",
            f"must be user for device code sign-in (tenant {profile.name!r} uses {profile.auth_mode}); "
            "MCAS_CLIENT_ID must then name a public client app",
        )
    config = auth_config(settings)
    client = public_client(settings, config, profile)
    client.login_with_device_code(list(config.user_scopes), on_prompt, timeout=timeout)
    credential = credential_for(settings, profile)
    credential.invalidate()
    return credential.describe()


def device_code_logout(settings: Settings, profile: TenantProfile) -> Path | None:
    """Forget the signed-in user: delete the persisted token cache. Returns its path if one was removed."""
    config = auth_config(settings)
    client = public_client(settings, config, profile)
    persisted = client.persisted
    reset_credentials()
    if persisted is not None and persisted.delete():
        return persisted.path
    return None
