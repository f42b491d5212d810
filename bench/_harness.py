"""What several benchmarks share: a command line whose --help is the benchmark's docstring, and one simulated
tenant to measure against."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localdev.simulator.client import SimulatorHandle


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """The benchmark's argument parser; `--help` prints `doc` (its module docstring) as laid out."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


@contextmanager
def contoso_simulator(prefix: str) -> Iterator[SimulatorHandle]:
    """A simulator serving one MDA tenant, `contoso`, from a throw-away state directory, with this process's
    environment set to the app's settings for that tenant; stopped on exit."""
    from localdev.simulator.client import start_simulator

    with tempfile.TemporaryDirectory(prefix=prefix) as state:
        proc = start_simulator(Path(state), mda_tenants=["contoso"])
        try:
            sim = proc.handle
            os.environ.update(sim.app_env("contoso"))
            yield sim
        finally:
            proc.stop()
