"""The platform's Python worker indexes function_app.py exactly as the local host does, binding by binding.

`azure-functions-runtime` (the worker code Azure runs for Python 3.13) loads the app through its own entry
points in the `.venv313` environment that `make worker-venv` builds (`worker_index_probe.py`, next to this
file, drives it). It imports the app, applies the checks Azure applies at load time (parameters against
bindings, `Out[...]` annotations) and produces the function metadata the host receives; every raw binding
must equal the local host's index (`localdev.host.index`), setting by setting. Skipped only where no
Python 3.13 is installed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from localdev.host.index import BindingSpec, Direction, FunctionSpec, app_functions, describe
from tests.fixtures.processes import run_captured

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("worker_index_probe.py")
WORKER_PYTHON = ROOT / ".venv313" / "bin" / "python"
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")


def _worker_python() -> Path:
    """Build (or reuse) the worker venv through the make target; skip only when make finds no Python 3.13."""
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}
    result = run_captured(["make", "--no-print-directory", "worker-venv"], cwd=ROOT, env=env, timeout=900)
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"make worker-venv failed:\n{output}"
    if not (ROOT / ".venv313" / ".installed").exists():
        pytest.skip(
            f"no Python 3.13, so the platform worker's index is not compared: {result.stdout.strip()}"
        )
    return WORKER_PYTHON


def run_worker_index(python: Path, app_dir: Path, out: Path) -> tuple[int, dict[str, Any]]:
    """Index app_dir with the worker in a clean environment (importing the app must read no setting)."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [str(python), str(PROBE), str(app_dir), str(out)]
    result = run_captured(command, cwd=app_dir, env=env, timeout=180)
    assert out.exists(), f"the worker index probe wrote nothing:\n{result.stderr[-3000:]}"
    return result.returncode, json.loads(out.read_text())


def _settings_differences(where: str, worker: Mapping[str, Any], local: Mapping[str, Any]) -> list[str]:
    return [
        f"{where}: {key}: worker {worker.get(key, '<absent>')!r}, local index {local.get(key, '<absent>')!r}"
        for key in sorted(set(worker) | set(local))
        if worker.get(key, KeyError) != local.get(key, KeyError)
    ]


def _as_binding(raw: Mapping[str, Any]) -> BindingSpec:
    """The worker's raw binding in the local index's shape, without going through the local parser."""
    settings = {k: v for k, v in raw.items() if k not in ("name", "type", "direction")}
    return BindingSpec(raw["name"], raw["type"], cast(Direction, str(raw["direction"]).lower()), settings)


def binding_differences(function: Mapping[str, Any], local: FunctionSpec) -> list[str]:
    """Every way one function of the worker's index differs from the local host's view of it."""
    name = local.name
    worker_bindings = {raw["name"]: _as_binding(raw) for raw in function["raw_bindings"]}
    local_bindings = {b.name: b for b in local.bindings}
    problems: list[str] = []
    for binding in sorted(set(worker_bindings) | set(local_bindings)):
        where = f"{name}/{binding}"
        worker, mine = worker_bindings.get(binding), local_bindings.get(binding)
        if worker is None or mine is None:
            problems.append(f"{where}: only in the {'local index' if worker is None else 'worker index'}")
            continue
        problems += _settings_differences(
            where,
            {"type": worker.type, "direction": worker.direction, **worker.settings},
            {"type": mine.type, "direction": mine.direction, **mine.settings},
        )
        info = function["bindings"].get(binding, {})
        declared_data_type = str(mine.settings.get("dataType", "undefined")).lower()
        expected_info = {"type": mine.type, "direction": mine.direction, "data_type": declared_data_type}
        problems += _settings_differences(f"{where} (BindingInfo)", info, expected_info)
    function_level = {
        "entry_point": function["entry_point"],
        "script_file": function["script_file"],
        "retry_options": function["retry_options"],
    }
    # The local host loads function_app.py's functions by name and implements no retry policy.
    problems += _settings_differences(
        name, function_level, {"entry_point": name, "script_file": "function_app.py", "retry_options": None}
    )
    return problems


def _local_index() -> dict[str, FunctionSpec]:
    import function_app

    return {spec.name: spec for spec in (describe(f) for f in app_functions(function_app.app))}


@pytest.fixture(scope="module")
def worker_python() -> Path:
    return _worker_python()


@pytest.fixture(scope="module")
def worker_index(worker_python, tmp_path_factory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("worker") / "index.json"
    returncode, report = run_worker_index(worker_python, ROOT, out)
    assert returncode == 0 and report["status"] == "Success", f"the worker cannot index the app: {report}"
    return report


def test_the_worker_is_the_platform_one(worker_index):
    assert worker_index["python"] == "3.13"
    assert worker_index["azure_functions_version"].startswith("2.")


def test_worker_and_local_host_index_the_same_functions(worker_index):
    worker_names = [f["name"] for f in worker_index["functions"]]
    assert sorted(worker_names) == sorted(_local_index())
    assert len(set(worker_names)) == len(worker_names)
    for function in worker_index["functions"]:
        assert function["properties"] == {"worker_indexed": "True"}
        assert function["language"] == "python"


def test_every_binding_matches_the_local_index(worker_index):
    local = _local_index()
    problems = [
        problem
        for function in worker_index["functions"]
        if function["name"] in local
        for problem in binding_differences(function, local[function["name"]])
    ]
    assert problems == [], "\n".join(problems)


def test_the_timer_monitor_setting_reaches_both_indexes(worker_index):
    """useMonitor decides whether a missed alert pull runs late or never: both sides must carry it."""
    (timer,) = [f for f in worker_index["functions"] if f["name"] == "alerts_pull_timer"]
    (raw,) = timer["raw_bindings"]
    assert raw["useMonitor"] is True
    spec = _local_index()["alerts_pull_timer"]
    assert spec.details["use_monitor"] is True
    assert spec.bindings[0].settings["useMonitor"] is True


def test_a_dropped_setting_is_reported(worker_index):
    """The comparison itself: a local index without useMonitor (as it was) does not pass."""
    (timer,) = [f for f in worker_index["functions"] if f["name"] == "alerts_pull_timer"]
    spec = _local_index()["alerts_pull_timer"]
    (trigger,) = spec.bindings
    settings = {k: v for k, v in trigger.settings.items() if k != "useMonitor"}
    dropped = BindingSpec(trigger.name, trigger.type, trigger.direction, settings)
    problems = binding_differences(timer, FunctionSpec(**{**vars(spec), "bindings": (dropped,)}))
    assert problems == ["alerts_pull_timer/timer: useMonitor: worker True, local index '<absent>'"]


def _write_app(directory: Path, body: str) -> Path:
    directory.mkdir()
    header = "import azure.functions as func\n\napp = func.FunctionApp()\n"
    (directory / "function_app.py").write_text(header + body)
    return directory


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(
            '@app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")\n'
            "def work(msg: func.QueueMessage, extra: str) -> None: ...\n",
            "the following parameters are declared in Python but not in the function definition",
            id="parameter-without-binding",
        ),
        pytest.param(
            '@app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")\n'
            '@app.queue_output(arg_name="out", queue_name="done", connection="AzureWebJobsStorage")\n'
            "def work(msg: func.QueueMessage, out: str) -> None: ...\n",
            "is not a subclass of azure.functions.Out",
            id="output-without-Out-annotation",
        ),
        pytest.param(
            "second = func.FunctionApp()\n",
            "More than one FunctionApp or other top level function app instances are defined",
            id="two-apps",
        ),
    ],
)
def test_the_worker_rejects_what_azure_rejects(worker_python, tmp_path, body, error):
    """The probe reports the worker's load errors, so the index check above cannot pass on a broken app."""
    app_dir = _write_app(tmp_path / "app", body)
    returncode, report = run_worker_index(worker_python, app_dir, tmp_path / "index.json")
    assert returncode == 1
    assert report["status"] == "Failure"
    assert error in report["exception"]


def _names(functions: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted(str(f["name"]) for f in functions)


def test_a_valid_small_app_indexes_with_its_bindings(worker_python, tmp_path):
    """Positive control on another app: the probe lists what the worker indexed, raw bindings included."""
    app_dir = _write_app(
        tmp_path / "app",
        '@app.timer_trigger(schedule="%S%", arg_name="timer", use_monitor=False)\n'
        "def tick(timer: func.TimerRequest) -> None: ...\n",
    )
    returncode, report = run_worker_index(worker_python, app_dir, tmp_path / "index.json")
    assert returncode == 0, report
    assert _names(report["functions"]) == ["tick"]
    (raw,) = report["functions"][0]["raw_bindings"]
    assert raw == {
        "direction": "IN",
        "type": "timerTrigger",
        "name": "timer",
        "schedule": "%S%",
        "useMonitor": False,
    }


def test_readme_names_the_python_the_bicep_deploys():
    """The deployment section says which Python runs in Azure; it follows the Bicep's runtime version."""
    bicep = (ROOT / "infra" / "app" / "api.bicep").read_text()
    runtime = re.search(r"runtime:\s*\{\s*name:\s*'python'\s*version:\s*'(\d+\.\d+)'", bicep)
    assert runtime, "no python runtime version in infra/app/api.bicep"
    readme = (ROOT / "README.md").read_text()
    assert f"The app runs on **Python {runtime.group(1)}**" in readme
