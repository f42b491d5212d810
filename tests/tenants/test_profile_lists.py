"""One parser reads `MCAS_TENANT_PROFILES` lists: the app setting and `mcasctl tenants import` refuse the same
malformed lists with the same setting name and message, and the import writes nothing when it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import ConfigurationError
from shared.settings import Settings
from shared.tenants.registry import TenantRegistry

FLAT = {
    "MCAS_API_URL": "https://contoso.us2.portal.cloudappsecurity.com",
    "MCAS_TENANT_ID": "11111111-1111-1111-1111-111111111111",
    "MCAS_CLIENT_ID": "22222222-2222-2222-2222-222222222222",
    "MCAS_KEY_VAULT_URL": "https://contoso-kv.vault.azure.net",
}


class _UntouchableTable:
    """A refused import must fail before any storage call."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the table was used ({name}) for a list that should have been refused")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("[{", "is not valid JSON"),
        ('{"name": "a"}', "must be a non-empty JSON list of objects"),
        ("[]", "must be a non-empty JSON list of objects"),
        ('[{"name": "a"}, 3]', "must be a non-empty JSON list of objects"),
        ('[{"name": "a", "colour": "red"}]', "unknown keys ['colour']"),
        ('[{"name": "a"}, {"name": "a"}]', "profile names must be unique, got ['a', 'a']"),
    ],
)
def test_setting_and_import_refuse_a_malformed_list_alike(raw: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as from_setting:
        Settings.from_env({**FLAT, "MCAS_TENANT_PROFILES": raw})
    registry = TenantRegistry(_UntouchableTable(), Settings.from_env(FLAT))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as from_import:
        registry.import_profiles(raw)
    assert problem in from_setting.value.problem
    assert (from_import.value.setting, from_import.value.problem) == (
        from_setting.value.setting,
        from_setting.value.problem,
    )
