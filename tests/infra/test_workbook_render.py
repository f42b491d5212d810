"""docs/workbook/render.py draws every workbook panel, from the recorded sample, the way its query reads it.

Only the aggregation runs here (standard library); drawing needs matplotlib, which the suite does not install.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType
from typing import Any

import pytest

from tests.infra import bicep_model as model

RENDER = model.REPO_ROOT / "docs" / "workbook" / "render.py"


@pytest.fixture(scope="module")
def render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("workbook_render", RENDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sample(render: ModuleType) -> dict[str, list[dict[str, Any]]]:
    return dict(render.load_sample())


def test_every_workbook_query_has_its_python_equivalent(render: ModuleType) -> None:
    workbook = json.loads((model.INFRA_DIR / "workbooks" / "mcas-operations.workbook.json").read_text())
    names = [item["name"] for item in workbook["items"] if item["type"] == 3]
    assert set(render.PANELS) == set(names)


def test_recorded_alert_rows_have_exactly_the_table_columns(sample: dict[str, list[dict[str, Any]]]) -> None:
    columns = [c["name"] for c in json.loads((model.REPO_ROOT / "shared/alerts/logs_table.json").read_text())]
    rows = sample["MDAAlerts_CL"]
    assert len(rows) >= 100
    assert all(sorted(row) == sorted(columns) for row in rows)
    assert len({row["MdaTenant"] for row in rows}) >= 2


def test_every_panel_shows_data_from_the_sample(render: ModuleType, sample: dict[str, Any]) -> None:
    panels = {meta["name"]: panel for meta, panel in render.evaluate(sample)}
    for name, panel in panels.items():
        if panel.kind == "table":
            assert panel.rows, name
        else:
            assert panel.series and any(panel.series.values()), name


def test_alert_panels_count_each_alert_once(render: ModuleType, sample: dict[str, Any]) -> None:
    """Alerts per hour counts first versions: the total is the number of distinct alert ids."""
    alerts = {row["AlertId"] for row in sample["MDAAlerts_CL"]}
    panels = {meta["name"]: panel for meta, panel in render.evaluate(sample)}
    for name in ("alerts-by-severity", "alerts-by-tenant"):
        total = sum(sum(points.values()) for points in panels[name].series.values())
        assert total == len(alerts), name
    open_total = sum(row[2] for row in panels["open-alerts"].rows)
    assert 0 < open_total <= len(alerts)


def test_a_second_version_of_an_alert_changes_the_open_count_not_the_arrivals(render: ModuleType) -> None:
    def row(version: int, classification: str) -> dict[str, Any]:
        return {
            "AlertId": "a1",
            "AlertVersion": version,
            "Created": "2026-01-01T10:15:00Z",
            "MdaTenant": "contoso",
            "Severity": "high",
            "Status": "unread",
            "Classification": classification,
        }

    sample = {"MDAAlerts_CL": [row(1, "open"), row(2, "benign")], "customMetrics": []}
    arrivals = render.PANELS["alerts-by-severity"](sample)
    assert {name: sum(points.values()) for name, points in arrivals.series.items()} == {"high": 1}
    assert render.PANELS["open-alerts"](sample).rows == []
