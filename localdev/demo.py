"""`python -m localdev.demo` (`make demo`): run the app end to end in the local world and print what happened.

Starts the tenant simulator and Azurite in a temporary directory, points the app settings at them, runs
function_app.app on the in-process LocalHost, executes the demo steps in order and stops everything.

Adding a step (alerts, discovery, ...): write `def step_x(ctx: DemoContext) -> str` returning a short summary
(one line; further lines are printed indented below it). It may call `ctx.host.run_timer(...)`,
`ctx.host.drain_queues()`, `ctx.get(...)` or the simulator's admin API (`ctx.simulator.mda(...)`).
Then append `("title", step_x)` to STEPS. A step that raises fails the demo with a one-line reason.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from localdev.azurite import AzuriteHandle
from localdev.demo_alerts import step_alerts
from localdev.demo_discovery import step_discovery
from localdev.demo_graph import step_graph
from localdev.demo_jobs import step_soar_job
from localdev.demo_logs import step_logs
from localdev.host import LocalHost
from shared.caches import reset_all_caches
from shared.errors import McasError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class DemoContext:
    """What a step can use: the running pieces and the app settings they were started with."""

    simulator: Any  # a SimulatorHandle or the SimulatorProcess that forwards to one
    azurite: AzuriteHandle
    host: LocalHost
    env: Mapping[str, str]
    workdir: Path
    http: requests.Session = field(default_factory=requests.Session)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET a route of the local host (`path` below /api), with the function key."""
        headers = {"x-functions-key": self.host.function_key, **kwargs.pop("headers", {})}
        return self.http.get(f"{self.host.api_url}/{path.lstrip('/')}", headers=headers, timeout=30, **kwargs)


DemoStep = Callable[[DemoContext], str]


# -- steps ------------------------------------------------------------------------------------------------
def step_local_world(ctx: DemoContext) -> str:
    ports = ctx.azurite.ports
    return (
        f"simulator {ctx.env['MCAS_AUTHORITY_HOST']} (MDA tenant API {ctx.env['MCAS_API_URL']})\n"
        f"Azurite blob {ports.blob}, queue {ports.queue}, table {ports.table}\n"
        f"local host {ctx.host.api_url}"
    )


def step_function_index(ctx: DemoContext) -> str:
    specs = list(ctx.host.functions.values())
    kinds = sorted({spec.kind for spec in specs})
    counts = ", ".join(f"{sum(spec.kind == kind for spec in specs)} {kind}" for kind in kinds)
    return "\n".join([f"{len(specs)} indexed ({counts})", *(spec.summary() for spec in specs)])


def step_ping(ctx: DemoContext) -> str:
    response = ctx.get("ping")
    if response.status_code != 200:
        raise McasError(f"GET /api/ping answered {response.status_code}")
    body = response.json()
    return f"GET /api/ping -> {response.status_code} status={body['status']} version={body['version']}"


STEPS: list[tuple[str, DemoStep]] = [
    ("local world", step_local_world),
    ("functions", step_function_index),
    ("ping", step_ping),
    ("alert pull", step_alerts),
    ("discovery upload", step_discovery),
    ("SOAR job", step_soar_job),
    ("Sentinel (logs sink)", step_logs),
    ("Graph pull + sync", step_graph),
]


# -- running ----------------------------------------------------------------------------------------------
@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """The app reads its settings from os.environ, as in Azure; restored afterwards (tests run in-process)."""
    saved = dict(os.environ)
    os.environ.update(values)
    reset_all_caches()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_all_caches()


@contextmanager
def demo_context(simulator: Any, azurite: AzuriteHandle, workdir: Path) -> Iterator[DemoContext]:
    """Run function_app.app on a LocalHost against an already running simulator and Azurite."""
    env = {**simulator.app_env(), "AzureWebJobsStorage": azurite.connection_string}
    with patched_environ(env), ExitStack() as stack:
        if str(PROJECT_ROOT) not in sys.path:
            sys.path.insert(0, str(PROJECT_ROOT))
        import function_app

        host = LocalHost(function_app.app, host_json=PROJECT_ROOT / "host.json", port=0)
        # Steps drive timers and queues explicitly, so the run is deterministic.
        host.start(queues=False, timers=False)
        stack.callback(host.stop)
        ctx = DemoContext(simulator=simulator, azurite=azurite, host=host, env=env, workdir=workdir)
        ctx.http.trust_env = False  # loopback calls: no proxies from the environment
        stack.callback(ctx.http.close)
        yield ctx


def run_steps(
    ctx: DemoContext, steps: list[tuple[str, DemoStep]], out: Callable[[str], None] = print
) -> bool:
    width = max(len(title) for title, _ in steps)
    for title, step in steps:
        try:
            line = step(ctx)
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            out(f"  {title:<{width}}  FAILED: {type(exc).__name__}: {reason}")
            return False
        first, *more = line.splitlines() or [""]
        out(f"  {title:<{width}}  {first}")
        for extra in more:
            out(f"  {'':<{width}}    {extra}")
    return True


def main(steps: list[tuple[str, DemoStep]] | None = None) -> int:
    from localdev.simulator.client import SimulatorError, start_simulator

    started = time.monotonic()
    print("Defender for Cloud Apps Functions app - local demo (simulator + Azurite + local host)")
    with tempfile.TemporaryDirectory(prefix="mcas-demo-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        try:
            simulator = start_simulator(workdir / "simulator")
            stack.callback(simulator.stop)
            azurite = stack.enter_context(AzuriteHandle(extent_memory_limit_mb=256))
            ctx = stack.enter_context(demo_context(simulator, azurite, workdir))
        except (McasError, SimulatorError) as exc:
            print(f"demo: cannot start the local world: {exc}", file=sys.stderr)
            return 1
        ok = run_steps(ctx, STEPS if steps is None else steps)
    verdict = "done" if ok else "FAILED"
    print(f"Demo {verdict} in {time.monotonic() - started:.1f} s; simulator, Azurite and host stopped.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
