"""`mcasctl simulate`: run the local tenant simulator in the foreground (Ctrl-C stops it).

Every option after `--state-dir` is passed to `python -m localdev.simulator` unchanged (e.g. `--mda-tenants
contoso,fabrikam --rate-limit 30 --seed-alerts 200`); the simulator writes `<state-dir>/simulator.json` when
ready, which is what the tests' and the demo's handles read.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

from shared.errors import McasError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("simulate", help="run the local tenant simulator", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=PROJECT_ROOT / ".local" / "simulator",
        help="where simulator.json goes",
    )
    parser.set_defaults(handler=run, accepts_extra=True)


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("localdev.simulator.__main__") is None:
        raise McasError("the simulator entry point localdev/simulator/__main__.py is not available")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "localdev.simulator", "--state-dir", str(args.state_dir), *args.extra]
    print(f"Simulator state: {args.state_dir / 'simulator.json'}", flush=True)
    # The child shares our process group, so Ctrl-C reaches it too: let it shut down cleanly before we exit.
    child = subprocess.Popen(command, cwd=PROJECT_ROOT)
    try:
        return child.wait()
    except KeyboardInterrupt:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.terminate()
            child.wait(timeout=10)
        raise
