"""`mcasctl deadletters list | show | replay` over Azurite: letters are listed, shown without secrets,
replayed onto their original queue (the `-poison` suffix stripped) or a chosen one, and then removed.

The dead-letter container is shared with every other test of the session, so each test uses its own
uniquely named source queue and filters on it.
"""

from __future__ import annotations

import json
import uuid

import pytest

from mcasctl import cli
from shared.deadletters import dead_letter, get_letter
from shared.errors import ValidationError
from shared.storage import queue_client

# Shaped like a bearer token and a webhook signature; neither may reach the operator's screen.
FAKE_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJkZWFkbGV0dGVyLXRlc3QifQ.c2lnbmF0dXJlLW9mLXRoZS10ZXN0"
FAKE_SIGNATURE = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="


@pytest.fixture
def run(app_env, monkeypatch, capsys):
    """Run `mcasctl deadletters ...`; registers the command group if cli.py does not list it yet."""
    if "mcasctl.deadletters_cmd" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "mcasctl.deadletters_cmd"))

    def invoke(*argv: str) -> tuple[int, str, str]:
        code = cli.main(["deadletters", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture
def queue_name() -> str:
    return f"dlq-test-{uuid.uuid4().hex[:12]}"


def _drain(name: str) -> list[str]:
    client = queue_client(name)
    bodies = []
    for message in client.receive_messages(max_messages=32):
        bodies.append(message.content)
        client.delete_message(message)
    return bodies


def _letter(queue: str, body: str, *, message_id: str | None = None, reason: str = "exhausted its retries"):
    return dead_letter(
        source=f"{queue}-poison",
        reason=reason,
        body=body,
        message_id=message_id or uuid.uuid4().hex,
        dequeue_count=5,
    )


def test_list_shows_letters_of_a_source_without_bodies(run, queue_name):
    first = _letter(queue_name, json.dumps({"job": 1, "correlationId": "corr-1"}), reason="bad tenant")
    second = _letter(queue_name, json.dumps({"job": 2, "token": FAKE_JWT}))
    _letter(f"{queue_name}-other", "{}")

    code, out, err = run("list", "--source", f"{queue_name}-poison")
    assert (code, err) == (0, "")
    assert first.id in out and second.id in out
    assert "corr-1" in out and "bad tenant" in out
    assert '"job"' not in out and FAKE_JWT not in out  # bodies are for `show`
    assert out.strip().endswith("2 dead letter(s)")

    code, out, _ = run("list", "--source", f"{queue_name}-poison", "--json")
    rows = json.loads(out)
    assert code == 0
    assert {row["id"] for row in rows} == {first.id, second.id}
    assert all(row["source"] == f"{queue_name}-poison" and row["dequeue_count"] == 5 for row in rows)
    assert {row["correlation_id"] for row in rows} == {"corr-1", None}


def test_show_prints_every_field_and_the_body_with_secrets_redacted(run, queue_name):
    body = {"tenant": "contoso", "callback": {"token": FAKE_JWT}, "signature": FAKE_SIGNATURE}
    letter = _letter(queue_name, json.dumps(body), reason="terminal API error: 403")

    code, out, err = run("show", letter.id)
    assert (code, err) == (0, "")
    assert f"id:             {letter.id}" in out
    assert f"source:         {queue_name}-poison" in out
    assert "reason:         terminal API error: 403" in out
    assert '"tenant": "contoso"' in out
    assert FAKE_JWT not in out and FAKE_SIGNATURE not in out
    assert "[REDACTED]" in out

    code, out, _ = run("show", letter.id, "--json")
    shown = json.loads(out)
    assert code == 0
    assert shown["id"] == letter.id and shown["body"]["tenant"] == "contoso"
    assert FAKE_JWT not in out and FAKE_SIGNATURE not in out


def _take(name: str, body: str) -> bool:
    """Remove `body` from queue `name` (other tests' messages are left alone); True if it was there."""
    client = queue_client(name)
    found = False
    for message in client.receive_messages(max_messages=32, visibility_timeout=1):
        if message.content == body:
            client.delete_message(message)
            found = True
    return found


def test_replay_puts_the_body_back_on_the_original_queue_and_removes_the_letter(run):
    from shared.storage import QUEUE_ALERT_PULL_JOBS

    body = json.dumps({"job": f"replay-me-{uuid.uuid4().hex}", "correlationId": "corr-replay"})
    letter = _letter(QUEUE_ALERT_PULL_JOBS, body)

    code, out, err = run("replay", letter.id)
    assert (code, err) == (0, "")
    assert out.strip() == f"replayed dead letter {letter.id} to queue {QUEUE_ALERT_PULL_JOBS}"
    assert _take(QUEUE_ALERT_PULL_JOBS, body)  # the original body, unchanged, on the queue without -poison
    with pytest.raises(ValidationError, match="no dead letter"):
        get_letter(letter.id)


def test_replay_onto_another_queue_needs_force(run, queue_name):
    letter = _letter(queue_name, "plain text body")
    target = f"{queue_name}-elsewhere"

    code, out, _ = run("replay", letter.id, "--queue", target, "--force", "--json")
    assert code == 0 and json.loads(out) == {"id": letter.id, "queue": target, "replayed": True}
    assert _drain(target) == ["plain text body"]
    assert _drain(queue_name) == []


def test_replay_to_a_queue_no_function_reads_is_refused_and_keeps_the_letter(run, queue_name):
    from azure.core.exceptions import ResourceNotFoundError

    letter = _letter(queue_name, "keep me")
    typo = "no-such-queue-" + uuid.uuid4().hex[:8]

    code, out, err = run("replay", letter.id, "--queue", typo)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"{typo!r} is not a queue any function reads" in err and "mcas-jobs" in err
    assert get_letter(letter.id).body == "keep me"  # not deleted
    with pytest.raises(ResourceNotFoundError):
        queue_client(typo, create=False).get_queue_properties()  # and no queue was created


def test_replay_deletes_the_letter_only_after_the_message_was_queued(app_env, queue_name):
    from shared.deadletters import replay

    letter = _letter(queue_name, "still here")
    with pytest.raises(ValidationError, match="does not exist; the dead letter was kept"):
        replay(letter.id, queue=f"{queue_name}-missing")
    assert get_letter(letter.id).body == "still here"


@pytest.mark.parametrize("action", ["show", "replay"])
def test_unknown_id_exits_non_zero_with_a_one_line_reason(run, action):
    code, out, err = run(action, "0" * 32)
    assert code == 1 and out == ""
    assert err == f"mcasctl deadletters: error: no dead letter with id {'0' * 32}\n"

    code, _, err = run(action, "../etc/passwd")
    assert code == 1 and err.count("\n") == 1 and "must be alphanumeric" in err


def test_replay_of_a_letter_from_an_endpoint_needs_an_explicit_queue(run):
    letter = dead_letter(
        source="POST /api/jobs", reason="invalid body", body="{}", message_id=uuid.uuid4().hex
    )
    try:
        code, _, err = run("replay", letter.id)
        assert code == 1 and err.count("\n") == 1
        assert "is not a valid queue name; pass --queue NAME" in err
        assert get_letter(letter.id).id == letter.id  # still there
    finally:
        code, _, _ = run("replay", letter.id, "--queue", f"dlq-test-{uuid.uuid4().hex[:12]}", "--force")
        assert code == 0
