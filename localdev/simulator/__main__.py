"""`python -m localdev.simulator --state-dir DIR [...]`: run the local tenant simulator until SIGTERM/SIGINT.

Prints nothing on success (readiness is the atomic appearance of DIR/simulator.json); errors go to stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from localdev.simulator.server import Simulator
from localdev.simulator.world import WorldOptions


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m localdev.simulator", description=__doc__)
    p.add_argument("--state-dir", required=True, type=Path, help="where simulator.json (and the PKI) go")
    p.add_argument(
        "--mda-tenants", default="contoso", help="comma-separated MDA tenant names (one port each)"
    )
    p.add_argument("--rate-limit", type=int, default=30, help="MDA requests per window per tenant")
    p.add_argument("--rate-window", type=float, default=60.0, help="MDA throttle window in seconds")
    p.add_argument("--token-lifetime", type=int, default=3599, help="access token lifetime in seconds")
    p.add_argument("--seed-alerts", type=int, default=0, help="alerts generated per MDA tenant at start")
    p.add_argument("--device-code-interval", type=int, default=5, help="device flow polling interval (s)")
    p.add_argument("--device-code-lifetime", type=int, default=900, help="device code lifetime (s)")
    p.add_argument("--pki-dir", type=Path, help="reuse (or create) the test CA here; default STATE_DIR/pki")
    p.add_argument("--parent-pid", type=int, help="exit when this process is gone (test harness safety net)")
    p.add_argument("--verbose", action="store_true", help="log every request (paths only) to stderr")
    return p


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tenants = [t.strip() for t in args.mda_tenants.split(",") if t.strip()]
    options = WorldOptions(
        token_lifetime=args.token_lifetime,
        device_code_interval=args.device_code_interval,
        device_code_lifetime=args.device_code_lifetime,
        mda_tenants=tenants,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        seed_alerts=args.seed_alerts,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    simulator = Simulator(args.state_dir, options, pki_dir=args.pki_dir, verbose=args.verbose)
    simulator.start()
    try:
        while not stop.wait(0.5):
            if args.parent_pid and not _pid_alive(args.parent_pid):
                break
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
