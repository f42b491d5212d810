"""Kill `mcasctl alerts pull` at random while it writes to the Log Analytics table (blob and logs
sinks), rerun until it completes: no alert is missing from the table; duplicate rows stay within a page
per kill."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import pytest

from localdev.alert_trials import calibrate, run_trial

DAY_MS = 86_400_000


@pytest.mark.slow
def test_kill_at_random_and_rerun_loses_no_row(alerts_env: dict[str, Any], tmp_path: Any) -> None:
    sim = alerts_env["sim"]
    sim.logs("DELETE", "records")
    sim.mda("contoso", "POST", "throttle", {"limit": 3, "window_s": 1})
    now = int(time.time() * 1000)
    sim.mda(
        "contoso",
        "POST",
        "alerts/seed",
        {"count": 600, "seed": 9, "start_ms": now - DAY_MS, "end_ms": now - 1000, "burst_share": 0.4},
    )
    seeded = {a["_id"] for a in sim.mda("contoso", "GET", "alerts")["alerts"]}
    env = {
        **os.environ,
        **sim.logs_env(),
        "MCAS_RATE_LIMIT_WINDOW_SECONDS": "1",
        "MCAS_RATE_LIMIT_PER_MINUTE": "3",
        "MCAS_ALERTS_LEASE_SECONDS": "3",
    }

    def logs_ids(tenant: str) -> list[str]:
        return [r["AlertId"] for r in sim.logs_records() if r["MdaTenant"] == tenant]

    try:
        duration = calibrate(env, tmp_path)
        rng = random.Random(11)
        window = (0.15 * duration, 0.85 * duration)
        results = [
            run_trial(
                i,
                env=env,
                expected_ids=seeded,
                workdir=tmp_path,
                rng=rng,
                kill_after=window,
                max_kills=2,
                sinks="blob,logs",
                logs_ids=logs_ids,
            )
            for i in range(2)
        ]
    finally:
        sim.logs("DELETE", "records")
    for r in results:
        assert r.ok, r.as_dict()
        assert r.missing_in_logs == 0 and r.kills >= 1
