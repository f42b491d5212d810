"""API credentials for Defender for Cloud Apps: one cached, single-flight helper for every caller.

Interface used by the API client and every function:
    credential = api_credential(profile)                 # application / user / legacy, from settings
    credential = api_credential(profile, user_assertion=bearer)   # on-behalf-of a calling analyst
    headers["Authorization"] = credential.authorization_header()
    ...on a 401: credential.invalidate(); retry once
"""

from __future__ import annotations

from typing import Protocol

from shared.settings import TenantProfile


class ApiCredential(Protocol):
    def authorization_header(self) -> str:
        """`Bearer <jwt>` or `Token <key>`; cached, refreshed before expiry."""
        ...

    def invalidate(self) -> None:
        """Drop the cached token (after the API answered 401) so the next call fetches a fresh one."""
        ...


def api_credential(profile: TenantProfile, *, user_assertion: str | None = None) -> ApiCredential:
    raise NotImplementedError("filled in by the auth work (issue 3)")
