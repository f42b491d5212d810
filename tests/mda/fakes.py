"""A real `MdaClient` whose HTTP session answers one fixed response: for tests of how the client and the APIs
built on it read an answer."""

from __future__ import annotations

from typing import Any

import requests

from shared.mda.client import RetryPolicy
from tests.alerts.fakes import fake_client


def answering_client(status: int, body: bytes, *, cap: int | None = None) -> Any:
    class Session:
        def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
            r = requests.Response()
            r.status_code, r._content, r.reason = status, body, "Reason"
            r.headers["Content-Type"] = "application/json"
            return r

    return fake_client(Session(), retry=RetryPolicy(max_attempts=1), max_response_bytes=cap)
