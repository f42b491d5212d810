"""Read `python -X importtime` output: per-module self and cumulative times, and who imported whom.

Used by bench/bench_cold_start.py (figures) and tests/platform/test_cold_start_imports.py (the import
chain that pulls a heavy SDK into `import function_app`). The output is post-order: a module's line comes
after the lines of everything it imported, indented one level deeper than its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")


@dataclass(frozen=True)
class ImportLine:
    module: str
    self_us: int
    cumulative_us: int
    depth: int
    parent: str | None  # the module whose import statement imported this one; None at top level


def parse(stderr: str) -> list[ImportLine]:
    raw: list[tuple[str, int, int, int]] = []
    for text in stderr.splitlines():
        match = _LINE.match(text)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            raw.append((module, int(self_us), int(cumulative_us), (len(indent) - 1) // 2))
    lines: list[ImportLine] = []
    for index, (module, self_us, cumulative_us, depth) in enumerate(raw):
        parent = None
        if depth > 0:
            parent = next((m for m, _s, _c, d in raw[index + 1 :] if d == depth - 1), None)
        lines.append(ImportLine(module, self_us, cumulative_us, depth, parent))
    return lines


def chain(lines: list[ImportLine], module: str) -> list[str]:
    """`module <- importer <- ... <- top-level import`, for the first time `module` was imported."""
    by_name = {line.module: line for line in lines}
    found = by_name.get(module)
    path: list[str] = []
    while found is not None:
        path.append(found.module)
        found = by_name.get(found.parent) if found.parent else None
    return path


def top_level(lines: list[ImportLine], module: str) -> ImportLine | None:
    return next((line for line in lines if line.depth == 0 and line.module == module), None)


def run(statement: str, *, cwd: Path, env: dict[str, str] | None = None) -> tuple[list[ImportLine], float]:
    """One fresh interpreter running `statement` under -X importtime; returns its lines and wall seconds."""
    import time

    environment = dict(os.environ if env is None else env)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        check=False,
        timeout=120,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{statement!r} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return parse(result.stderr), wall
