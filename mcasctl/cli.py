"""`mcasctl`: the operator CLI.

Each command group lives in its own module exposing `register(subparsers)`, which adds its parser(s) and
sets `handler=<function(args) -> int>` (and `accepts_extra=True` if it passes unknown arguments through in
`args.extra`). Add a group by appending its module to COMMAND_MODULES.

Expected failures (McasError, including ConfigurationError) exit non-zero with one line on stderr, never a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from shared.errors import McasError

COMMAND_MODULES: tuple[str, ...] = (
    "mcasctl.host_cmd",
    "mcasctl.simulate_cmd",
    "mcasctl.alerts_cmd",
    "mcasctl.discovery_cmd",
    "mcasctl.token_cmd",
    "mcasctl.deadletters_cmd",
)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcasctl", description="Operate the Defender for Cloud Apps Functions app and its local world."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    from shared.logging_setup import configure_logging, remove_console_handler

    root = logging.getLogger()
    saved_level = root.level
    configure_logging(console=True, level=logging.DEBUG if args.verbose else logging.WARNING, fmt="text")
    try:
        return int(handler(args) or 0)
    except McasError as exc:
        print(f"mcasctl {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"mcasctl {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        # main() also runs in-process (tests, embedding): leave logging as it was found.
        remove_console_handler()
        root.setLevel(saved_level)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
