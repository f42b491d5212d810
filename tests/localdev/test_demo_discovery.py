"""The demo's discovery step on the local host: blob -> BlobCreated event -> queue function -> done_upload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localdev import demo
from localdev.demo_discovery import step_discovery


def test_demo_step_runs_the_job_end_to_end(simulator: Any, azurite: Any, tmp_path: Path) -> None:
    lines: list[str] = []
    before = simulator.mda("contoso", "GET", "discovery/config")
    with demo.demo_context(simulator, azurite, tmp_path) as ctx:
        assert demo.run_steps(ctx, [("discovery", step_discovery)], out=lines.append), lines
    assert "-> queue function -> done_upload" in lines[0]
    assert "BOM stripped" in lines[1] and "no second upload" in lines[2]
    assert simulator.mda("contoso", "GET", "discovery/config") == before
