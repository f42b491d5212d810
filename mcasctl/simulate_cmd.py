"""`mcasctl simulate`: run the local tenant simulator in the foreground (Ctrl-C stops it), and say how to use
it.

  mcasctl simulate                                 start it; print the environment for mcasctl and the host
  mcasctl simulate --env-file local.settings.json  also write that environment (a .json file gets the
                                                   local.settings.json shape, other names NAME=value lines)
  mcasctl simulate --azurite                       also start a private Azurite (AzureWebJobsStorage)

Once it is up, in another shell: `export` the printed lines (or pass `--settings-file` to mcasctl), then e.g.
`mcasctl token`, `mcasctl alerts pull --out alerts.ndjson`, `mcasctl host --run-timer alerts_pull_timer`.
Each MDA tenant starts with 200 seeded alerts (`--seed-alerts N` changes it). Every other option is passed
to `python -m localdev.simulator` unchanged (e.g. `--mda-tenants contoso,fabrikam --rate-limit 30`); the
simulator writes `<state-dir>/simulator.json` when ready, which the tests' and the demo's handles read.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

from mcasctl.subcommand import add_documented
from shared.errors import McasError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEED_ALERTS = "200"
STARTUP_TIMEOUT_S = 60.0


def register(subparsers: Any) -> None:
    parser = add_documented(subparsers, "simulate", help_text="run the local tenant simulator", doc=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=PROJECT_ROOT / ".local" / "simulator",
        help="where simulator.json goes",
    )
    parser.add_argument(
        "--env-file", type=Path, metavar="FILE", help="write the environment (FILE.json: local.settings.json)"
    )
    parser.add_argument("--azurite", action="store_true", help="also run a private Azurite for storage")
    parser.set_defaults(handler=run, accepts_extra=True)


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("localdev.simulator.__main__") is None:
        raise McasError("the simulator entry point localdev/simulator/__main__.py is not available")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    extra = list(args.extra)
    if not any(a == "--seed-alerts" or a.startswith("--seed-alerts=") for a in extra):
        extra += ["--seed-alerts", DEFAULT_SEED_ALERTS]
    if not any(a == "--parent-pid" or a.startswith("--parent-pid=") for a in extra):
        extra += ["--parent-pid", str(os.getpid())]  # never outlive this command
    state_file = args.state_dir / "simulator.json"
    state_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "localdev.simulator", "--state-dir", str(args.state_dir), *extra]
    print(f"Simulator state: {state_file}", flush=True)
    with ExitStack() as stack:
        child = subprocess.Popen(command, cwd=PROJECT_ROOT)
        stack.callback(_terminate, child)  # on any way out; a no-op once it has exited
        try:
            env = _environment(args, child, state_file, stack)
            _announce(env, args.env_file)
            return child.wait()
        except KeyboardInterrupt:
            # The child shares our process group, so Ctrl-C reached it too: let it shut down cleanly.
            with suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)
            raise


def _environment(
    args: argparse.Namespace, child: subprocess.Popen[bytes], state_file: Path, stack: ExitStack
) -> dict[str, str]:
    from localdev.simulator.client import SimulatorHandle

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if child.poll() is not None:
            raise McasError(f"the simulator exited with status {child.returncode} before it was ready")
        info = _read_state(state_file)
        if info is not None and info.get("pid") == child.pid:
            break
        if time.monotonic() > deadline:
            raise McasError(f"the simulator did not write {state_file} within {STARTUP_TIMEOUT_S:.0f} s")
        time.sleep(0.2)  # polling a file the child writes once ready
    handle = SimulatorHandle(info, args.state_dir)
    tenant = sorted(info.get("mda_tenants", {"contoso": {}}))[0]
    env = handle.app_env(tenant)
    env["MCAS_ALERTS_SCHEDULE"] = "0 */5 * * * *"  # the timer binding reads it as %MCAS_ALERTS_SCHEDULE%
    if args.azurite:
        from localdev.azurite import AzuriteHandle

        azurite = stack.enter_context(AzuriteHandle())
        env["AzureWebJobsStorage"] = azurite.connection_string
        env["MCAS_ALERT_SINKS"] = "queue,blob"
    return env


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _announce(env: dict[str, str], env_file: Path | None) -> None:
    print("Environment for mcasctl and `mcasctl host` (paste into another shell):")
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    if "AzureWebJobsStorage" not in env:
        print("# no storage: use `mcasctl alerts pull --out FILE`, or restart with --azurite for the host")
    if env_file is not None:
        if env_file.suffix == ".json":
            text = json.dumps({"IsEncrypted": False, "Values": env}, indent=2) + "\n"
        else:
            text = "".join(f"{name}={value}\n" for name, value in env.items())
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"Written to {env_file}")
    print("Ctrl-C stops the simulator.", flush=True)


def _terminate(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        child.wait(timeout=10)
