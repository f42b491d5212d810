"""The Functions app (v2 programming model): imports and registration only.

Each functions/ module is a blueprint that binds triggers and delegates to one shared/ entry point. HTTP
functions default to FUNCTION auth (a key); a blueprint opts out per route (e.g. the anonymous ping).
"""

import azure.functions as func

from functions import alerts, diagnostics, discovery, health, jobs
from shared.logging_setup import configure_logging

configure_logging()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(diagnostics.bp)
app.register_functions(discovery.bp)
app.register_functions(alerts.bp)
app.register_functions(jobs.bp)
app.register_functions(health.bp)
