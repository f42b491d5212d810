"""`mcasctl`: the operator CLI.

Each command group lives in its own module exposing `register(subparsers)`, which adds its parser(s) and
sets `handler=<function(args) -> int>` (and `accepts_extra=True` if it passes unknown arguments through in
`args.extra`). Add a group by appending its module to COMMAND_MODULES.

Exit status: 0 done, 1 failed (one line on stderr: an expected failure, McasError, never a traceback),
2 usage (bad arguments, or a request refused before anything happened), 130 interrupted (Ctrl-C). Results go
to stdout (`--json` where a command reports results), errors, warnings and progress to stderr. Anything else
is a bug and keeps its traceback.

Every command reads `local.settings.json` (`--settings-file`, default `./local.settings.json`, else the
project's) for the settings the environment does not set, as `func start` does.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mcasctl.errors import Interrupted, UsageError
from shared.errors import McasError

COMMAND_MODULES: tuple[str, ...] = (
    "mcasctl.host_cmd",
    "mcasctl.simulate_cmd",
    "mcasctl.alerts_cmd",
    "mcasctl.discovery_cmd",
    "mcasctl.token_cmd",
    "mcasctl.deadletters_cmd",
    "mcasctl.tenants_cmd",
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EPILOG = "exit status: 0 done, 1 failed, 2 usage error or refused request, 130 interrupted (Ctrl-C)"


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("mcas-functions")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcasctl",
        description="Operate the Defender for Cloud Apps Functions app and its local world.",
        epilog=EPILOG,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"mcasctl {version()}")
    parser.add_argument(
        "--settings-file",
        dest="global_settings_file",
        type=Path,
        metavar="FILE",
        help="local.settings.json to read settings from (default: ./local.settings.json, else the project's)",
    )
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
    from mcasctl.settings_file import applied

    try:
        with applied(args.global_settings_file):
            _check_ca_bundles()
            return int(handler(args) or 0)
    except UsageError as exc:
        print(f"mcasctl {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted:
        print(f"mcasctl {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except McasError as exc:
        print(f"mcasctl {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        if args.verbose and exc.__cause__ is not None:  # -v: the underlying error too (TLS, DNS, ...)
            print(f"  caused by: {_one_line(exc.__cause__)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"mcasctl {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        # main() also runs in-process (tests, embedding): leave logging as it was found.
        remove_console_handler()
        root.setLevel(saved_level)


def _check_ca_bundles() -> None:
    """A CA bundle setting that names a missing file breaks every HTTPS call deep inside an SDK; say so."""
    import os

    from shared.errors import ConfigurationError

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(name)
        if value and not Path(value).is_file():
            raise ConfigurationError(
                name,
                f"names {value}, which is not a file: point it at a PEM bundle of trusted CAs (for the local "
                "simulator, the bundle `mcasctl simulate` prints) or unset it",
            )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
