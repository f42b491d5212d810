"""Structured logging: JSON lines with the context fields, redaction kept in place, set up once, and no
second copy of each line under the Functions worker."""

from __future__ import annotations

import io
import json
import logging
import sys
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared import log_context
from shared.auth import redaction
from shared.auth.redaction import RedactionFilter, register_secret
from shared.log_context import bind, propagate
from shared.log_context import log_context as context
from shared.logging_setup import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    remove_console_handler,
    under_functions_host,
)

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJsb2dnaW5nLXRlc3QifQ.c2lnbmF0dXJlLWxvZ2dpbmc"


@pytest.fixture(autouse=True)
def pristine_logging() -> Iterator[None]:
    """Leave the root logger, the record factory and the redaction install as this test found them."""
    root = logging.getLogger()
    handlers, filters, level = list(root.handlers), list(root.filters), root.level
    handler_state = [(h, h.formatter, list(h.filters)) for h in handlers]
    factory = logging.getLogRecordFactory()
    was_installed = bool(redaction._installed) and factory is redaction._installed[0][0]
    try:
        yield
    finally:
        remove_console_handler()
        if not was_installed:
            redaction.uninstall_redaction()
        root.handlers[:] = handlers
        for handler, formatter, handler_filters in handler_state:
            handler.setFormatter(formatter)
            handler.filters[:] = handler_filters
        root.filters[:] = filters
        root.setLevel(level)
        logging.setLogRecordFactory(factory)


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    return logging.getLogger("tests.logging").makeRecord(
        "tests.logging", logging.INFO, __file__, 1, message, args, None, extra=extra or None
    )


def test_json_lines_carry_the_context_fields_and_extras():
    with context(invocation_id="inv-1", correlation_id="corr-1"):
        bind(tenant="contoso", job_id="job-9")
        line = JsonFormatter().format(_record("pulled %d alerts", 3, dead_letter_id="abc", pages=2))
    doc = json.loads(line)
    assert "\n" not in line
    assert doc["message"] == "pulled 3 alerts"
    assert (doc["level"], doc["logger"]) == ("INFO", "tests.logging")
    assert doc["timestamp"].endswith("Z") and "T" in doc["timestamp"]
    assert (doc["invocation_id"], doc["correlation_id"], doc["tenant"], doc["job_id"]) == (
        "inv-1",
        "corr-1",
        "contoso",
        "job-9",
    )
    assert (doc["dead_letter_id"], doc["pages"]) == ("abc", 2)


def test_extra_fields_win_over_the_context_and_absent_fields_are_omitted():
    with context(correlation_id="from-context"):
        doc = json.loads(JsonFormatter().format(_record("x", correlation_id="from-extra")))
    assert doc["correlation_id"] == "from-extra"
    assert "tenant" not in doc and "job_id" not in doc and "invocation_id" not in doc


def test_secrets_are_redacted_in_message_extras_and_exceptions():
    register_secret("s3cr3t-client-value")
    try:
        raise ValueError(f"token {JWT} rejected")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.getLogger("t").makeRecord(
        "t",
        logging.ERROR,
        __file__,
        1,
        "secret %s",
        ("s3cr3t-client-value",),
        exc_info,
        extra={"auth": f"Bearer {JWT}"},
    )
    line = JsonFormatter().format(record)
    doc = json.loads(line)
    assert JWT not in line and "s3cr3t-client-value" not in line
    assert doc["message"] == "secret [REDACTED]"
    assert doc["exception_type"] == "ValueError" and "[REDACTED]" in doc["exception"]


def test_text_format_appends_the_context():
    with context(tenant="contoso"):
        line = TextFormatter().format(_record("hello"))
    assert line.endswith("tests.logging: hello [tenant=contoso]")


def test_context_nests_and_unwinds():
    with context(correlation_id="outer", tenant="a") as fields:
        assert fields == {"correlation_id": "outer", "tenant": "a"}
        with context(tenant="b"):
            assert log_context.current() == {"correlation_id": "outer", "tenant": "b"}
        assert log_context.current() == {"correlation_id": "outer", "tenant": "a"}
    assert log_context.current() == {}
    with pytest.raises(TypeError, match="unknown log context field"):
        bind(user="someone")


def test_propagate_carries_the_context_into_pool_threads():
    with ThreadPoolExecutor(2) as pool:
        pool.submit(lambda: None).result()  # threads exist before the context is set
        with context(correlation_id="c-7", job_id="j-1"):
            seen = pool.submit(propagate(log_context.current)).result()
            bare = pool.submit(log_context.current).result()
    assert seen == {"correlation_id": "c-7", "job_id": "j-1"}
    assert bare == {}


def test_the_workers_invocation_id_is_used_when_no_handler_set_one(monkeypatch):
    dispatcher = types.ModuleType("azure_functions_worker.dispatcher")
    dispatcher.get_current_invocation_id = lambda: "worker-inv-1"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure_functions_worker.dispatcher", dispatcher)
    assert log_context.current() == {"invocation_id": "worker-inv-1"}
    with context(invocation_id="explicit"):
        assert log_context.current()["invocation_id"] == "explicit"


def test_console_mode_adds_one_handler_writing_json_to_the_current_stderr(capsys):
    root = logging.getLogger()
    before = len(root.handlers)
    configure_logging(console=True, level="INFO", host=False, telemetry=False)
    configure_logging(console=True, host=False, telemetry=False)  # idempotent
    assert len(root.handlers) == before + 1
    with context(correlation_id="corr-console"):
        logging.getLogger("tests.console").info("token %s", JWT)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["logger"] == "tests.console"]
    assert len(mine) == 1
    assert mine[0]["message"] == "token [REDACTED]" and mine[0]["correlation_id"] == "corr-console"
    assert any(isinstance(f, RedactionFilter) for f in root.filters)


def test_standalone_without_console_adds_no_handler():
    root = logging.getLogger()
    before = list(root.handlers)
    configure_logging(host=False, telemetry=False)
    assert root.handlers == before
    assert any(isinstance(f, RedactionFilter) for f in root.filters)  # redaction is always installed


def test_under_the_worker_its_handler_is_adopted_and_nothing_is_added(monkeypatch):
    monkeypatch.setitem(sys.modules, "azure_functions_worker", types.ModuleType("azure_functions_worker"))
    assert under_functions_host()
    root = logging.getLogger()
    stream = io.StringIO()
    worker_handler = logging.StreamHandler(stream)  # stands in for the worker's gRPC handler
    root.handlers[:] = [worker_handler]  # as in the worker, where it is the only one (not pytest's)
    count = len(root.handlers)

    configure_logging(console=True, level="INFO", telemetry=False)  # console is ignored under the worker
    configure_logging(telemetry=False)

    assert len(root.handlers) == count
    assert isinstance(worker_handler.formatter, JsonFormatter)
    assert sum(isinstance(f, ContextFilter) for f in worker_handler.filters) == 1
    assert any(isinstance(f, RedactionFilter) for f in worker_handler.filters)
    with context(invocation_id="inv-host", tenant="fabrikam"):
        logging.getLogger("tests.host").warning("Bearer %s", JWT)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1  # exactly one copy of the line
    assert lines[0]["invocation_id"] == "inv-host" and lines[0]["tenant"] == "fabrikam"
    assert JWT not in stream.getvalue()


def test_log_format_setting(monkeypatch, capsys, caplog):
    monkeypatch.setenv("MCAS_LOG_FORMAT", "text")
    configure_logging(console=True, level="INFO", host=False, telemetry=False)
    logging.getLogger("tests.text").info("plain")
    assert "INFO tests.text: plain" in capsys.readouterr().err
    remove_console_handler()

    monkeypatch.setenv("MCAS_LOG_FORMAT", "yaml")
    configure_logging(console=True, level="INFO", host=False, telemetry=False)
    assert "MCAS_LOG_FORMAT must be json or text, got 'yaml'; using json" in caplog.text
    logging.getLogger("tests.text").info("structured again")
    assert json.loads(capsys.readouterr().err.splitlines()[-1])["message"] == "structured again"


def test_importing_the_logging_modules_imports_no_sdk():
    import subprocess

    code = (
        "import sys; from shared.logging_setup import configure_logging; configure_logging(console=True); "
        "import logging; logging.getLogger('x').info('hi'); "
        "roots = ('azure', 'msal', 'requests', 'opentelemetry'); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in roots]; "
        "print(heavy)"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "APPLICATIONINSIGHTS_CONNECTION_STRING"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
