"""Kill `mcasctl alerts pull` at random while it writes to the Log Analytics table (blob and logs
sinks), rerun until it completes: no alert is missing from the table; duplicate rows stay within a page
per kill."""

from __future__ import annotations

from typing import Any

import pytest

from localdev.alert_trials import kill_trials
from tests.alerts.trials import seed_last_day, trial_env


@pytest.mark.slow
def test_kill_at_random_and_rerun_loses_no_row(alerts_env: dict[str, Any], tmp_path: Any) -> None:
    sim = alerts_env["sim"]
    sim.logs("DELETE", "records")
    sim.mda("contoso", "POST", "throttle", {"limit": 3, "window_s": 1})
    seeded = seed_last_day(sim, seed=9)
    env = trial_env(**sim.logs_env(), MCAS_RATE_LIMIT_PER_MINUTE="3")

    def logs_ids(tenant: str) -> list[str]:
        return [r["AlertId"] for r in sim.logs_records() if r["MdaTenant"] == tenant]

    try:
        results = kill_trials(
            env, tmp_path, expected_ids=seeded, trials=2, seed=11, sinks="blob,logs", logs_ids=logs_ids
        ).results
    finally:
        sim.logs("DELETE", "records")
    for r in results:
        assert r.ok, r.as_dict()
        assert r.missing_in_logs == 0 and r.kills >= 1
