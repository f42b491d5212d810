"""Fuzzing every queue-triggered handler with hypothesis, in process against Azurite and the simulator.

The contract under test: every message either succeeds or is dead-lettered with a reason. A handler
never raises for a message it cannot use - raising means "retry", and retrying bad input is a retry loop that
ends in the poison queue instead of in the dead-letter store with the actual reason. (Transient failures may
raise; none are injected here, so any exception is a bug.)

Webhook bodies (POST /api/jobs) are fuzzed by tests/jobs/test_intake_property.py (in process, thousands of
cases) and tests/jobs/test_jobs_http.py (over HTTP); not repeated here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.deadletters import DeadLetter, get_letter, letter_id
from shared.errors import ValidationError
from shared.storage import CONTAINER_DISCOVERY_LOGS, QUEUE_ALERT_PULL_JOBS, QUEUE_DISCOVERY_JOBS, QUEUE_JOBS
from tests.fixtures.fuzz_strategies import FIELD_VALUES, JSON_VALUES, encode, junk_bodies, near_valid

pytestmark = pytest.mark.fuzz

# Bounded for CI (the whole fuzz suite stays well under a minute); FUZZ_EXAMPLES=1000 for a deep run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


def _letter(source: str, message_id: str, body: str) -> DeadLetter | None:
    try:
        return get_letter(letter_id(source, message_id, body))
    except ValidationError:
        return None


def _iso(delta_s: float) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delta_s)
    return moment.isoformat().replace("+00:00", "Z")


# -- discovery --------------------------------------------------------------------------------------------


def _discovery_messages(blob_endpoint: str, tenant: str) -> st.SearchStrategy[bytes]:
    missing = f"{CONTAINER_DISCOVERY_LOGS}/fuzz/{uuid.uuid4().hex}.log"
    job = {
        "action": "discovery.upload",
        "blob": missing,
        "source": "PALO_ALTO",
        "stream": "paloalto-hq",
        "snapshot": False,
        "tenant": tenant,
        "correlationId": "fuzz",
    }
    job_alternatives = {
        "action": st.sampled_from(["discovery.upload", "discovery.delete", ""]),
        "blob": st.sampled_from(
            [
                missing,
                f"{blob_endpoint}/{CONTAINER_DISCOVERY_LOGS}/PALO_ALTO/hq/x.log",
                f"{blob_endpoint}/{CONTAINER_DISCOVERY_LOGS}/x.log?sig=abc",
                "http://127.0.0.1:99999/devstoreaccount1/c/b",
                "http://[::1/devstoreaccount1/c/b",
                "https://evil.example/c/b",
                "Bad_Container/blob",
                "c/" + "x" * 1100,
                "/",
            ]
        ),
        "source": st.sampled_from(["PALO_ALTO", "palo_alto", "NOPE", "", "ZSCALER"]),
        "stream": st.sampled_from(["hq", "", " ", "a\x01b", "s" * 300]),
        "tenant": st.sampled_from([tenant, "unknown-profile", "", " "]),
    }
    event = {
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": str(uuid.uuid4()),
        "data": {
            "api": "PutBlob",
            "url": f"{blob_endpoint}/{CONTAINER_DISCOVERY_LOGS}/PALO_ALTO/hq/missing.log",
        },
    }
    event_alternatives = {
        "eventType": st.sampled_from(
            ["Microsoft.Storage.BlobCreated", "Microsoft.Storage.BlobDeleted", "Other.Type", ""]
        ),
        "data": st.one_of(
            FIELD_VALUES,
            st.fixed_dictionaries(
                {
                    "api": st.one_of(
                        st.sampled_from(["PutBlob", "CreateFile", "FlushWithClose"]), JSON_VALUES
                    ),
                    "url": st.one_of(
                        st.sampled_from(
                            [
                                f"{blob_endpoint}/other-container/a/b/c.log",
                                f"{blob_endpoint}/{CONTAINER_DISCOVERY_LOGS}/flat.log",
                                "http://127.0.0.1:0/devstoreaccount1/x/y",
                                "https://127.0.0.1:65536/devstoreaccount1/x/y",
                            ]
                        ),
                        FIELD_VALUES,
                    ),
                }
            ),
        ),
    }
    items = st.one_of(near_valid(job, job_alternatives), near_valid(event, event_alternatives))
    return st.one_of(
        junk_bodies(),
        items.map(encode),
        st.lists(items, min_size=0, max_size=3).map(encode),
    )


def test_discovery_handler_dead_letters_what_it_cannot_use(fuzz_env, azurite):
    from shared.discovery.handler import handle_discovery_message

    @FUZZ
    @given(body=_discovery_messages(azurite.blob_endpoint, fuzz_env))
    def run(body: bytes) -> None:
        message_id = uuid.uuid4().hex
        outcome = handle_discovery_message(body, message_id=message_id, dequeue_count=1)
        assert not outcome.uploaded  # no message names a blob that exists
        assert all(reason.strip() for reason in outcome.dead_lettered)
        text = body.decode("utf-8", errors="replace")
        if not outcome.skipped and len(outcome.dead_lettered) == 1:
            # A message-level refusal (or a one-item message) is stored under the message's own id.
            parsed: Any = None
            with contextlib.suppress(ValueError, RecursionError):
                parsed = json.loads(text)
            if not isinstance(parsed, list) or len(parsed) <= 1:
                letter = _letter(QUEUE_DISCOVERY_JOBS, message_id, text)
                assert letter is not None and letter.reason == outcome.dead_lettered[0][:2000]
        assert outcome.skipped or outcome.dead_lettered, "every item is accounted for"

    run()


# -- alert pull jobs --------------------------------------------------------------------------------------


def _alert_job_messages(tenant: str) -> st.SearchStrategy[bytes]:
    job = {
        "job_id": "fuzz-job",
        "tenant": tenant,
        "since": _iso(-3600),
        "until": _iso(-60),
        "filters": {"severity": {"eq": [0, 1, 2]}},
        "correlationId": "fuzz",
    }
    alternatives = {
        "job_id": st.one_of(
            st.text(max_size=80), st.sampled_from(["a" * 64, "a" * 65, "id with space", "é"])
        ),
        "tenant": st.sampled_from([tenant, "unknown-profile", ""]),
        "since": st.one_of(
            st.integers(min_value=-(2**70), max_value=2**70),
            st.sampled_from(
                [_iso(-86400 * 400), "2024-01-01", "yesterday", "0001-01-01T00:00:00Z", _iso(60)]
            ),
        ),
        "until": st.one_of(
            st.integers(min_value=-(2**70), max_value=2**70),
            st.sampled_from([_iso(0), "9999-12-31T23:59:59Z", "2000-01-01T00:00:00Z", None]),
        ),
        "lookback": st.sampled_from(
            ["1h", "0s", "90m", "1e308d", "99999999999999999999w", "-1h", "soon", ""]
        ),
        "filters": st.one_of(
            st.sampled_from(
                [
                    {"date": {"gte": 0}},
                    {"severity": {"bogus": [1]}},
                    {"severity": {}},
                    {"": {"eq": [1]}},
                    {"severity": {"eq": [{"nested": "object"}]}},
                    {"id": {"neq": ["x"] * 50}},
                    {"text": {"text": "x" * 500}},
                ]
            ),
            st.dictionaries(
                st.text(max_size=6),
                st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=2),
                max_size=2,
            ),
        ),
    }
    return st.one_of(junk_bodies(), near_valid(job, alternatives).map(encode))


def test_alert_pull_job_handler_dead_letters_what_it_cannot_use(fuzz_env):
    from shared.alerts.adhoc import handle_job_message

    @FUZZ
    @given(body=_alert_job_messages(fuzz_env))
    def run(body: bytes) -> None:
        message_id = uuid.uuid4().hex
        text = body.decode("utf-8", errors="replace")
        result = handle_job_message(text, message_id=message_id, dequeue_count=1)
        if result is None or result.error:
            letter = _letter(QUEUE_ALERT_PULL_JOBS, message_id, text)
            assert letter is not None, f"neither pulled nor dead-lettered: {result}"
            assert letter.reason.strip()
            if result is not None:
                assert result.terminal
        else:
            assert result.stopped in ("complete", "caught_up"), result

    run()


# -- SOAR jobs worker -------------------------------------------------------------------------------------


def _job_messages() -> st.SearchStrategy[bytes]:
    base = {"v": 1, "jobId": str(uuid.uuid4()), "correlationId": "fuzz"}
    alternatives = {
        "v": st.sampled_from([1, 2, "1", True, 1.0, None]),
        "jobId": st.one_of(
            st.builds(lambda: str(uuid.uuid4())),
            st.builds(lambda: str(uuid.uuid4()) + "\n"),
            st.builds(lambda: str(uuid.uuid4()).upper()),
            st.sampled_from(["", "job", "00000000-0000-0000-0000-000000000000/../x"]),
        ),
    }
    return st.one_of(junk_bodies(), near_valid(base, alternatives).map(encode))


def test_jobs_worker_dead_letters_what_it_cannot_use(fuzz_env):
    from shared.jobs.worker import process_message, process_poison

    @FUZZ
    @given(body=_job_messages(), poison=st.booleans())
    def run(body: bytes, poison: bool) -> None:
        message_id = uuid.uuid4().hex
        text = body.decode("utf-8", errors="replace")
        handler = process_poison if poison else process_message
        assert handler(body, message_id=message_id, dequeue_count=1) is None  # no such job exists
        source = f"{QUEUE_JOBS}-poison" if poison else QUEUE_JOBS
        letter = _letter(source, message_id, text)
        assert letter is not None and letter.reason.strip()

    run()


@pytest.mark.parametrize("queue", [QUEUE_DISCOVERY_JOBS, QUEUE_ALERT_PULL_JOBS])
def test_poison_handlers_keep_any_body(fuzz_env, queue):
    """The `-poison` functions store whatever they get, with its reason (never raise, never parse)."""
    from shared.alerts.adhoc import handle_job_message  # noqa: F401 - the module the function delegates to
    from shared.deadletters import dead_letter
    from shared.discovery.handler import handle_poison_message

    @FUZZ
    @given(body=junk_bodies())
    def run(body: bytes) -> None:
        message_id = uuid.uuid4().hex
        if queue == QUEUE_DISCOVERY_JOBS:
            handle_poison_message(body, message_id=message_id, dequeue_count=5)
        else:
            dead_letter(source=f"{queue}-poison", reason="exhausted", body=body, message_id=message_id)
        letter = _letter(f"{queue}-poison", message_id, body.decode("utf-8", errors="replace"))
        assert letter is not None and letter.body == body.decode("utf-8", errors="replace")

    run()
