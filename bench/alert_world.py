"""What the alert benchmarks (bench_alerts.py, bench_graph.py) share: a private simulator (tenant `contoso`,
with its MDA and Graph APIs) and a private Azurite, the app settings for a pull against them, the seeding,
and the floor a client obeying "N per rolling window" cannot beat."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DAY_MS = 86_400_000


class AlertWorld:
    """The simulator and Azurite of one benchmark run, and `env`: the app settings of a pull against them."""

    def __init__(
        self, workdir: Path, *, window_s: float, settings: Mapping[str, str], **simulator: Any
    ) -> None:
        from localdev.azurite import AzuriteHandle
        from localdev.simulator.client import start_simulator

        self.window_s = window_s
        self.azurite = AzuriteHandle()
        self.azurite.start()
        self.sim_proc = start_simulator(workdir / "sim", mda_tenants=["contoso"], **simulator)
        self.sim = self.sim_proc.handle
        self.env = {
            **os.environ,
            **self.sim.app_env("contoso"),
            "AzureWebJobsStorage": self.azurite.connection_string,
            "REQUESTS_CA_BUNDLE": self.sim.bundle_file,
            "MCAS_RATE_LIMIT_WINDOW_SECONDS": str(window_s),
            "MCAS_ALERTS_SETTLE_SECONDS": "0",
            "MCAS_ALERTS_MAX_PAGES_PER_RUN": "100000",
            "MCAS_ALERTS_TIME_BUDGET_SECONDS": "900",
            "MCAS_ALERTS_LEASE_SECONDS": "10",
            "MCAS_FIRST_FETCH_LOOKBACK": "30d",
            "MCAS_ALERT_SINKS": "blob",
            "PYTHONPATH": str(ROOT),
            **settings,
        }
        os.environ["REQUESTS_CA_BUNDLE"] = self.sim.bundle_file  # this process's own calls trust it too

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def seed(self, count: int) -> None:
        """`count` alerts over the last two days (30% in bursts), the same every run."""
        now = int(time.time() * 1000)
        self.sim.mda(
            "contoso",
            "POST",
            "alerts/seed",
            {
                "count": count,
                "seed": 4,
                "start_ms": now - 2 * DAY_MS,
                "end_ms": now - 2000,
                "burst_share": 0.3,
            },
        )

    def apply_env(self, **extra: str) -> None:
        """This process's environment becomes the pull's settings (plus `extra`); caches are dropped."""
        from shared.caches import reset_all_caches

        os.environ.clear()
        os.environ.update({**self.env, **extra})
        reset_all_caches()

    def close(self) -> None:
        self.sim_proc.stop()
        self.azurite.stop()


def floor_s(requests: int, limit: int, window_s: float) -> float:
    """The least time `requests` requests take under `limit` per rolling `window_s`: request R cannot start
    before floor((R-1)/limit) windows have passed."""
    return ((requests - 1) // limit) * window_s


def run_each(wanted: set[str], benches: Mapping[str, Callable[[], Mapping[str, Any]]]) -> dict[str, Any]:
    """The report of each wanted bench, in order, each printed as soon as it is done."""
    report: dict[str, Any] = {}
    for name, bench in benches.items():
        if name in wanted:
            report[name] = bench()
            print(f"{name}:", json.dumps(report[name]), flush=True)
    return report


def run_benches(prefix: str, json_out: Path | None, benches: Callable[[Path], Mapping[str, Any]]) -> int:
    """`benches(workdir)`'s report, printed (and written to `json_out`); the process environment the
    benches change (`AlertWorld.apply_env`) is restored afterwards."""
    saved_env = dict(os.environ)
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            report = dict(benches(Path(tmp)))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    if json_out:
        json_out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0
