"""Regression tests for bugs the fuzz and chaos suites found in the Key Vault secret reader. One test per bug,
in process.

Each names the failure it pins down; the fuzz- and chaos-marked tests keep exploring.
"""

from __future__ import annotations

from typing import Any

import pytest

# -- a Key Vault token revoked before expiry: every retry re-sent it (found by the chaos suite) -------


def test_a_key_vault_401_starts_the_next_read_from_a_fresh_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    from shared.auth import identity
    from shared.auth.keyvault import AzureSecretReader
    from shared.auth.retry import RetryableError

    class Refusing:
        def get_secret(self, name: str) -> Any:
            raise ClientAuthenticationError("revoked")

    forgotten: list[bool] = []
    monkeypatch.setattr(identity, "forget_default_credential", lambda: forgotten.append(True))
    reader = AzureSecretReader("https://vault.vault.azure.net", verify_challenge_resource=True)
    reader._client = Refusing()
    with pytest.raises(RetryableError):
        reader.read("mcas-client-secret")
    assert reader._client is None and forgotten == [True]
