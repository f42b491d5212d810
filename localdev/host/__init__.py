"""A small local Functions host (`mcasctl host`): Core Tools cannot be installed here (local-components §3.1).

It loads a `func.FunctionApp`, serves its HTTP triggers on 127.0.0.1, polls Azurite for queue triggers with
host.json semantics, and fires timers from their NCRONTAB schedules. A development aid, not a second runtime:
no scale-out, no singleton locks across processes, no blob/table bindings.
"""

from localdev.host.index import app_functions
from localdev.host.queues import QueueStats
from localdev.host.runtime import FUNCTION_KEY_SETTING, LocalHost

__all__ = ["FUNCTION_KEY_SETTING", "LocalHost", "QueueStats", "app_functions"]
