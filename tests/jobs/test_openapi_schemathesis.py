"""Schemathesis against GET /api/openapi.json, through the LocalHost over real HTTP (Azurite and the simulator
behind it). Bounded: a few dozen generated requests per operation, so CI stays fast.

Checks: no 5xx, only documented status codes, content types and headers, responses match their schemas, and
schema-violating requests are refused (negative data rejection).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from shared.storage import QUEUE_JOBS, queue_client  # noqa: E402
from tests.jobs.harness import FUNCTION_KEY, running_host  # noqa: E402

EXAMPLES_PER_OPERATION = 40
KEY = "x-functions-key"
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]


def test_openapi_document_is_served_and_valid_for_schemathesis(jobs_env: dict[str, Any]) -> None:
    sim, webhook = jobs_env["sim"], jobs_env["webhook"]
    app_token = sim.mint_token(app="daemon", audience=webhook["client_id"], roles=["Jobs.Submit"])
    headers = {"x-functions-key": FUNCTION_KEY, "Authorization": f"Bearer {app_token}"}
    with running_host() as host:
        assert requests.get(f"{host.api_url}/openapi.json", timeout=10).status_code == 401  # needs the key
        schema = schemathesis.openapi.from_url(f"{host.api_url}/openapi.json", headers=headers)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {"POST /jobs", "GET /jobs/{jobId}"} <= {op.label for op in operations}
        document = requests.get(f"{host.api_url}/openapi.json", headers=headers, timeout=10).json()
        requirements = [document["security"]] + [
            op["security"] for path in document["paths"].values() for op in path.values() if "security" in op
        ]
        # The host demands the key on every operation, so every security requirement names it.
        assert all(all("functionKey" in option for option in req) for req in requirements), requirements
        calls: dict[str, int] = {}
        modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
        for operation, mode in [(op, mode) for op in operations for mode in modes]:

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,  # the same examples every run: a pass or a failure is reproducible
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(mode))
            def run(case: Any) -> None:
                # A generated (negative) Authorization header is kept, so it meets the API's own refusal; the
                # function key (declared on every operation, checked by the host) is always the real one.
                # A negative case may leave the key out on purpose: the host must then refuse it (401).
                extra = {k: v for k, v in headers.items() if k not in (case.headers or {}) and k != KEY}
                if case.headers and KEY in case.headers:
                    case.headers[KEY] = FUNCTION_KEY
                response = case.call_and_validate(base_url=host.api_url, headers=extra, checks=CHECKS)
                key = f"{case.operation.label} {response.status_code}"
                calls[key] = calls.get(key, 0) + 1

            run()
        assert sum(calls.values()) >= 150, calls
        assert calls.get("POST /jobs 202") and calls.get("POST /jobs 400"), calls
    queue_client(QUEUE_JOBS).clear_messages()  # accepted jobs were never meant to run
