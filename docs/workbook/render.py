"""Draw the operations workbook (infra/workbooks/mcas-operations.workbook.json) from the recorded sample.

    python3 -m venv .local/docs-venv && .local/docs-venv/bin/pip install matplotlib
    .local/docs-venv/bin/python docs/workbook/render.py      # writes docs/workbook/mcas-operations.png

The panels, their titles, order and widths come from the workbook JSON itself; each panel's KQL is evaluated
by the Python function of the same name in PANELS below, which does what the query does (the same filters, the
same arg_min/arg_max per alert, the same bins and groupings) over docs/workbook/sample/*.ndjson, recorded from
the app running in the local world by docs/workbook/record.py. A recorded dependencies/requests row stands for
`count` identical rows. The aggregation needs only the standard library (tests/infra/test_workbook_render.py
runs it); matplotlib is imported only to draw.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKBOOK = ROOT / "infra" / "workbooks" / "mcas-operations.workbook.json"
SAMPLE = HERE / "sample"
PICTURE = HERE / "mcas-operations.png"
CLOSED_STATUS = {"resolved", "dismissed", "closed"}
OPEN_CLASSIFICATION = {"", "open", "unknown"}
HOUR = timedelta(hours=1)


@dataclass
class Panel:
    """What one workbook item shows: series over time (chart) or rows (table)."""

    kind: str  # "timechart", "barchart" or "table"
    counts: bool = True  # empty bins are 0 (a count or a sum); False for gauges such as the pull lag
    series: dict[str, dict[datetime, float]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)


Sample = dict[str, list[dict[str, Any]]]


def load_sample(directory: Path = SAMPLE) -> Sample:
    return {
        path.stem: [
            json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        for path in sorted(directory.glob("*.ndjson"))
    }


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _bin(moment: datetime, size: timedelta) -> datetime:
    """KQL bin(): floor to a multiple of `size` since the epoch."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // size) * size


def _hour_of(row: dict[str, Any]) -> datetime:
    """bin(timestamp, 1h) of a recorded telemetry row."""
    return _bin(_time(row["timestamp"]), HOUR)


def _series(points: Iterable[tuple[str, datetime, float]], how: Callable[[float, float], float]) -> Panel:
    series: dict[str, dict[datetime, float]] = defaultdict(dict)
    for name, moment, value in points:
        bucket = series[name]
        bucket[moment] = how(bucket[moment], value) if moment in bucket else value
    return Panel("timechart", series=dict(series))


def _add(a: float, b: float) -> float:
    return a + b


def _per_alert(rows: list[dict[str, Any]], pick: Callable[[int, int], bool]) -> list[dict[str, Any]]:
    """arg_min / arg_max(AlertVersion, ...) by AlertId."""
    chosen: dict[str, dict[str, Any]] = {}
    for row in rows:
        current = chosen.get(row["AlertId"])
        if current is None or pick(row["AlertVersion"], current["AlertVersion"]):
            chosen[row["AlertId"]] = row
    return list(chosen.values())


def alerts_by(column: str) -> Callable[[Sample], Panel]:
    def panel(sample: Sample) -> Panel:
        first = _per_alert(sample["MDAAlerts_CL"], lambda a, b: a < b)
        return _series(((row[column], _bin(_time(row["Created"]), HOUR), 1) for row in first), _add)

    return panel


def open_alerts(sample: Sample) -> Panel:
    latest = _per_alert(sample["MDAAlerts_CL"], lambda a, b: a > b)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in latest:
        if (
            row["Status"].lower() not in CLOSED_STATUS
            and row["Classification"].lower() in OPEN_CLASSIFICATION
        ):
            counts[(row["MdaTenant"], row["Severity"])] += 1
    rows = [[tenant, severity, n] for (tenant, severity), n in counts.items()]
    rows.sort(key=lambda r: (-r[2], r[0], r[1]))
    return Panel("table", columns=["MdaTenant", "Severity", "OpenAlerts"], rows=rows)


def _metrics(sample: Sample, name: str) -> list[dict[str, Any]]:
    return [row for row in sample["customMetrics"] if row["name"] == name]


def pull_lag(sample: Sample) -> Panel:
    quarter = timedelta(minutes=15)
    points = (
        (str(r["customDimensions"].get("tenant")), _bin(_time(r["timestamp"]), quarter), r["valueMax"])
        for r in _metrics(sample, "mcas.pull_lag")
    )
    panel = _series(points, max)
    panel.counts = False
    return panel


def throttling_and_tokens(sample: Sample) -> Panel:
    throttled = [
        (f"429 {r['customDimensions'].get('tenant')}", _hour_of(r), r["value"])
        for r in _metrics(sample, "mcas.throttled_429")
    ]
    token_hosts = ("login.microsoftonline", "login.chinacloudapi")
    token_paths = ("/msi/token", "/metadata/identity/oauth2/token")
    failures = [
        (f"token failure {r['resultCode']}", _hour_of(r), r.get("count", 1))
        for r in sample.get("dependencies", [])
        if (any(h in r.get("target", "") for h in token_hosts) or any(p in r["data"] for p in token_paths))
        and r["success"] is False
    ]
    return _series([*throttled, *failures], _add)


def metric_bars(metric: str, dimension: str) -> Callable[[Sample], Panel]:
    """Hourly bars of a custom metric summed per value of one of its dimensions."""

    def panel(sample: Sample) -> Panel:
        points = (
            (str(r["customDimensions"].get(dimension)), _hour_of(r), r["value"])
            for r in _metrics(sample, metric)
        )
        bars = _series(points, _add)
        bars.kind = "barchart"
        return bars

    return panel


def upload_failures(sample: Sample) -> Panel:
    failed_runs = [
        ("failed runs (retried)", _hour_of(r), r.get("count", 1))
        for r in sample.get("requests", [])
        if r["name"] == "discovery_upload" and r["success"] is False
    ]
    dead = [
        ("dead-lettered", _hour_of(r), r["value"])
        for r in _metrics(sample, "mcas.dead_letters")
        if str(r["customDimensions"].get("source", "")).startswith("mcas-discovery-jobs")
    ]
    return _series([*failed_runs, *dead], _add)


PANELS: dict[str, Callable[[Sample], Panel]] = {
    "alerts-by-severity": alerts_by("Severity"),
    "alerts-by-tenant": alerts_by("MdaTenant"),
    "open-alerts": open_alerts,
    "pull-lag": pull_lag,
    "throttling-and-tokens": throttling_and_tokens,
    "upload-bytes": metric_bars("mcas.upload_bytes", "tenant"),
    "upload-failures": upload_failures,
    "dead-letters": metric_bars("mcas.dead_letters", "source"),
}


def workbook_panels(workbook: Path = WORKBOOK) -> list[dict[str, Any]]:
    """The workbook's query items in order: name, title, width (percent)."""
    items = json.loads(workbook.read_text(encoding="utf-8"))["items"]
    return [
        {"name": item["name"], "title": item["content"]["title"], "width": int(item.get("customWidth", 100))}
        for item in items
        if item["type"] == 3
    ]


def evaluate(sample: Sample) -> list[tuple[dict[str, Any], Panel]]:
    return [(panel, PANELS[panel["name"]](sample)) for panel in workbook_panels()]


def _rows_of(layout: list[dict[str, Any]]) -> list[list[int]]:
    rows: list[list[int]] = []
    used = 100
    for index, panel in enumerate(layout):
        if used + panel["width"] > 100:
            rows.append([])
            used = 0
        rows[-1].append(index)
        used += panel["width"]
    return rows


def time_range(sample: Sample) -> tuple[datetime, datetime]:
    """The workbook's TimeRange (24 hours) ending at the last hour of the recording."""
    stamps = [_time(r["timestamp"]) for r in sample["customMetrics"]]
    end = _bin(max(stamps), HOUR) + HOUR
    return end - timedelta(hours=24), end


def _filled(panel: Panel, start: datetime, end: datetime) -> dict[str, list[tuple[datetime, float]]]:
    """Each series as sorted points; count panels get a 0 in every empty hour (gaps are not lines)."""
    out: dict[str, list[tuple[datetime, float]]] = {}
    for name, points in panel.series.items():
        if panel.counts:
            hours = int((end - start) / HOUR)
            grid = {start + h * HOUR: 0.0 for h in range(hours)}
            for moment, value in points.items():
                grid[_bin(moment, HOUR)] = grid.get(_bin(moment, HOUR), 0.0) + value
            out[name] = sorted(grid.items())
        else:
            out[name] = sorted(points.items())
    return out


def draw(
    panels: list[tuple[dict[str, Any], Panel]], span: tuple[datetime, datetime], out: Path = PICTURE
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    layout = [meta for meta, _ in panels]
    grid = _rows_of(layout)
    start, end = span
    height = 3.4 * len(grid) + 1.0
    figure = plt.figure(figsize=(16, height), dpi=80)
    figure.suptitle(
        "Defender for Cloud Apps automation (workbook rendered from docs/workbook/sample, "
        f"{start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC)",
        fontsize=13,
        x=0.06,
        y=1 - 0.25 / height,
        ha="left",
    )
    spec = figure.add_gridspec(len(grid), 100, hspace=0.6, wspace=2.5, top=1 - 1.0 / height)
    for row_number, indexes in enumerate(grid):
        column = 0
        for index in indexes:
            meta, panel = panels[index]
            width = meta["width"]
            axis = figure.add_subplot(spec[row_number, column + (3 if column else 0) : column + width])
            column += width
            axis.set_title(meta["title"], fontsize=10, loc="left")
            if panel.kind == "table":
                axis.axis("off")
                cells = [[str(c) for c in row] for row in panel.rows[:12]] or [["(no open alerts)", "", ""]]
                table = axis.table(cellText=cells, colLabels=panel.columns, loc="upper left", cellLoc="left")
                table.auto_set_font_size(False)
                table.set_fontsize(8)
                table.scale(1, 1.1)
                continue
            if not panel.series:
                axis.text(0.5, 0.5, "no data in the time range", ha="center", va="center", color="grey")
            filled = _filled(panel, start, end)
            names = sorted(filled)
            bar_width = HOUR / max(1, len(names)) * 0.9
            for offset, name in enumerate(names):
                points = filled[name]
                xs = [moment for moment, _ in points]
                ys = [value for _, value in points]
                if panel.kind == "barchart":
                    axis.bar(
                        [x + bar_width * offset for x in xs], ys, width=bar_width, label=name, align="edge"
                    )
                else:
                    axis.plot(xs, ys, marker="o", markersize=2.5, linewidth=1.2, label=name)
            axis.set_xlim(start, end)
            axis.set_ylim(bottom=0)
            axis.ticklabel_format(axis="y", style="plain", useOffset=False)
            axis.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
            axis.tick_params(labelsize=8)
            axis.grid(alpha=0.3)
            if names:
                axis.legend(fontsize=7, loc="upper right", ncol=2 if len(names) > 4 else 1)
    figure.savefig(out, bbox_inches="tight")
    plt.close(figure)


def main() -> int:
    sample = load_sample()
    panels = evaluate(sample)
    draw(panels, time_range(sample))
    print(f"wrote {PICTURE.relative_to(ROOT)} ({len(panels)} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
