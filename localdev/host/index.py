"""What the local host knows about each function: its trigger, its queue outputs and the callable.

`app.get_functions()` is one-shot (a second call raises "does not have a unique function name", because
`app.functions_bindings` remembers the names). `app_functions()` indexes each app once per process and clears
that memory before and after, so it coexists with code (e.g. a test) that calls `get_functions()` itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from shared.errors import ConfigurationError

if TYPE_CHECKING:
    import azure.functions as func
    from azure.functions.decorators.core import Trigger

TriggerKind = Literal["http", "queue", "timer", "unsupported"]

_index_lock = threading.Lock()
_indexed: dict[int, tuple[object, list[Any]]] = {}  # id(app) -> (app kept alive, functions)
_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")


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
    outputs: list[QueueOutput] = []
    problems: list[str] = []
    for binding in function.get_bindings():
        binding_type = binding.get_binding_name()
        if binding is trigger or binding_type == "http":
            continue
        if binding_type == "queue":
            outputs.append(QueueOutput(binding.name, binding.queue_name, binding.connection))
        else:
            problems.append(f"{binding_type} binding {binding.name!r}")

    details: dict[str, Any] = {}
    kind: TriggerKind
    if trigger_type == "httpTrigger":
        kind = "http"
        details = {
            "route": (trigger.route if trigger.route is not None else name).strip("/"),
            "methods": [str(getattr(m, "value", m)).upper() for m in (trigger.methods or [])],
            "auth_level": str(getattr(trigger.auth_level, "value", trigger.auth_level) or "function").lower(),
        }
    elif trigger_type == "queueTrigger":
        kind = "queue"
        details = {"queue_name": trigger.queue_name, "connection": trigger.connection}
    elif trigger_type == "timerTrigger":
        kind = "timer"
        details = {"schedule": trigger.schedule, "run_on_startup": bool(trigger.run_on_startup)}
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
        unsupported=", ".join(problems) or None,
        details=details,
    )
