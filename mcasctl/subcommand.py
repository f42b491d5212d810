"""How a command group adds a subcommand whose `--help` is its module's docstring."""

from __future__ import annotations

import argparse
from typing import Any


def add_documented(subparsers: Any, name: str, *, help_text: str, doc: str | None) -> argparse.ArgumentParser:
    """A subcommand listed with `help_text`; its own `--help` prints `doc` with its line breaks and indents
    kept (the module docstrings are laid out as usage tables)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return parser
