"""The kill-and-rerun tests' set-up: a day of seeded alerts and the killed runs' environment
(`localdev.alert_trials.kill_trials` does the killing and the checking)."""

from __future__ import annotations

import os
from typing import Any

from tests.fixtures.alerts import seed_alerts


def seed_last_day(sim: Any, *, seed: int, count: int = 600) -> set[str]:
    """`count` MDA alerts of contoso spread over the last day, 40% of them in bursts; their ids."""
    return {a["_id"] for a in seed_alerts(sim, count, seed=seed, days=1)}


def trial_env(**settings: str) -> dict[str, str]:
    """The killed runs' process environment: 1 s rate-limit windows and 3 s leases, plus `settings`."""
    return {**os.environ, "MCAS_RATE_LIMIT_WINDOW_SECONDS": "1", "MCAS_ALERTS_LEASE_SECONDS": "3", **settings}
