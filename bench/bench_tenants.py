"""Many tenants: the fan-out cycle and alert-to-sink latency, on the local host against a private simulator
(hundreds of MDA tenants, each its own port, budget, alerts and faults) and a private Azurite.

    .venv/bin/python bench/bench_tenants.py cycle                  # 500 tenants x 1,000 alerts, 1/2/4 workers
    .venv/bin/python bench/bench_tenants.py cycle --failures       # ... plus a run with 5 failing tenants
    .venv/bin/python bench/bench_tenants.py cycle --tenants 50 --alerts 300 --workers 1,2
    .venv/bin/python bench/bench_tenants.py latency --minutes 30   # alert-to-sink latency, real time
    add --json FILE to keep the figures

cycle: the timer (in this process) queues one message per tenant; N `mcasctl host --once` worker processes
(batchSize 8 each) drain the queue. Per run: cycle wall time (timer to last delivery); the baseline measured
in the same run is one tenant pulled alone (the busiest tenant's floor: no run can finish before its slowest
tenant, whose request count also sets the rate-limit floor ((R-1) // 30) x 60 s); per-tenant lag (timer to
that tenant's last delivery) p50/p95; requests per tenant; 429s; alerts delivered per tenant (from the health
rows; five tenants are checked id by id against the simulator). Azurite is fresh per run; the simulator's
throttle windows are reset between runs.

latency: `mcasctl host` serving (timer every minute, queues polled as host.json says) while alerts arrive
at random (Poisson) in half of the tenants for `--minutes` of real time - no time compression: the timer
slot, the settle window (60 s) and the queue polling all run at production speed. Latency = the moment the
alert's blob appears (polled every second) minus the alert's creation time. Requests per idle tenant per
minute come from the simulator's own counters for the tenants that got no alert.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WINDOW_S = 60.0
LIMIT = 30
HOST_JSON = {
    "version": "2.0",
    "functionTimeout": "00:10:00",
    "extensions": {
        "queues": {
            "batchSize": 8,
            "maxDequeueCount": 5,
            "visibilityTimeout": "00:00:30",
            "maxPollingInterval": "00:00:10",
            "messageEncoding": "base64",
        }
    },
}


def names(count: int) -> list[str]:
    width = max(3, len(str(count)))
    return [f"t{i:0{width}d}" for i in range(1, count + 1)]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Bench:
    """One simulator for the whole benchmark; a fresh Azurite and tenant-name prefix per run."""

    def __init__(self, workdir: Path, tenants: list[str], alerts: int) -> None:
        from localdev.simulator.client import start_simulator

        self.workdir, self.tenants, self.alerts = workdir, tenants, alerts
        self.sim_proc = start_simulator(
            workdir / "sim",
            mda_tenants=tenants,
            rate_limit=LIMIT,
            rate_window=WINDOW_S,
            seed_alerts=alerts,
            timeout=120,
        )
        self.sim = self.sim_proc.handle
        self.host_json = workdir / "host.json"
        self.host_json.write_text(json.dumps(HOST_JSON))
        self.azurite: Any = None
        self.env: dict[str, str] = {}

    def warm(self) -> float:
        """Seed every tenant now (the simulator seeds lazily), so runs compare like with like."""
        started = time.monotonic()
        for tenant in self.tenants:
            self.sim.mda(tenant, "GET", "state")
        return time.monotonic() - started

    def fresh_storage(self) -> None:
        from localdev.azurite import AzuriteHandle

        if self.azurite is not None:
            self.azurite.stop()
        self.azurite = AzuriteHandle()
        self.azurite.start()

    def configure(self, prefix: str, **extra: str) -> None:
        from shared.caches import reset_all_caches

        first = self.tenants[0]
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MCAS_", "AzureWebJobsStorage"))},
            **self.sim.app_env(first),
            "AzureWebJobsStorage": self.azurite.connection_string,
            "MCAS_TENANT_NAME": f"{prefix}-{first}",
            "MCAS_ALERT_SINKS": "blob",
            "MCAS_ALERTS_SETTLE_SECONDS": "0",
            "MCAS_FIRST_FETCH_LOOKBACK": "30d",
            "MCAS_ALERTS_SCHEDULE": "0 * * * * *",
            "MCAS_ALERTS_FANOUT": "true",
            "MCAS_LOG_FORMAT": "text",
            "MCAS_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            **extra,
        }
        os.environ.clear()
        os.environ.update(self.env)
        reset_all_caches()

    def register(self, prefix: str, overrides: dict[str, dict[str, str]] | None = None) -> None:
        from shared.tenants.registry import registry

        reg = registry()
        for tenant in self.tenants[1:]:
            reg.add(
                f"{prefix}-{tenant}",
                {"api_url": self.sim.api_url(tenant), **(overrides or {}).get(tenant, {})},
            )

    def reset_throttles(self) -> None:
        for tenant in self.tenants:
            self.sim.mda(tenant, "POST", "throttle/reset")

    def throttled(self) -> int:
        return sum(int(self.sim.mda(t, "GET", "throttle/stats")["throttled"]) for t in self.tenants)

    def allowed(self) -> dict[str, int]:
        return {t: int(self.sim.mda(t, "GET", "throttle/stats")["allowed"]) for t in self.tenants}

    def worker(self) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable,
            "-m",
            "mcasctl.cli",
            "host",
            "--once",
            "--drain-timeout",
            "3600",
            "--host-json",
            str(self.host_json),
            "--settings-file",
            str(self.workdir / "none.json"),
        ]
        log = (self.workdir / f"worker-{time.monotonic_ns()}.log").open("wb")
        return subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def close(self) -> None:
        if self.azurite is not None:
            self.azurite.stop()
        self.sim_proc.stop()


def health_rows() -> list[dict[str, Any]]:
    from shared.storage import TABLE_HEALTH, table_client

    return list(table_client(TABLE_HEALTH).list_entities())


def _epoch(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_cycle(
    bench: Bench, *, workers: int, tenants: list[str], label: str, failing: dict[str, Any]
) -> dict[str, Any]:
    from shared.alerts.fanout import FanoutState, queue_sender, schedule_due
    from shared.storage import TABLE_FANOUT, table_client
    from shared.tenants.registry import all_targets

    prefix = f"{label}{random.randrange(10**6):06d}"
    bench.fresh_storage()
    bench.configure(prefix)
    overrides: dict[str, dict[str, str]] = {}
    bench.sim.clear_faults()
    for tenant, how in failing.items():
        if "registry" in how:
            overrides[tenant] = how["registry"]
        if "fault" in how:
            bench.sim.add_fault(service="mda", tenant=tenant, **how["fault"])
    sub = Bench.__new__(Bench)
    sub.__dict__.update(bench.__dict__)
    sub.tenants = tenants
    sub.register(prefix, overrides)
    bench.reset_throttles()
    throttled_before = bench.throttled()

    started = time.time()
    scheduled = schedule_due(
        all_targets(), state=FanoutState(table_client(TABLE_FANOUT)), send=queue_sender(), now=started
    )
    procs = [bench.worker() for _ in range(workers)]
    for proc in procs:
        proc.wait()
    wall = time.time() - started

    rows = [r for r in health_rows() if str(r["PartitionKey"]).startswith(f"alerts.{prefix}-")]
    per: dict[str, dict[str, Any]] = {}
    for row in rows:
        tenant = str(row["PartitionKey"]).removeprefix(f"alerts.{prefix}-")
        item = per.setdefault(
            tenant, {"alerts": 0, "requests": 0, "throttled": 0, "end": 0.0, "errors": 0, "busy_s": 0.0}
        )
        item["busy_s"] += float(row["duration_s"])
        item["alerts"] += int(row["alerts_delivered"])
        item["requests"] += int(row["requests"])
        item["throttled"] += int(row["throttled_429"])
        item["end"] = max(item["end"], _epoch(str(row["end"])))
        item["errors"] += 1 if row["error"] else 0
    healthy = [t for t in tenants if t not in failing]
    lags = [per[t]["end"] - started for t in healthy if t in per]
    requests = [per[t]["requests"] for t in healthy if t in per]
    complete = sum(1 for t in healthy if per.get(t, {}).get("alerts") == bench.alerts)
    busiest = max(requests) if requests else 0
    result = {
        "label": label,
        "workers": workers,
        "tenants": len(tenants),
        "queued": len(scheduled.enqueued),
        "wall_s": round(wall, 1),
        "healthy_complete": complete,
        "healthy": len(healthy),
        "lag_p50_s": round(pct(lags, 0.5), 1),
        "lag_p95_s": round(pct(lags, 0.95), 1),
        "lag_max_s": round(max(lags), 1) if lags else None,
        "requests_per_tenant_mean": round(statistics.mean(requests), 2) if requests else None,
        "requests_per_tenant_max": busiest,
        "pull_seconds_per_tenant_mean": round(
            statistics.mean(per[t]["busy_s"] for t in healthy if t in per), 3
        )
        if per
        else None,
        "rate_limit_floor_s": ((busiest - 1) // LIMIT) * WINDOW_S if busiest else 0.0,
        "throttled_429_client": sum(v["throttled"] for v in per.values()),
        "throttled_429_server": bench.throttled() - throttled_before,
        "failing": {
            t: {"errors": per.get(t, {}).get("errors", 0), "alerts": per.get(t, {}).get("alerts", 0)}
            for t in failing
        },
        "id_check": id_check(bench, prefix, healthy[:5]),
    }
    if failing:
        result["dead_letters"] = dead_letter_sources(prefix)
    return result


def id_check(bench: Bench, prefix: str, tenants: list[str]) -> str:
    from shared.storage import CONTAINER_ALERTS, container_client

    container = container_client(CONTAINER_ALERTS)
    for tenant in tenants:
        ids: list[str] = []
        for blob in container.list_blobs(name_starts_with=f"{prefix}-{tenant}/"):
            ids += [
                json.loads(x)["id"]
                for x in container.download_blob(blob.name).readall().decode().splitlines()
            ]
        expected = sorted(a["_id"] for a in bench.sim.mda(tenant, "GET", "alerts")["alerts"])
        if sorted(ids) != expected:
            distinct = len(set(ids))
            return f"MISMATCH {tenant}: {len(ids)} delivered ({distinct} distinct), {len(expected)} expected"
    return f"exact for {len(tenants)} tenants (no loss, no duplicate)"


def dead_letter_sources(prefix: str) -> dict[str, list[str]]:
    from shared.deadletters import list_letters

    found: dict[str, list[str]] = {}
    for letter in list_letters():
        tenant = str(json.loads(letter.body).get("tenant", ""))
        if tenant.startswith(f"{prefix}-"):
            found.setdefault(tenant.removeprefix(f"{prefix}-"), []).append(
                f"{letter.source}: {letter.reason[:90]}"
            )
    return found


def cycle(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    tenants = names(args.tenants)
    bench = Bench(workdir, tenants, args.alerts)
    out: dict[str, Any] = {"tenants": args.tenants, "alerts_per_tenant": args.alerts, "runs": []}
    try:
        out["seed_s"] = round(bench.warm(), 1)
        print(f"simulator: {len(tenants)} tenants seeded with {args.alerts} alerts each in {out['seed_s']} s")
        solo = run_cycle(bench, workers=1, tenants=tenants[:1], label="solo", failing={})
        out["solo"] = solo
        print(f"baseline (one tenant alone): {solo['wall_s']} s, {solo['requests_per_tenant_max']} requests")
        for workers in [] if args.only_failures else args.workers:
            time.sleep(0 if workers == args.workers[0] else 5)
            result = run_cycle(bench, workers=workers, tenants=tenants, label=f"w{workers}-", failing={})
            out["runs"].append(result)
            print(json.dumps(result))
        if args.failures or args.only_failures:
            bad = tenants[1:6]
            failing = {
                bad[0]: {"fault": {"error_rate": 1.0, "status": 503, "retry_after": 0}},
                bad[1]: {"fault": {"reset_rate": 1.0}},
                bad[2]: {"fault": {"body": "truncated"}},
                bad[3]: {
                    "registry": {
                        "client_id": bench.sim.client_id("webhook_api"),
                        "client_secret_name": "webhook-api-client-secret",
                    }
                },
                bad[4]: {"registry": {"client_secret_name": "no-such-secret"}},
            }
            result = run_cycle(
                bench, workers=max(args.workers), tenants=tenants, label="fail-", failing=failing
            )
            result["failure_kinds"] = dict(
                zip(
                    bad,
                    [
                        "5xx storm",
                        "connection resets",
                        "truncated JSON",
                        "403 (no MDA role)",
                        "missing Key Vault secret",
                    ],
                    strict=True,
                )
            )
            out["failure_run"] = result
            print(json.dumps(result))
    finally:
        bench.close()
    base = next((r for r in out["runs"] if r["workers"] == min(args.workers)), None)
    for run in out["runs"]:
        if base:
            run["speedup_vs_fewest_workers"] = round(base["wall_s"] / run["wall_s"], 2)
        run["wall_vs_solo_floor"] = round(run["wall_s"] / max(0.001, out["solo"]["wall_s"]), 1)
    return out


def latency(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from shared.storage import CONTAINER_ALERTS, container_client

    tenants = names(args.tenants)
    bench = Bench(workdir, tenants, 0)
    rng = random.Random(7)
    active = tenants[: len(tenants) // 2]
    idle = tenants[len(tenants) // 2 :]
    added: dict[str, float] = {}
    seen: dict[str, float] = {}
    durations: dict[str, list[float]] = {}
    start_counts: dict[str, int] = {}
    end_counts: dict[str, int] = {}
    minutes = 0.0
    stop = threading.Event()
    host: subprocess.Popen[bytes] | None = None
    try:
        bench.fresh_storage()
        bench.configure("lat", MCAS_ALERTS_SETTLE_SECONDS="60", MCAS_FIRST_FETCH_LOOKBACK="1m")
        bench.register("lat")
        bench.reset_throttles()
        cmd = [
            sys.executable,
            "-m",
            "mcasctl.cli",
            "host",
            "--port",
            "0",
            "--host-json",
            str(bench.host_json),
            "--settings-file",
            str(workdir / "none.json"),
        ]
        host = subprocess.Popen(
            cmd, env=bench.env, cwd=ROOT, stdout=(workdir / "host.log").open("wb"), stderr=subprocess.STDOUT
        )
        container = container_client(CONTAINER_ALERTS)

        def poll() -> None:
            known: set[str] = set()
            while not stop.is_set():
                try:
                    for blob in container.list_blobs():
                        if blob.name in known:
                            continue
                        known.add(blob.name)
                        now = time.time()
                        for line in container.download_blob(blob.name).readall().decode().splitlines():
                            seen.setdefault(json.loads(line)["id"], now)
                except Exception as exc:  # the container appears with the first delivery
                    if "ContainerNotFound" not in str(exc):
                        print(f"poll: {exc}", file=sys.stderr)
                stop.wait(1.0)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        time.sleep(75)  # the first slot: every tenant's first (checkpoint-less) pull
        start_counts = bench.allowed()
        started = time.time()
        end = started + args.minutes * 60
        # Poisson arrivals: each active tenant sees an alert every `mean_gap` seconds on average.
        events = []
        for tenant in active:
            t = started + rng.expovariate(1 / args.mean_gap)
            while t < end:
                events.append((t, tenant))
                t += rng.expovariate(1 / args.mean_gap)
        events.sort()
        for when, tenant in events:
            time.sleep(max(0.0, when - time.time()))
            answer = bench.sim.mda(tenant, "POST", "alerts/add", {"count": 1})
            for alert_id in answer["ids"]:
                added[alert_id] = answer["timestamp"] / 1000
        time.sleep(max(0.0, end - time.time()))
        minutes = (time.time() - started) / 60
        end_counts = bench.allowed()
        drain_until = time.time() + 180
        while time.time() < drain_until and not set(added) <= set(seen):
            time.sleep(2)
        rows = [r for r in health_rows() if float(_epoch(str(r["start"]))) >= started]
        durations = {
            kind: [
                float(r["duration_s"])
                for r in rows
                if (r["stopped"] in ("idle", "deferred")) == (kind == "probe")
            ]
            for kind in ("probe", "pull")
        }
    finally:
        stop.set()
        if host is not None:
            host.terminate()
            try:
                host.wait(timeout=30)
            except subprocess.TimeoutExpired:
                host.kill()
        bench.close()
    lat = [seen[i] - ts for i, ts in added.items() if i in seen]
    idle_rate = [(end_counts[t] - start_counts[t]) / minutes for t in idle]
    active_rate = [(end_counts[t] - start_counts[t]) / minutes for t in active]
    return {
        "tenants": len(tenants),
        "active_tenants": len(active),
        "minutes": round(minutes, 1),
        "mean_gap_s": args.mean_gap,
        "alerts_added": len(added),
        "alerts_delivered": len(set(added) & set(seen)),
        "latency_p50_s": round(pct(lat, 0.5), 1),
        "latency_p95_s": round(pct(lat, 0.95), 1),
        "latency_max_s": round(max(lat), 1) if lat else None,
        "requests_per_idle_tenant_per_min": round(statistics.mean(idle_rate), 3) if idle_rate else None,
        "requests_per_idle_tenant_per_min_max": round(max(idle_rate), 3) if idle_rate else None,
        "requests_per_active_tenant_per_min": round(statistics.mean(active_rate), 3) if active_rate else None,
        "runs": {kind: len(values) for kind, values in durations.items()},
        "run_seconds_mean": {k: round(statistics.mean(v), 3) for k, v in durations.items() if v},
        "run_seconds_p95": {k: round(pct(v, 0.95), 3) for k, v in durations.items() if v},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=["cycle", "latency"])
    parser.add_argument("--tenants", type=int)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--failures", action="store_true", help="also a run with 5 failing tenants")
    parser.add_argument("--only-failures", action="store_true", help="only the run with 5 failing tenants")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--mean-gap", type=float, default=600.0, help="latency: mean seconds between alerts")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.workers = [int(w) for w in str(args.workers).split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-tenants-") as tmp:
        if args.scenario == "cycle":
            args.tenants = args.tenants or 500
            result = cycle(args, Path(tmp))
        else:
            args.tenants = args.tenants or 100
            result = latency(args, Path(tmp))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
