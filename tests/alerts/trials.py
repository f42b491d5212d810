"""The kill-and-rerun trials' common steps: seed a day of alerts, calibrate one unkilled run, then kill runs
at random moments inside it and rerun them (`localdev.alert_trials` does the killing and the checking)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from localdev.alert_trials import TrialResult, calibrate, run_trial

DAY_MS = 86_400_000


def seed_last_day(sim: Any, *, seed: int, count: int = 600) -> set[str]:
    """`count` MDA alerts of contoso spread over the last day, 40% of them in bursts; their ids."""
    now = int(time.time() * 1000)
    spec = {"count": count, "seed": seed, "start_ms": now - DAY_MS, "end_ms": now - 1000, "burst_share": 0.4}
    sim.mda("contoso", "POST", "alerts/seed", spec)
    return {a["_id"] for a in sim.mda("contoso", "GET", "alerts")["alerts"]}


def trial_env(**settings: str) -> dict[str, str]:
    """The killed runs' process environment: 1 s rate-limit windows and 3 s leases, plus `settings`."""
    return {**os.environ, "MCAS_RATE_LIMIT_WINDOW_SECONDS": "1", "MCAS_ALERTS_LEASE_SECONDS": "3", **settings}


def kill_trials(
    env: dict[str, str],
    workdir: Path,
    *,
    expected_ids: set[str],
    trials: int,
    seed: int,
    source: str | None = None,
    **options: Any,
) -> list[TrialResult]:
    """`trials` runs, each killed up to twice at moments drawn inside a calibrated run, then run to end."""
    duration = calibrate(env, workdir, source=source)
    rng = random.Random(seed)
    window = (0.15 * duration, 0.85 * duration)
    return [
        run_trial(
            i,
            env=env,
            expected_ids=expected_ids,
            workdir=workdir,
            rng=rng,
            kill_after=window,
            max_kills=2,
            source=source,
            **options,
        )
        for i in range(trials)
    ]
