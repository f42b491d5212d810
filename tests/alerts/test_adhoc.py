"""The ad-hoc pull job message: what is refused and the defaults of a valid one."""

from __future__ import annotations

import pytest

from shared.alerts.adhoc import parse_job
from shared.errors import ValidationError
from tests.alerts.fakes import T0_MS


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("not json", "not JSON"),
        ("[1]", "object"),
        ('{"bogus": 1}', "unknown keys"),
        ('{"since": "2026-01-01", "lookback": "1h"}', "not both"),
        ('{"since": "last week"}', "ISO-8601"),
        ('{"lookback": "1h", "until": 1}', "before since"),
        ('{"filters": {"date": {"gte": 1}}}', "since/until"),
        ('{"filters": {"severity": 2}}', "operators"),
        ('{"job_id": "../x"}', "job_id"),
        ('{"tenant": 3}', "tenant"),
    ],
)
def test_invalid_jobs(body, problem):
    with pytest.raises(ValidationError, match=problem):
        parse_job(body, now_ms=T0_MS, default_job_id="m1")


def test_valid_job_defaults():
    job = parse_job(
        '{"lookback": "2h", "filters": {"severity": {"eq": [2]}}}', now_ms=T0_MS, default_job_id="m1"
    )
    assert (job.job_id, job.start_ms, job.end_ms) == ("m1", T0_MS - 7_200_000, T0_MS)
    assert parse_job(job.to_message(), now_ms=0, default_job_id="x") == job
