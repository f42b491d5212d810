"""Benchmark: cold-start import cost of `import function_app` against `import azure.functions` alone.

In Azure the Python worker imports azure.functions itself, so what the app adds on a cold start is the
difference. Both statements run in the same session, alternating, each in a fresh interpreter under
`python -X importtime`, after one warm-up run each so `.pyc` files exist (as in a deployed package). Reports
the median cumulative import time of each, their ratio (aim: at most 1.3x), the median process wall time,
and the modules the app adds, slowest first, with the chain that imported each - so an eager heavy import is
easy to trace. Application Insights is left unset: this measures the cold start without telemetry, where
azure-monitor-opentelemetry must not load at all.

Run: .venv/bin/python bench/bench_cold_start.py [--repeat 9] [--top 15] [--json]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import bench_parser

from localdev.importtime import ImportLine, chain, run, top_level

ROOT = Path(__file__).resolve().parents[1]
APP = "function_app"
BASELINE = "azure.functions"
TARGET_RATIO = 1.3


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _total_ms(lines: list[ImportLine], module: str) -> float:
    line = top_level(lines, module)
    if line is None:
        raise RuntimeError(f"no top-level import of {module} in the -X importtime output")
    return line.cumulative_us / 1000


def measure(repeat: int, top: int) -> dict[str, Any]:
    env = _env()
    for statement in (f"import {APP}", f"import {BASELINE}"):
        run(statement, cwd=ROOT, env=env)  # warm-up: compiles and caches .pyc
    totals: dict[str, list[float]] = {APP: [], BASELINE: []}
    walls: dict[str, list[float]] = {APP: [], BASELINE: []}
    added_cumulative: dict[str, list[float]] = defaultdict(list)
    chains: dict[str, list[str]] = {}
    for _ in range(repeat):
        base_lines, base_wall = run(f"import {BASELINE}", cwd=ROOT, env=env)
        app_lines, app_wall = run(f"import {APP}", cwd=ROOT, env=env)
        totals[BASELINE].append(_total_ms(base_lines, BASELINE))
        totals[APP].append(_total_ms(app_lines, APP))
        walls[BASELINE].append(base_wall * 1000)
        walls[APP].append(app_wall * 1000)
        baseline_modules = {line.module for line in base_lines}
        for line in app_lines:
            if line.module not in baseline_modules and line.module != APP:
                added_cumulative[line.module].append(line.cumulative_us / 1000)
                chains.setdefault(line.module, chain(app_lines, line.module))
    medians = {name: statistics.median(values) for name, values in totals.items()}
    ratio = medians[APP] / medians[BASELINE]
    added = sorted(
        ((module, statistics.median(values)) for module, values in added_cumulative.items()),
        key=lambda item: item[1],
        reverse=True,
    )
    return {
        "repeat": repeat,
        "python": sys.version.split()[0],
        "import_ms": {name: round(value, 1) for name, value in medians.items()},
        "import_ms_all": {name: [round(v, 1) for v in values] for name, values in totals.items()},
        "process_wall_ms": {name: round(statistics.median(values), 1) for name, values in walls.items()},
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "within_target": ratio <= TARGET_RATIO,
        "added_ms": round(medians[APP] - medians[BASELINE], 1),
        "added_modules": len(added_cumulative),
        "top_added": [
            {"module": module, "cumulative_ms": round(ms, 1), "chain": " <- ".join(chains[module])}
            for module, ms in added[:top]
        ],
    }


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--repeat", type=int, default=9, help="fresh processes per statement (default 9)")
    parser.add_argument("--top", type=int, default=15, help="slowest added modules to list (default 15)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = measure(max(1, args.repeat), args.top)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    ms, wall = result["import_ms"], result["process_wall_ms"]
    print(
        f"cold start imports, Python {result['python']}: {result['repeat']} fresh processes each, "
        ".pyc warm, medians"
    )
    print(f"  import {BASELINE:<16} {ms[BASELINE]:8.1f} ms   (process wall {wall[BASELINE]:.0f} ms)")
    print(f"  import {APP:<16} {ms[APP]:8.1f} ms   (process wall {wall[APP]:.0f} ms)")
    verdict = "within" if result["within_target"] else "ABOVE"
    print(
        f"  ratio {result['ratio']:.2f}x ({verdict} the {TARGET_RATIO}x target); the app adds "
        f"{result['added_ms']:.1f} ms over {result['added_modules']} modules"
    )
    print("slowest modules the app adds (cumulative ms, import chain):")
    for item in result["top_added"]:
        print(f"  {item['cumulative_ms']:7.1f}  {item['chain']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
