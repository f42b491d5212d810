"""User context (`MCAS_AUTH_MODE=user`): a public client with delegated permissions.

Sign-in methods, tried in this order for each token:
1. the token cache written by `mcasctl login` (device code flow), if this machine has one: silent acquisition,
   refresh tokens included - the operator's own identity;
2. ROPC with the username and password from Key Vault (`MCAS_USER_NAME_SECRET` / `MCAS_USER_PASSWORD_SECRET`),
   the method the product docs describe. It cannot work for accounts with MFA or other interactive policies:
   Entra answers AADSTS50076/50079 and the helper raises `InteractionRequiredError` saying so.

The persisted cache lives in the user's config directory (`$XDG_CONFIG_HOME/mcasctl` or `~/.config/mcasctl`,
`%APPDATA%\\mcasctl` on Windows), file mode 0600, written atomically. It is only written when it already
exists or by `mcasctl login`, so a Functions worker never puts refresh tokens on disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.auth.errors import CredentialRejectedError, InteractionRequiredError, TokenRequestError
from shared.auth.keyvault import SecretStore
from shared.auth.msal_support import (
    BAD_PASSWORD_CODES,
    HTTP_TIMEOUT,
    INTERACTION_CODES,
    IdentityProviderRetry,
    NoHttpCache,
    access_token_from,
    call_token_endpoint,
    error_codes,
    error_summary,
)
from shared.auth.redaction import register_secret
from shared.auth.tokens import AccessToken, SourceInfo

_log = logging.getLogger(__name__)


def default_token_cache_path() -> Path:
    """Where `mcasctl login` keeps its MSAL token cache."""
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"])
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "mcasctl" / "msal_token_cache.json"


class PersistedCache:
    """Load and atomically save a `msal.SerializableTokenCache` with owner-only permissions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return self.path.is_file()

    def load_into(self, cache: Any) -> None:
        with contextlib.suppress(FileNotFoundError):
            cache.deserialize(self.path.read_text(encoding="utf-8"))

    def save(self, cache: Any) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".token-cache-", dir=self.path.parent)
            try:
                Path(tmp).chmod(0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(cache.serialize())
                Path(tmp).replace(self.path)
                self.path.chmod(0o600)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    Path(tmp).unlink()
                raise

    def delete(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


@dataclass(frozen=True)
class DeviceCodePrompt:
    """What the operator must do: open `verification_uri` and enter `user_code` (shown to them on purpose)."""

    user_code: str
    verification_uri: str
    message: str
    expires_in: int


class PublicClient:
    """One `msal.PublicClientApplication` per (authority, tenant, client id) and its (optionally persisted)
    cache."""

    def __init__(
        self,
        *,
        authority_host: str,
        tenant_id: str,
        client_id: str,
        persisted: PersistedCache | None,
        attempts: int,
        backoff: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.authority = f"{authority_host}/{tenant_id}"
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.persisted = persisted
        self._retrying = IdentityProviderRetry(self.authority, attempts, backoff, sleep)
        self._lock = threading.Lock()
        self._app: Any = None
        self._persist = False

    def _application(self) -> Any:
        with self._lock:
            if self._app is None:
                import msal

                cache = msal.SerializableTokenCache()
                if self.persisted is not None and self.persisted.exists():
                    self.persisted.load_into(cache)
                    self._persist = True

                self._app = self._retrying.build_app(
                    lambda: msal.PublicClientApplication(
                        self.client_id,
                        authority=self.authority,
                        instance_discovery=False,
                        token_cache=cache,
                        http_cache=NoHttpCache(),
                        timeout=HTTP_TIMEOUT,
                    ),
                    client=f"public client {self.client_id}",
                    transient="tenant discovery",
                )
                _skip_user_realm_discovery_on_loopback(self._app)
            return self._app

    def _save(self) -> None:
        app = self._app
        if (
            self._persist
            and self.persisted is not None
            and app is not None
            and app.token_cache.has_state_changed
        ):
            self.persisted.save(app.token_cache)
            app.token_cache.has_state_changed = False

    def _request(self, op: Callable[[Any], dict[str, Any] | None], *, what: str) -> dict[str, Any]:
        app = self._application()
        result: dict[str, Any] = self._retrying(
            lambda: call_token_endpoint(lambda: op(app), what=what),
            what=f"{what} for public client {self.client_id}",
        )
        self._save()
        return result

    # -- flows -----------------------------------------------------------------------------------------------

    def acquire_silent(
        self, scopes: list[str], *, username: str | None, force_refresh: bool
    ) -> AccessToken | None:
        """From the cache (refreshing with the refresh token as needed); None when no account / interaction
        needed."""
        app = self._application()
        accounts = app.get_accounts(username=username) if username else app.get_accounts()
        if not accounts:
            return None
        result = self._request(
            lambda a: a.acquire_token_silent_with_error(
                scopes, account=accounts[0], force_refresh=force_refresh
            ),
            what="silent token acquisition",
        )
        if "access_token" not in result:
            return None
        return access_token_from(result)

    def acquire_by_password(self, username: str, password: str, scopes: list[str]) -> dict[str, Any]:
        register_secret(password)

        def ropc(app: Any) -> dict[str, Any]:
            with warnings.catch_warnings():
                # MSAL flags ROPC as deprecated for public clients; we document its limits (no MFA) instead.
                warnings.simplefilter("ignore", DeprecationWarning)
                outcome: dict[str, Any] = app.acquire_token_by_username_password(
                    username, password, scopes=scopes
                )
                return outcome

        return self._request(ropc, what="username/password (ROPC) token request")

    def login_with_device_code(
        self,
        scopes: list[str],
        on_prompt: Callable[[DeviceCodePrompt], None],
        *,
        timeout: float | None = None,
    ) -> AccessToken:
        """Device code flow; persists the cache (creating the file). Other accounts of this client are signed
        out."""
        app = self._application()
        flow = self._retrying(
            lambda: call_token_endpoint(
                lambda: app.initiate_device_flow(scopes=scopes), what="device code request"
            ),
            what=f"device code request for public client {self.client_id}",
        )
        if "user_code" not in flow:
            raise TokenRequestError(
                f"device code request for public client {self.client_id} failed: {error_summary(flow)}; "
                "check that the app registration allows public client flows",
                error=str(flow.get("error") or ""),
                codes=error_codes(flow),
            )
        if timeout is not None:
            flow["expires_at"] = min(float(flow.get("expires_at", 0)), time.time() + timeout)
        on_prompt(
            DeviceCodePrompt(
                user_code=str(flow["user_code"]),
                verification_uri=str(flow.get("verification_uri") or flow.get("verification_url") or ""),
                message=str(flow.get("message") or ""),
                expires_in=int(flow.get("expires_in") or 0),
            )
        )
        result = self._retrying(
            lambda: call_token_endpoint(
                lambda: app.acquire_token_by_device_flow(flow), what="device code polling"
            ),
            what="device code sign-in",
        )
        if "access_token" not in result:
            raise InteractionRequiredError(
                f"device code sign-in for public client {self.client_id} did not complete: "
                f"{error_summary(result)}"
            )
        signed_in = (result.get("id_token_claims") or {}).get("preferred_username")
        for account in app.get_accounts():
            if signed_in and account.get("username") != signed_in:
                app.remove_account(account)
        self._persist = self.persisted is not None
        app.token_cache.has_state_changed = True
        self._save()
        return access_token_from(result)

    def sign_out(self) -> None:
        app = self._application()
        for account in app.get_accounts():
            app.remove_account(account)
        self._save()


def _skip_user_realm_discovery_on_loopback(app: Any) -> None:
    """ROPC first asks `https://{host}/common/userrealm/...` whether the account is federated (ADFS). MSAL
    drops the authority's port for that call, so for a loopback authority (local simulator, only accepted with
    MCAS_ALLOW_LOOPBACK=true) it would hit port 443. Loopback authorities have no federated accounts: skip
    it."""
    from shared.settings import is_loopback_host

    authority = getattr(app, "authority", None)
    instance = getattr(authority, "instance", "")
    skip = getattr(type(authority), "_domains_without_user_realm_discovery", None)
    if instance and is_loopback_host(instance) and isinstance(skip, set):
        skip.add(instance)


class UserSource:
    """Delegated tokens for the API: the `mcasctl login` cache first, then ROPC from Key Vault."""

    def __init__(
        self,
        client: PublicClient,
        *,
        scopes: list[str],
        store: SecretStore | None,
        username_secret: str,
        password_secret: str,
        tenant_name: str,
    ) -> None:
        self._client = client
        self._scopes = scopes
        self._store = store
        self._username_secret = username_secret
        self._password_secret = password_secret
        self._tenant_name = tenant_name

    def info(self) -> SourceInfo:
        persisted = self._client.persisted
        methods = []
        if persisted is not None and persisted.exists():
            methods.append(f"device code sign-in (token cache {persisted.path})")
        if self._store is not None:
            methods.append(
                f"username/password (ROPC) from Key Vault secrets {self._username_secret!r} / "
                f"{self._password_secret!r}"
            )
        return SourceInfo(
            mode="user",
            tenant_name=self._tenant_name,
            tenant_id=self._client.tenant_id,
            client_id=self._client.client_id,
            credential=" or ".join(methods) or "none (run `mcasctl login`)",
            authority=self._client.authority,
        )

    def fetch(self, *, force_refresh: bool) -> AccessToken:
        username = None
        if self._store is not None and not (self._client.persisted and self._client.persisted.exists()):
            username = self._store.get(self._username_secret).value
        token = self._client.acquire_silent(self._scopes, username=username, force_refresh=force_refresh)
        if token is not None:
            return token
        if self._store is None:
            raise InteractionRequiredError(
                f"no signed-in user for public client {self._client.client_id}: run `mcasctl login` (device "
                "code), or configure MCAS_KEY_VAULT_URL with the ROPC username and password secrets"
            )
        return self._by_password()

    def _by_password(self) -> AccessToken:
        assert self._store is not None
        result = self._ropc(fresh=False)
        if result.get("error") == "invalid_grant" and set(error_codes(result)) & BAD_PASSWORD_CODES:
            _log.warning(
                "Entra ID rejected the username/password of public client %s (%s); re-reading Key Vault and "
                "retrying once",
                self._client.client_id,
                error_summary(result),
            )
            result = self._ropc(fresh=True)
            if result.get("error") == "invalid_grant" and set(error_codes(result)) & BAD_PASSWORD_CODES:
                raise CredentialRejectedError(
                    "Entra ID rejected the username/password from Key Vault secrets "
                    f"{self._username_secret!r} / {self._password_secret!r} for public client "
                    f"{self._client.client_id} in tenant {self._client.tenant_id} after re-reading them: "
                    f"{error_summary(result)}; check the stored password is current and the account is "
                    "enabled"
                )
        if "access_token" in result:
            return access_token_from(result)
        codes = set(error_codes(result))
        if codes & INTERACTION_CODES or result.get("error") == "interaction_required":
            raise InteractionRequiredError(
                f"the account in Key Vault secret {self._username_secret!r} needs interactive sign-in "
                f"({error_summary(result)}): ROPC cannot satisfy MFA or conditional access - use `mcasctl "
                "login` (device code) or application context"
            )
        raise TokenRequestError(
            f"username/password token request for public client {self._client.client_id} failed: "
            f"{error_summary(result)}",
            error=str(result.get("error") or ""),
            codes=tuple(sorted(codes)),
        )

    def _ropc(self, *, fresh: bool) -> dict[str, Any]:
        assert self._store is not None
        username = self._store.get(self._username_secret, bypass_cache=fresh).value
        password = self._store.get(self._password_secret, bypass_cache=fresh).value
        return self._client.acquire_by_password(username, password, self._scopes)
