"""What the local host knows about each function: its trigger, its queue outputs and the callable.

Bindings are read from the JSON the worker sends the Functions host (`get_raw_bindings()`), so the local host
acts on what Azure receives; `tests/platform/test_worker_index.py` compares them with the real worker's index.

`app.get_functions()` is one-shot (a second call raises "does not have a unique function name", because
`app.functions_bindings` remembers the names). `app_functions()` indexes each app once per process and clears
that memory before and after, so it coexists with code (e.g. a test) that calls `get_functions()` itself.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from shared.errors import ConfigurationError

if TYPE_CHECKING:
    import azure.functions as func
    from azure.functions.decorators.core import Trigger

TriggerKind = Literal["http", "queue", "timer", "unsupported"]
Direction = Literal["in", "out", "inout"]

_index_lock = threading.Lock()
_indexed: dict[int, tuple[object, list[Any]]] = {}  # id(app) -> (app kept alive, functions)
_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")
# The host's storage connection when a binding declares none.
DEFAULT_CONNECTION = "AzureWebJobsStorage"


def app_functions(app: func.FunctionApp) -> list[Any]:
    """The app's `azure.functions` Function objects, indexed once per app object and process."""
    with _index_lock:
        entry = _indexed.get(id(app))
        if entry is None or entry[0] is not app:
            app.functions_bindings = None
            try:
                entry = (app, list(app.get_functions()))
            finally:
                app.functions_bindings = None
            _indexed[id(app)] = entry
        return list(entry[1])


def resolve_setting_expressions(value: str, env: Mapping[str, str], *, what: str) -> str:
    """Replace `%NAME%` binding expressions with app settings, failing like the host when one is missing."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = env.get(name)
        if not resolved:
            raise ConfigurationError(name, f"is not set, but {what} refers to %{name}%")
        return resolved

    return _SETTING_EXPRESSION.sub(lookup, value)


@dataclass(frozen=True)
class BindingSpec:
    """One binding as declared to the host, in function.json terms (`queueName`, `schedule`, `useMonitor`)."""

    name: str
    type: str
    direction: Direction
    settings: Mapping[str, Any]  # every other declared property, as serialised for the host

    @classmethod
    def from_raw(cls, raw: str) -> BindingSpec:
        entry = dict(json.loads(raw))
        direction = str(entry.pop("direction")).lower()
        if direction not in ("in", "out", "inout"):
            raise ValueError(f"binding {entry.get('name')!r} has an unknown direction {direction!r}")
        return cls(str(entry.pop("name")), str(entry.pop("type")), cast(Direction, direction), entry)


@dataclass(frozen=True)
class QueueOutput:
    arg_name: str  # "$return" when the function's return value is the message
    queue_name: str
    connection: str


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    kind: TriggerKind
    trigger: Trigger
    user_function: Callable[..., Any]
    outputs: tuple[QueueOutput, ...] = ()
    bindings: tuple[BindingSpec, ...] = ()  # all of them, trigger included, as the worker sends them
    unsupported: str | None = None  # why the local host cannot run it
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def trigger_arg(self) -> str:
        return str(self.trigger.name)

    def summary(self) -> str:
        """One line for `mcasctl host` and the demo: name, trigger and its main parameter."""
        if self.kind == "http":
            methods = ",".join(self.details["methods"]) or "ANY"
            return f"{self.name}: http {methods} /api/{self.details['route']} ({self.details['auth_level']})"
        if self.kind == "queue":
            outs = "".join(f" -> {o.queue_name}" for o in self.outputs)
            return f"{self.name}: queue {self.details['queue_name']}{outs}"
        if self.kind == "timer":
            return f"{self.name}: timer {self.details['schedule']}"
        return f"{self.name}: not runnable locally ({self.unsupported})"


def describe(function: Any) -> FunctionSpec:
    """Classify one indexed function; bindings the local host does not implement make it `unsupported`."""
    trigger = function.get_trigger()
    name = str(function.get_function_name())
    user_function = function.get_user_function()
    trigger_type = trigger.get_binding_name()
    bindings = tuple(BindingSpec.from_raw(raw) for raw in function.get_raw_bindings())
    declared = next(b for b in bindings if b.name == trigger.name and b.type == trigger_type).settings
    outputs: list[QueueOutput] = []
    problems: list[str] = []
    for binding in bindings:
        if binding.name == trigger.name or binding.type == "http":
            continue
        if binding.type == "queue" and binding.direction == "out":
            connection = str(binding.settings.get("connection") or DEFAULT_CONNECTION)
            outputs.append(QueueOutput(binding.name, binding.settings["queueName"], connection))
        else:
            problems.append(f"{binding.type} binding {binding.name!r}")

    details: dict[str, Any] = {}
    kind: TriggerKind
    if trigger_type == "httpTrigger":
        kind = "http"
        route = declared.get("route")
        details = {
            "route": (route if route is not None else name).strip("/"),
            "methods": [str(m).upper() for m in declared.get("methods") or []],
            "auth_level": str(declared.get("authLevel") or "function").lower(),
        }
    elif trigger_type == "queueTrigger":
        kind = "queue"
        details = {
            "queue_name": declared["queueName"],
            "connection": declared.get("connection") or DEFAULT_CONNECTION,
        }
    elif trigger_type == "timerTrigger":
        kind = "timer"
        details = {
            "schedule": declared["schedule"],
            "run_on_startup": bool(declared.get("runOnStartup")),
            # None when not declared: the host then monitors schedules whose interval is at least a minute
            # (https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#usemonitor)
            "use_monitor": declared.get("useMonitor"),
        }
    else:
        kind = "unsupported"
        problems.append(f"{trigger_type} trigger")
    if problems:
        kind = "unsupported"
    return FunctionSpec(
        name=name,
        kind=kind,
        trigger=trigger,
        user_function=user_function,
        outputs=tuple(outputs),
        bindings=bindings,
        unsupported=", ".join(problems) or None,
        details=details,
    )
