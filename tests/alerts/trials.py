"""The kill-and-rerun trials' common steps: seed a day of alerts, calibrate one unkilled run, then kill runs
at random moments inside it and rerun them (`localdev.alert_trials` does the killing and the checking)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from localdev.alert_trials import TrialResult, calibrate, run_trial
from tests.fixtures.alerts import seed_alerts


def seed_last_day(sim: Any, *, seed: int, count: int = 600) -> set[str]:
    """`count` MDA alerts of contoso spread over the last day, 40% of them in bursts; their ids."""
    return {a["_id"] for a in seed_alerts(sim, count, seed=seed, days=1)}


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
    kill_after = (0.15 * duration, 0.85 * duration)
    rng = random.Random(seed)
    common: dict[str, Any] = {"env": env, "expected_ids": expected_ids, "workdir": workdir, "source": source}
    common.update(rng=rng, kill_after=kill_after, max_kills=2, **options)
    return [run_trial(i, **common) for i in range(trials)]
