"""Microsoft Graph alert source benchmarks, against a private simulator and a private Azurite.

    .venv/bin/python bench/bench_graph.py                    # everything (about 10-15 minutes on 2 cores)
    .venv/bin/python bench/bench_graph.py --only throughput  # or idle | kill
    .venv/bin/python bench/bench_graph.py --json out.json

Scenarios, each against a baseline measured or derived in the same run:
1. throughput: 20,000 alerts through Graph `alerts_v2` (the simulator caps pages at 125 alerts, so the pull
   needs 161 requests) under the Graph budget of 150 requests per window, the window compressed from 60 s.
   Baseline = the limit's floor: a client obeying "N per rolling window" cannot start request R before
   floor((R-1)/N) windows have passed. Reported: wall / floor (target <= 1.05) and 429s (target 0).
2. idle: requests per pull when nothing changed (the overlap window is re-read, its versions deduplicated),
   and the probe's one request; expressed per minute at the default 5-minute timer.
3. kill: >= 20 trials on the Graph change feed, each SIGKILLing `mcasctl alerts pull --source graph` at
   random moments and rerunning it (localdev/alert_trials.py): no (id, version) lost, none twice after the
   blob sink's idempotency, the cursor never moving back.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from alert_world import AlertWorld, floor_s, run_benches, run_each

GRAPH_LIMIT = 150


class World(AlertWorld):
    """The alert benchmarks' world with the tenant's alerts read through its Graph API."""

    def __init__(self, workdir: Path, *, window_s: float) -> None:
        super().__init__(
            workdir,
            window_s=window_s,
            settings={"MCAS_ALERT_SOURCE": "graph", "MCAS_GRAPH_RATE_LIMIT_PER_MINUTE": str(GRAPH_LIMIT)},
        )
        self.configure(limit=GRAPH_LIMIT, window_s=window_s, max_top=125)

    def configure(self, **config: Any) -> None:
        self.sim.graph("contoso", "POST", "config", config)

    def seed_feed(self, count: int) -> list[dict[str, Any]]:
        self.seed(count)
        feed: list[dict[str, Any]] = self.sim.graph("contoso", "GET", "alerts")["alerts"]
        return feed

    def throttle_stats(self) -> dict[str, Any]:
        return dict(self.sim.graph("contoso", "GET", "throttle/stats"))


def _keys(feed: list[dict[str, Any]]) -> set[str]:
    from shared.timeparse import parse_iso_us

    return {f"{a['id']}:{parse_iso_us(a['lastUpdateDateTime'], what='bench')}" for a in feed}


def _delivered(tenant: str) -> list[str]:
    from shared.storage import CONTAINER_ALERTS, container_client

    container = container_client(CONTAINER_ALERTS)
    keys: list[str] = []
    for blob in container.list_blobs(name_starts_with=f"{tenant}/alerts-graph/"):
        for line in container.download_blob(blob.name).readall().decode().splitlines():
            record = json.loads(line)
            keys.append(f"{record['id']}:{record['version']}")
    return keys


def bench_throughput(world: World, *, alerts: int = 20_000) -> dict[str, Any]:
    from shared.alerts.pull import run_scheduled

    feed = world.seed_feed(alerts)
    # Cold start (Key Vault read, Graph token, storage tables) measured apart with a one-request run, then
    # one window of rest so its request does not count against the timed pull's budget.
    world.apply_env(MCAS_TENANT_NAME="graphcold")
    started = time.perf_counter()
    run_scheduled(start_ms=int(time.time() * 1000))
    cold_start = time.perf_counter() - started
    world.apply_env(MCAS_TENANT_NAME="graphput")  # the timed run: a fresh checkpoint, warm credentials
    time.sleep(world.window_s * 1.05 + 0.5)
    world.sim.graph("contoso", "POST", "config", {"limit": GRAPH_LIMIT})
    before = world.throttle_stats()["throttled"]
    started = time.perf_counter()
    result = run_scheduled()[0]
    wall = time.perf_counter() - started
    delivered = _delivered("graphput")
    floor = floor_s(result.requests, GRAPH_LIMIT, world.window_s)
    return {
        "alerts": result.alerts,
        "pages": result.pages,
        "requests": result.requests,
        "limit": f"{GRAPH_LIMIT} per {world.window_s:g} s (Graph: 150 per 60 s)",
        "cold_start_s": round(cold_start, 2),
        "wall_s": round(wall, 2),
        "floor_s": floor,
        "ratio_vs_floor": round(wall / floor, 3) if floor else None,
        "client_429": result.throttled,
        "server_429": world.throttle_stats()["throttled"] - before,
        "every_version_delivered_once": sorted(delivered) == sorted(_keys(feed)),
    }


def bench_idle(world: World, *, pulls: int = 5) -> dict[str, Any]:
    """Pulls with nothing new after the throughput run's pull of the same tenant."""
    from shared.alerts.checkpoints import STREAM_GRAPH, checkpoint_store
    from shared.alerts.graph_source import GraphAlertSource
    from shared.alerts.pull import _graph_api, run_scheduled
    from shared.mda.client import RequestStats
    from shared.settings import get_settings

    world.apply_env(MCAS_TENANT_NAME="graphput")
    requests = []
    delivered = 0
    for _ in range(pulls):
        result = run_scheduled()[0]
        requests.append(result.requests)
        delivered += result.alerts
    profile = get_settings().default_tenant
    cp = checkpoint_store().load(STREAM_GRAPH, "graphput")
    assert cp is not None
    source = GraphAlertSource(
        _graph_api(profile), tenant=profile.name, service_sources=("microsoftDefenderForCloudApps",)
    )
    stats = RequestStats()
    changed = source.probe(cp, stats=stats)
    per_pull = sum(requests) / len(requests)
    return {
        "idle_pulls": pulls,
        "requests_per_idle_pull": per_pull,
        "delivered_while_idle": delivered,
        "requests_per_minute_at_5_min_timer": round(per_pull / 5, 2),
        "probe_requests": stats.requests,
        "probe_says_changed": changed,
        "requests_per_minute_probing_every_minute": stats.requests,
    }


def bench_kill(world: World, workdir: Path, *, trials: int = 20, alerts: int = 2_000) -> dict[str, Any]:
    from localdev.alert_trials import kill_trials

    # 5 Graph requests per second, 100 alerts a page: a 2,000-alert pull takes about 4 s plus start-up.
    world.configure(limit=5, window_s=1, max_top=100)
    env = {
        **world.env,
        "MCAS_RATE_LIMIT_WINDOW_SECONDS": "1",
        "MCAS_GRAPH_RATE_LIMIT_PER_MINUTE": "5",
        "MCAS_ALERTS_LEASE_SECONDS": "3",
    }
    feed = world.seed_feed(alerts)
    world.sim.graph("contoso", "POST", "alerts/change", {"count": 500, "status": "inProgress"})
    feed = world.sim.graph("contoso", "GET", "alerts")["alerts"]
    expected = _keys(feed)
    run = kill_trials(
        env,
        workdir,
        expected_ids=expected,
        trials=trials,
        seed=2026,
        source="graph",
        stream="alerts-graph",
        by_version=True,
        report=lambda result: print(f"  trial {result.trial}: {json.dumps(result.as_dict())}", flush=True),
    )
    duration, results = run.calibrated_run_s, run.results
    return {
        "trials": trials,
        "versions_in_feed": len(expected),
        "calibrated_run_s": round(duration, 2),
        "kills": sum(r.kills for r in results),
        "all_ok": all(r.ok for r in results),
        "versions_lost": sum(r.missing for r in results),
        "duplicates_after_idempotency": sum(r.duplicates_after_idempotency for r in results),
        "max_raw_duplicates_per_kill": max(
            (r.raw_duplicates / r.kills for r in results if r.kills), default=0
        ),
        "monotonic": all(r.monotonic for r in results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["throughput", "idle", "kill"], action="append")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument(
        "--window", type=float, default=60.0, help="window of the Graph budget (compress it to go faster)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    wanted = set(args.only or ["throughput", "idle", "kill"])
    if "idle" in wanted:
        wanted.add("throughput")  # idle pulls continue the throughput run's checkpoint

    def benches(workdir: Path) -> dict[str, Any]:
        with World(workdir, window_s=args.window) as world:
            return run_each(
                wanted,
                {
                    "throughput": lambda: bench_throughput(world),
                    "idle": lambda: bench_idle(world),
                    "kill": lambda: bench_kill(world, workdir, trials=args.trials),
                },
            )

    return run_benches("bench-graph-", args.json, benches)


if __name__ == "__main__":
    sys.exit(main())
