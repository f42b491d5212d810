"""`--out FILE.ndjson` for `alerts pull` and `alerts export`: an existing file is never truncated silently.

A pull moves the checkpoint past the alerts it wrote, so overwriting the file of an earlier (interrupted)
run loses them for good: an existing file needs `--append` (add to it; a line cut off by a killed process
is removed first) or `--overwrite` (start it again).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mcasctl.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser, *, help_text: str) -> None:
    parser.add_argument("--out", type=Path, metavar="FILE.ndjson", help=help_text)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true", help="add to an existing --out file")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def prepare(path: Path, *, append: bool, overwrite: bool) -> Path:
    """Check and prepare `path` for a FileSink; raises UsageError for an existing file without a mode."""
    from shared.alerts.sinks import trim_partial_line

    if path.is_dir():
        raise UsageError("--out", f"{path} is a directory")
    if not path.exists():
        if not path.parent.is_dir():
            raise UsageError("--out", f"the directory of {path} does not exist")
        path.touch(mode=0o600)
        return path
    if overwrite:
        path.write_bytes(b"")
        return path
    if not append:
        lines = _count_lines(path)
        raise UsageError(
            "--out",
            f"{path} already exists ({lines} line{'s' if lines != 1 else ''}); nothing was written. Pass "
            "--append to add to it (its alerts are behind the checkpoint and will not be pulled again) "
            "or --overwrite to replace it",
        )
    dropped = trim_partial_line(path)
    if dropped:
        print(
            f"warning: removed an incomplete last line ({dropped} bytes) from {path} before appending",
            file=sys.stderr,
        )
    return path


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
    return count
