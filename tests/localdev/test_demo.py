"""The demo's steps against the session's simulator and Azurite, and `python -m localdev.demo` end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from localdev import demo

ROOT = Path(__file__).resolve().parents[2]


def test_steps_run_against_the_local_world(simulator, azurite, tmp_path):
    lines: list[str] = []
    before = dict(os.environ)
    with demo.demo_context(simulator, azurite, tmp_path) as ctx:
        assert os.environ.get("AzureWebJobsStorage") == azurite.connection_string  # noqa: SIM112
        assert demo.run_steps(ctx, demo.STEPS, out=lines.append)
    assert dict(os.environ) == before  # the demo's settings do not leak
    titles = [line.split("  ")[1] for line in lines if not line.startswith("   ")]
    assert titles == [title for title, _ in demo.STEPS]
    ping = next(line for line in lines if line.split()[0] == "ping")
    assert "GET /api/ping -> 200 status=ok" in ping


def test_a_failing_step_stops_the_run_with_one_line(simulator, azurite, tmp_path):
    def broken(ctx: demo.DemoContext) -> str:
        raise RuntimeError("no\nsink")

    lines: list[str] = []
    with demo.demo_context(simulator, azurite, tmp_path) as ctx:
        ok = demo.run_steps(ctx, [("broken", broken), *demo.STEPS], out=lines.append)
    assert not ok
    assert len(lines) == 1
    assert lines[0].split() == ["broken", "FAILED:", "RuntimeError:", "no", "sink"]


@pytest.mark.integration  # the demo starts a simulator and Azurite
def test_demo_command_end_to_end():
    """What `make demo` runs, in a fresh process: it must start, summarise and stop cleanly."""
    result = subprocess.run(
        [sys.executable, "-m", "localdev.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ping" in result.stdout
    assert "Demo done" in result.stdout
