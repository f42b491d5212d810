"""Bounded proof (3 trials; bench/bench_alerts.py runs 20+): kill `mcasctl alerts pull` at random and rerun.

Every alert is delivered at least once, none twice after sink idempotency (deterministic page blobs), and the
checkpoint never moves backwards.
"""

from __future__ import annotations

import pytest

from localdev.alert_trials import kill_trials
from tests.alerts.trials import seed_last_day, trial_env


@pytest.mark.slow
def test_kill_at_random_and_rerun(alerts_env, tmp_path):
    sim = alerts_env["sim"]
    # 3 requests per second on both sides: a pull of 6 pages takes about 2 s, so kills land mid-pull.
    sim.mda("contoso", "POST", "throttle", {"limit": 3, "window_s": 1})
    seeded = seed_last_day(sim, seed=5)
    env = trial_env(MCAS_RATE_LIMIT_PER_MINUTE="3")
    results = kill_trials(env, tmp_path, expected_ids=seeded, trials=3, seed=7).results
    for r in results:
        assert r.ok, r.as_dict()
    assert all(r.kills >= 1 for r in results)


@pytest.mark.slow
def test_kill_at_random_on_the_graph_change_feed(alerts_env, tmp_path):
    """The same on Microsoft Graph: every (id, version) of the feed delivered, none twice after the blob
    sink's idempotency, the cursor never moving back. 100 alerts a page (the simulator's `$top` cap)."""
    from shared.timeparse import parse_iso_us

    sim = alerts_env["sim"]
    seed_last_day(sim, seed=6)
    sim.graph("contoso", "POST", "reset")
    sim.graph("contoso", "POST", "alerts/change", {"count": 150, "status": "inProgress"})
    sim.graph("contoso", "POST", "config", {"limit": 4, "window_s": 1, "max_top": 100})
    feed = sim.graph("contoso", "GET", "alerts")["alerts"]
    expected = {f"{a['id']}:{parse_iso_us(a['lastUpdateDateTime'], what='t')}" for a in feed}
    env = trial_env(MCAS_GRAPH_RATE_LIMIT_PER_MINUTE="4")
    try:
        results = kill_trials(
            env,
            tmp_path,
            expected_ids=expected,
            trials=3,
            seed=11,
            source="graph",
            stream="alerts-graph",
            by_version=True,
        ).results
    finally:
        sim.graph("contoso", "POST", "reset")
    for r in results:
        assert r.ok, r.as_dict()
    assert all(r.kills >= 1 for r in results)
