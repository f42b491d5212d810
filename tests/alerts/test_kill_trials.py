"""Bounded proof (3 trials; bench/bench_alerts.py runs 20+): kill `mcasctl alerts pull` at random and rerun.

Every alert is delivered at least once, none twice after sink idempotency (deterministic page blobs), and the
checkpoint never moves backwards.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from localdev.alert_trials import calibrate, run_trial

DAY_MS = 86_400_000


@pytest.mark.slow
def test_kill_at_random_and_rerun(alerts_env, tmp_path):
    sim = alerts_env["sim"]
    # 3 requests per second on both sides: a pull of 6 pages takes about 2 s, so kills land mid-pull.
    sim.mda("contoso", "POST", "throttle", {"limit": 3, "window_s": 1})
    now = int(time.time() * 1000)
    sim.mda(
        "contoso",
        "POST",
        "alerts/seed",
        {"count": 600, "seed": 5, "start_ms": now - DAY_MS, "end_ms": now - 1000, "burst_share": 0.4},
    )
    seeded = {a["_id"] for a in sim.mda("contoso", "GET", "alerts")["alerts"]}
    env = {
        **os.environ,
        "MCAS_RATE_LIMIT_WINDOW_SECONDS": "1",
        "MCAS_RATE_LIMIT_PER_MINUTE": "3",
        "MCAS_ALERTS_LEASE_SECONDS": "3",
    }
    duration = calibrate(env, tmp_path)  # kill moments are drawn inside a run of this length
    rng = random.Random(7)
    window = (0.15 * duration, 0.85 * duration)
    results = [
        run_trial(i, env=env, expected_ids=seeded, workdir=tmp_path, rng=rng, kill_after=window, max_kills=2)
        for i in range(3)
    ]
    for r in results:
        assert r.ok, r.as_dict()
    assert all(r.kills >= 1 for r in results)


@pytest.mark.slow
def test_kill_at_random_on_the_graph_change_feed(alerts_env, tmp_path):
    """The same on Microsoft Graph: every (id, version) of the feed delivered, none twice after the blob
    sink's idempotency, the cursor never moving back. 100 alerts a page (the simulator's `$top` cap)."""
    from shared.alerts.record_v2 import parse_iso_us

    sim = alerts_env["sim"]
    now = int(time.time() * 1000)
    sim.mda(
        "contoso",
        "POST",
        "alerts/seed",
        {"count": 600, "seed": 6, "start_ms": now - DAY_MS, "end_ms": now - 1000, "burst_share": 0.4},
    )
    sim.graph("contoso", "POST", "reset")
    sim.graph("contoso", "POST", "alerts/change", {"count": 150, "status": "inProgress"})
    sim.graph("contoso", "POST", "config", {"limit": 4, "window_s": 1, "max_top": 100})
    feed = sim.graph("contoso", "GET", "alerts")["alerts"]
    expected = {f"{a['id']}:{parse_iso_us(a['lastUpdateDateTime'], what='t')}" for a in feed}
    env = {
        **os.environ,
        "MCAS_RATE_LIMIT_WINDOW_SECONDS": "1",
        "MCAS_GRAPH_RATE_LIMIT_PER_MINUTE": "4",
        "MCAS_ALERTS_LEASE_SECONDS": "3",
    }
    try:
        duration = calibrate(env, tmp_path, source="graph")
        rng = random.Random(11)
        window = (0.15 * duration, 0.85 * duration)
        results = [
            run_trial(
                i,
                env=env,
                expected_ids=expected,
                workdir=tmp_path,
                rng=rng,
                kill_after=window,
                max_kills=2,
                source="graph",
                stream="alerts-graph",
                by_version=True,
            )
            for i in range(3)
        ]
    finally:
        sim.graph("contoso", "POST", "reset")
    for r in results:
        assert r.ok, r.as_dict()
    assert all(r.kills >= 1 for r in results)
