"""Entra ID's protocol errors as the simulator renders them: the error body MSAL and azure-identity parse.

`{error, error_description "AADSTSxxxx: ...", error_codes, timestamp, trace_id, correlation_id}` with the
status codes the real service uses; the helpers name the errors several endpoints share.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from localdev.simulator.wire import SimResponse

NO_CREDENTIAL = (
    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
)


class EntraError(Exception):
    """An Entra protocol error; `response()` renders the real service's error body."""

    def __init__(self, status: int, error: str, code: int, description: str, **extra: Any) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description
        self.extra = extra

    def response(self, correlation_id: str | None = None) -> SimResponse:
        trace_id = str(uuid.uuid4())
        correlation = correlation_id or str(uuid.uuid4())
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        body = {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} "
            f"Correlation ID: {correlation} Timestamp: {stamp}",
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
            **self.extra,
        }
        return SimResponse.json(self.status, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})


def missing(name: str) -> EntraError:
    return EntraError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'."
    )


def unknown_tenant(name: str) -> EntraError:
    return EntraError(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are signing into "
        "the correct cloud. Check with your subscription administrator, this may happen if there are no "
        "active subscriptions for the tenant.",
    )


def unknown_client(client_id: str, domain: str, hint: str = "") -> EntraError:
    return EntraError(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory '{domain}'.{hint}",
    )


def invalid_scope(description: str, code: int = 70011) -> EntraError:
    return EntraError(400, "invalid_scope", code, description)


def client_auth_error(code: int, description: str) -> EntraError:
    return EntraError(401, "invalid_client", code, description)


def no_client_credential() -> EntraError:
    return client_auth_error(7000218, NO_CREDENTIAL)


def invalid_grant(code: int, description: str, **extra: Any) -> EntraError:
    return EntraError(400, "invalid_grant", code, description, **extra)


def unknown_user() -> EntraError:
    return invalid_grant(50034, "The user account does not exist in the directory.")
