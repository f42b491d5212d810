"""On-behalf-of: a request arrives with an analyst's bearer token for this app; the API is called as them.

The middle-tier confidential client is `MCAS_OBO_CLIENT_ID` (default: the application-context client) with the
same kind of credential. MSAL does not cache OBO results by assertion, so credentials are kept per assertion
(by its SHA-256, never the assertion itself) in a small LRU: a SOAR platform reusing one bearer token for an
hour causes one token request, not one per call.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

from shared.auth.confidential import ConfidentialClient
from shared.auth.redaction import register_secret
from shared.auth.tokens import AccessToken, CachedCredential, SourceInfo

_MAX_ASSERTIONS = 256


class OnBehalfOfSource:
    def __init__(
        self, client: ConfidentialClient, user_assertion: str, *, scopes: list[str], tenant_name: str
    ) -> None:
        register_secret(user_assertion)
        self._client = client
        self._assertion = user_assertion
        self._scopes = scopes
        self._tenant_name = tenant_name

    def info(self) -> SourceInfo:
        return self._client.source_info(mode="on_behalf_of", tenant_name=self._tenant_name)

    def fetch(self, *, force_refresh: bool) -> AccessToken:
        return self._client.acquire_on_behalf_of(self._assertion, self._scopes)


def assertion_key(user_assertion: str) -> str:
    return hashlib.sha256(user_assertion.encode()).hexdigest()


class OboCredentials:
    """Bounded LRU of per-assertion credentials."""

    def __init__(self, capacity: int = _MAX_ASSERTIONS) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[object, str], CachedCredential] = OrderedDict()

    def get(
        self, scope_key: object, user_assertion: str, build: Callable[[], CachedCredential]
    ) -> CachedCredential:
        key = (scope_key, assertion_key(user_assertion))
        with self._lock:
            credential = self._items.get(key)
            if credential is not None:
                self._items.move_to_end(key)
                return credential
            credential = build()
            self._items[key] = credential
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
            return credential

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
