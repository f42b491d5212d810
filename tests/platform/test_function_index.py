"""Index function_app.app the way the worker does and check every function's trigger and bindings.

Data-driven: adding a function means adding one row to EXPECTED. The test fails for a function without a
row (so nothing ships unreviewed) and for a row without a function.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localdev.host.cron import Schedule
from localdev.host.index import app_functions
from tests.fixtures.processes import run_captured

ROOT = Path(__file__).resolve().parents[2]
CONNECTION = "AzureWebJobsStorage"
SETTING_EXPRESSION = re.compile(r"^%([A-Z][A-Z0-9_]*)%$")
QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){2,62}$")


@dataclass(frozen=True)
class Http:
    route: str
    methods: tuple[str, ...]
    auth_level: str  # "anonymous" | "function" | "admin"
    outputs: tuple[str, ...] = ()  # queue names of queue output bindings


@dataclass(frozen=True)
class Queue:
    queue: str  # literal name or %SETTING%
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Timer:
    schedule: str  # always a %SETTING% expression, so operators can change it without a deployment
    outputs: tuple[str, ...] = ()


EXPECTED: dict[str, Http | Queue | Timer] = {
    "ping": Http(route="ping", methods=("GET",), auth_level="anonymous"),
    # functions/discovery.py
    "discovery_upload": Queue(queue="mcas-discovery-jobs"),
    "discovery_upload_poison": Queue(queue="mcas-discovery-jobs-poison"),
    # functions/alerts.py
    "alerts_pull_timer": Timer(schedule="%MCAS_ALERTS_SCHEDULE%"),
    "alerts_pull_job": Queue(queue="mcas-alert-pull-jobs"),
    "alerts_pull_job_poison": Queue(queue="mcas-alert-pull-jobs-poison"),
    "alerts_tenant_pull": Queue(queue="mcas-alert-tenant-pulls"),
    "alerts_tenant_pull_poison": Queue(queue="mcas-alert-tenant-pulls-poison"),
    # functions/jobs.py
    "jobs_submit": Http(route="jobs", methods=("POST",), auth_level="function"),
    "jobs_status": Http(route="jobs/{job_id}", methods=("GET",), auth_level="function"),
    "jobs_openapi": Http(route="openapi.json", methods=("GET",), auth_level="function"),
    "jobs_worker": Queue(queue="mcas-jobs"),
    "jobs_poison": Queue(queue="mcas-jobs-poison"),
    # functions/health.py
    "health": Http(route="health", methods=("GET",), auth_level="function"),
}


@pytest.fixture(scope="module")
def functions() -> dict[str, Any]:
    import function_app

    return {f.get_function_name(): f for f in app_functions(function_app.app)}


def _value(enum_or_str: Any) -> str:
    return str(getattr(enum_or_str, "value", enum_or_str))


def _bindings(fn: Any) -> list[dict[str, Any]]:
    return list(json.loads(fn.get_function_json())["bindings"])


def _example_settings() -> dict[str, str]:
    return dict(json.loads((ROOT / "local.settings.example.json").read_text())["Values"])


def test_every_function_has_a_row_and_every_row_a_function(functions):
    assert sorted(functions) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trigger_and_bindings(functions, name):
    fn, expected = functions[name], EXPECTED[name]
    trigger = fn.get_trigger()
    bindings = _bindings(fn)
    queue_outputs = [b for b in bindings if b["type"] == "queue" and b["direction"] == "OUT"]
    assert sorted(b["queueName"] for b in queue_outputs) == sorted(expected.outputs)
    for binding in bindings:
        if "connection" in binding:
            assert binding["connection"] == CONNECTION, binding

    if isinstance(expected, Http):
        assert trigger.get_binding_name() == "httpTrigger"
        assert trigger.route == expected.route
        assert tuple(_value(m) for m in trigger.methods or ()) == expected.methods
        assert _value(trigger.auth_level).lower() == expected.auth_level
        assert {"type": "http", "direction": "OUT", "name": "$return"} in bindings
    elif isinstance(expected, Queue):
        assert trigger.get_binding_name() == "queueTrigger"
        assert trigger.queue_name == expected.queue
        assert trigger.connection == CONNECTION
        if not SETTING_EXPRESSION.match(expected.queue):
            assert QUEUE_NAME.match(expected.queue), "not a valid storage queue name"
            assert len(f"{expected.queue}-poison") <= 63, "its poison queue name would be too long"
    else:
        assert trigger.get_binding_name() == "timerTrigger"
        assert trigger.schedule == expected.schedule
        assert trigger.run_on_startup is False, "run_on_startup=True re-runs on every scale-out and restart"
        setting = SETTING_EXPRESSION.match(expected.schedule)
        assert setting, "timer schedules come from an app setting (%NAME%)"
        example = _example_settings()
        assert setting.group(1) in example, "document the schedule in local.settings.example.json"
        Schedule.parse(example[setting.group(1)], setting=setting.group(1))  # a valid six-field NCRONTAB


def test_indexing_needs_no_settings():
    """The worker indexes the app before any setting is validated: importing must not read configuration."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    code = "import function_app; print(len(function_app.app.get_functions()))"
    result = run_captured([sys.executable, "-c", code], cwd=ROOT, env=env, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.strip()) == len(EXPECTED)
