"""`mcasctl host`: run function_app.app on the local host (HTTP, queue triggers over Azurite, timers).

  mcasctl host                      serve until Ctrl-C (HTTP on 127.0.0.1, queues, timers on schedule)
  mcasctl host --azurite            the same with a private in-memory Azurite as AzureWebJobsStorage
  mcasctl host --run-timer NAME     run one timer now (printing what it did), process the queue
                                    messages it caused, exit (e.g. --run-timer alerts_pull_timer)
  mcasctl host --once               process the queued messages (retries and poisoning included), exit

App settings come from the environment, then local.settings.json `Values` for names not already set (like
`func start`). Event Grid is not emulated: to have the discovery function upload a log, use
`mcasctl discovery drop FILE --source SOURCE --stream NAME` (it stores the blob and queues the BlobCreated
event as the subscription would).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from mcasctl.settings_file import load_local_settings
from mcasctl.subcommand import add_documented
from shared.errors import ConfigurationError, McasError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def register(subparsers: Any) -> None:
    parser = add_documented(
        subparsers, "host", help_text="run the Functions app on the local host", doc=__doc__
    )
    parser.add_argument("--port", type=int, default=7071, help="HTTP port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--once", action="store_true", help="drain the trigger queues, then exit")
    parser.add_argument(
        "--run-timer", metavar="NAME", action="append", default=[], help="run a timer now, then exit"
    )
    parser.add_argument("--host-json", type=Path, default=PROJECT_ROOT / "host.json")
    parser.add_argument("--settings-file", type=Path, default=PROJECT_ROOT / "local.settings.json")
    parser.add_argument(
        "--azurite", action="store_true", help="start a private Azurite for AzureWebJobsStorage"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=60.0, help="seconds to wait for queues to empty"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from localdev.azurite import AzuriteHandle
    from localdev.host import LocalHost

    for name, value in load_local_settings(args.settings_file).items():
        os.environ.setdefault(name, value)
    with ExitStack() as stack:
        if args.azurite:
            azurite = stack.enter_context(AzuriteHandle())
            os.environ["AzureWebJobsStorage"] = azurite.connection_string  # noqa: SIM112 - the host's name
            ports = azurite.ports
            print(f"Azurite: blob {ports.blob}, queue {ports.queue}, table {ports.table}")
        app = _load_app()
        host = LocalHost(app, host_json=args.host_json, port=args.port)
        print("Functions:")
        for line in host.summary():
            print(f"  {line}")
        if args.run_timer or args.once:
            return _one_shot(host, args)
        stack.enter_context(host)  # starts HTTP, queue polling and timers; stops them on the way out
        if any(spec.kind == "http" for spec in host.functions.values()):
            if host.key_generated:
                print(f"Function key (generated; set {_key_setting()} to keep one): {host.function_key}")
            print(f"Listening on {host.api_url}/ - Ctrl-C to stop")
        else:
            print("No HTTP functions; polling queues and running timers - Ctrl-C to stop")
        sys.stdout.flush()
        _wait_for_ctrl_c_or_sigterm()
    return 0


def _one_shot(host: Any, args: argparse.Namespace) -> int:
    try:
        for name in args.run_timer:
            with _app_log_lines() as lines:
                try:
                    host.run_timer(name)
                except ConfigurationError:
                    raise
                except Exception as exc:
                    for line in lines:
                        print(f"timer {name}: {line}")
                    raise McasError(f"timer {name} failed: {' '.join(str(exc).split())}") from exc
            for line in lines:
                print(f"timer {name}: {line}")
            print(f"timer {name}: ran")
        if any(spec.kind == "queue" for spec in host.functions.values()):
            stats = host.drain_queues(timeout=args.drain_timeout)
            print(f"queues: {stats.succeeded} succeeded, {stats.failed} failed, {stats.poisoned} poisoned")
    except TimeoutError as exc:
        raise ConfigurationError("--drain-timeout", f"was too short: {exc}") from None
    finally:
        host.stop()
    return 0


@contextmanager
def _app_log_lines() -> Iterator[list[str]]:
    """What the app logs while a timer runs (its own INFO lines, anyone's warnings), as plain lines."""

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            own = record.name.startswith(("shared", "functions"))
            if own or record.levelno >= logging.WARNING:
                level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
                self.lines.append(level + " ".join(record.getMessage().split()))

    handler = Collect()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("shared", "functions")}
    for name in saved:
        logging.getLogger(name).setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _wait_for_ctrl_c_or_sigterm() -> None:
    """Block until SIGTERM (clean return) or Ctrl-C (KeyboardInterrupt, handled by the CLI)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    stop.wait()


def _key_setting() -> str:
    from localdev.host import FUNCTION_KEY_SETTING

    return FUNCTION_KEY_SETTING


def _load_app() -> Any:
    """Import function_app from the project root (where `func start` would find it)."""
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    import function_app

    return function_app.app
