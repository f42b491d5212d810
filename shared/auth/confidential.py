"""Application context: one long-lived `msal.ConfidentialClientApplication` per (authority, tenant, client).

Client credentials, chosen by `MCAS_CLIENT_CREDENTIAL_MODE`:
- `secret`: the client secret from Key Vault (`MCAS_CLIENT_SECRET_NAME`);
- `certificate`: a Key Vault certificate (`MCAS_CLIENT_CERTIFICATE_NAME`, PEM or PKCS#12), signed assertions
  with its private key and SHA-1 thumbprint (`x5c` with `MCAS_CLIENT_CERTIFICATE_SEND_X5C=true`);
- `managed_identity`: secretless - the assertion is the Function App's managed identity token for
  `api://AzureADTokenExchange`, trusted by the app registration as a federated identity credential.

Recovery: `invalid_client` (wrong, rotated or expired credential, e.g. AADSTS7000215 / AADSTS7000222) re-reads
the credential from Key Vault bypassing the cache, rebuilds the MSAL app and retries once; a second rejection
raises `CredentialRejectedError` naming the secret and client id. Network failures and 5xx: bounded retries,
then `IdentityProviderUnavailableError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from shared.auth.certificates import parse_certificate
from shared.auth.errors import CredentialRejectedError, TokenRequestError
from shared.auth.keyvault import SecretStore
from shared.auth.msal_support import (
    HTTP_TIMEOUT,
    IdentityProviderRetry,
    NoHttpCache,
    access_token_from,
    call_token_endpoint,
    error_codes,
    error_summary,
    is_invalid_client,
)
from shared.auth.redaction import register_secret
from shared.auth.tokens import AccessToken, SourceInfo

_log = logging.getLogger(__name__)


class ClientCredentialLoader(Protocol):
    """Produces MSAL's `client_credential`; `fresh=True` bypasses every cache (after invalid_client)."""

    kind: str

    def load(self, *, fresh: bool) -> Any: ...

    def describe(self) -> str:
        """Where the credential lives, for messages: never the value."""
        ...

    def advice(self) -> str:
        """What to check when Entra ID rejects it."""
        ...


class SecretLoader:
    kind = "secret"

    def __init__(self, store: SecretStore, name: str) -> None:
        self._store = store
        self.name = name

    def load(self, *, fresh: bool) -> Any:
        return self._store.get(self.name, bypass_cache=fresh).value

    def describe(self) -> str:
        return f"client secret (Key Vault secret {self.name!r} in {self._store.vault_url})"

    def advice(self) -> str:
        return (
            f"check that Key Vault secret {self.name!r} holds the current secret *value* (not its ID) of the "
            "app registration, that the secret has not expired, and that MCAS_CLIENT_ID names that app"
        )


class CertificateLoader:
    kind = "certificate"

    def __init__(self, store: SecretStore, name: str, *, send_x5c: bool) -> None:
        self._store = store
        self.name = name
        self._send_x5c = send_x5c

    def load(self, *, fresh: bool) -> Any:
        secret = self._store.get(self.name, bypass_cache=fresh)
        certificate = parse_certificate(secret.value, secret.content_type, name=self.name)
        return certificate.msal_credential(send_x5c=self._send_x5c)

    def describe(self) -> str:
        return f"certificate (Key Vault certificate {self.name!r} in {self._store.vault_url})"

    def advice(self) -> str:
        return (
            f"check that the certificate in Key Vault certificate {self.name!r} (its current version) is "
            "uploaded to the app registration's Certificates & secrets and has not expired"
            + (", and that subject name / issuer auth is configured" if self._send_x5c else "")
        )


class FederatedIdentityLoader:
    """The managed identity's token for the token-exchange audience, per assertion (azure-identity caches)."""

    kind = "managed_identity"

    def __init__(self, audience: str, get_token: Callable[[str], str] | None = None) -> None:
        self.audience = audience
        self._get_token = get_token or _managed_identity_token

    def load(self, *, fresh: bool) -> Any:
        scope = f"{self.audience}/.default"

        def assertion() -> str:
            token = self._get_token(scope)
            register_secret(token)
            return token

        return {"client_assertion": assertion}

    def describe(self) -> str:
        return f"managed identity federated credential (audience {self.audience})"

    def advice(self) -> str:
        return (
            "check that the app registration has a federated identity credential whose issuer and subject "
            f"match the Function App's managed identity and whose audience is {self.audience}, and that "
            "AZURE_CLIENT_ID selects that identity when it is user-assigned"
        )


def _managed_identity_token(scope: str) -> str:
    from shared.auth.identity import managed_identity_credential

    token: str = managed_identity_credential().get_token(scope).token
    return token


class ConfidentialClient:
    """Holds the MSAL app for one (authority, tenant, client id) and performs its token requests."""

    def __init__(
        self,
        *,
        authority_host: str,
        tenant_id: str,
        client_id: str,
        loader: ClientCredentialLoader,
        attempts: int,
        backoff: float,
        sleep: Callable[[float], None] = time.sleep,
        app_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.authority = f"{authority_host}/{tenant_id}"
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.loader = loader
        self._retrying = IdentityProviderRetry(
            self.authority, attempts, backoff, sleep, reachable_from="the app"
        )
        self._app_factory = app_factory or _msal_confidential_app
        self._lock = threading.Lock()
        self._app: Any = None
        self._generation = 0
        self._token_cache: Any = None  # one msal.TokenCache that survives rebuilds

    # -- app lifecycle ---------------------------------------------------------------------------------------

    def _current_app(self) -> tuple[Any, int]:
        with self._lock:
            if self._app is None:
                self._build(fresh=False)
            return self._app, self._generation

    def _rebuild(self, seen_generation: int) -> None:
        with self._lock:
            if self._generation != seen_generation:
                return  # another caller already rebuilt with a fresh credential
            self._build(fresh=True)

    def _build(self, *, fresh: bool) -> None:
        credential = self.loader.load(fresh=fresh)

        app = self._retrying.build_app(
            lambda: self._app_factory(
                self.client_id,
                client_credential=credential,
                authority=self.authority,
                token_cache=self._token_cache,
            ),
            client=f"client {self.client_id}",
            transient=f"tenant discovery at {self.authority}",
        )
        self._app = app
        self._token_cache = app.token_cache
        self._generation += 1

    def source_info(self, *, mode: str, tenant_name: str) -> SourceInfo:
        """How a token source built on this client describes itself (application or on-behalf-of)."""
        return SourceInfo(
            mode=mode,
            tenant_name=tenant_name,
            tenant_id=self.tenant_id,
            client_id=self.client_id,
            credential=self.loader.describe(),
            authority=self.authority,
        )

    def remove_tokens_for_client(self) -> None:
        """After a 401 from the API: the next `acquire_for_client` goes to the identity provider."""
        with self._lock:
            app = self._app
        if app is not None:
            app.remove_tokens_for_client()

    # -- token requests --------------------------------------------------------------------------------------

    def acquire_for_client(self, scopes: list[str], *, force_refresh: bool = False) -> AccessToken:
        if force_refresh:
            self.remove_tokens_for_client()
        result = self._request(
            lambda app: app.acquire_token_for_client(scopes=scopes), what="client credentials"
        )
        return access_token_from(result)

    def acquire_on_behalf_of(self, user_assertion: str, scopes: list[str]) -> AccessToken:
        register_secret(user_assertion)
        result = self._request(
            lambda app: app.acquire_token_on_behalf_of(user_assertion=user_assertion, scopes=scopes),
            what="on-behalf-of",
        )
        return access_token_from(result)

    def _request(self, op: Callable[[Any], dict[str, Any]], *, what: str) -> dict[str, Any]:
        def attempt() -> tuple[dict[str, Any], int]:
            app, generation = self._current_app()
            return call_token_endpoint(lambda: op(app), what=f"{what} token request"), generation

        result, generation = self._retrying(attempt, what=f"{what} token request for client {self.client_id}")
        if is_invalid_client(result):
            _log.warning(
                "Entra ID rejected the %s of client %s (%s); re-reading it and retrying once",
                self.loader.kind,
                self.client_id,
                error_summary(result),
            )
            self._rebuild(generation)
            result, _ = self._retrying(attempt, what=f"{what} token request for client {self.client_id}")
            if is_invalid_client(result):
                raise CredentialRejectedError(
                    f"Entra ID rejected the {self.loader.describe()} of client {self.client_id} in tenant "
                    f"{self.tenant_id} after re-reading it: {error_summary(result)}; {self.loader.advice()}"
                )
        if "access_token" not in result:
            raise _request_error(result, client_id=self.client_id, tenant_id=self.tenant_id, what=what)
        return result


def _request_error(result: dict[str, Any], *, client_id: str, tenant_id: str, what: str) -> TokenRequestError:
    codes = error_codes(result)
    hint = ""
    if 700016 in codes:
        hint = f"; app {client_id} is not in tenant {tenant_id} - check MCAS_CLIENT_ID and MCAS_TENANT_ID"
    elif 65001 in codes or 501051 in codes:
        hint = "; grant admin consent for the Microsoft Cloud App Security API permissions"
    elif result.get("error") == "invalid_scope":
        hint = "; the app needs permissions on Microsoft Cloud App Security (05a65629-...)"
    return TokenRequestError(
        f"{what} token request for client {client_id} in tenant {tenant_id} failed: "
        f"{error_summary(result)}{hint}",
        error=str(result.get("error") or ""),
        codes=codes,
    )


def _msal_confidential_app(client_id: str, **kwargs: Any) -> Any:
    import msal

    if kwargs.get("token_cache") is None:
        kwargs["token_cache"] = msal.TokenCache()
    return msal.ConfidentialClientApplication(
        client_id,
        instance_discovery=False,  # harmless for login.microsoftonline.*; required for other authority hosts
        http_cache=NoHttpCache(),
        timeout=HTTP_TIMEOUT,
        **kwargs,
    )
