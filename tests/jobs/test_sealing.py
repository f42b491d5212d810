"""Sealing: a user assertion sealed for a job opens only for that job and key."""

from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.jobs.sealing import SealError, key_from_secret, seal, unseal


def test_sealed_assertion_opens_only_for_its_job_and_key():
    key = key_from_secret("c" * 43 + "=")  # 32 bytes of base64
    sealed = seal(key, "job-1", "eyJ.user.assertion")
    assert "assertion" not in sealed and unseal(key, "job-1", sealed) == "eyJ.user.assertion"
    for job, k, value in (
        ("job-2", key, sealed),
        ("job-1", b"d" * 32, sealed),
        ("job-1", key, sealed[:-4] + "AAAA"),
    ):
        with pytest.raises(SealError):
            unseal(k, job, value)
    with pytest.raises(ConfigurationError):
        key_from_secret("dG9vIHNob3J0")
