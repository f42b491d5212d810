"""`mcasctl deadletters list | show ID | replay ID [--queue NAME]`: inspect and replay the dead-letter store.

- `list [--source NAME] [--json]`: one line per letter (id, time, source, correlation id, reason), newest
  first; never the message bodies.
- `show ID [--json]`: every field of one letter, the body pretty-printed when it is JSON.
- `replay ID [--queue NAME] [--force] [--json]`: put the original body back on the queue it came from (a
  `<queue>-poison` source goes back to `<queue>`), or onto NAME, then delete the letter. Only queues that a
  function of this app reads are accepted (a mistyped name would create a queue nobody reads and lose the
  letter); `--force` allows any queue. The letter is deleted only after the message was queued.

Everything printed goes through the auth helper's redaction, so a body that carried a token or a signature
does not put it on an operator's screen. An unknown id exits non-zero with a one-line reason.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from mcasctl.errors import UsageError
from mcasctl.subcommand import add_documented
from shared.auth.redaction import install_redaction, redact
from shared.errors import ValidationError

_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_REASON_WIDTH = 80


def register(subparsers: Any) -> None:
    parser = add_documented(
        subparsers, "deadletters", help_text="list, show and replay dead-lettered messages", doc=__doc__
    )
    commands = parser.add_subparsers(dest="deadletters_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list dead letters (newest first), without bodies")
    listing.add_argument("--source", metavar="NAME", help="only letters from this queue or endpoint")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=run_list)

    show = commands.add_parser("show", help="show one dead letter with its original body")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=run_show)

    replay = commands.add_parser("replay", help="put a dead letter back on its queue and delete it")
    replay.add_argument("id", metavar="ID")
    replay.add_argument("--queue", metavar="NAME", help="replay onto this queue instead of the original")
    replay.add_argument(
        "--force", action="store_true", help="allow a queue no function reads (created if missing)"
    )
    replay.add_argument("--json", action="store_true", help="print the result as JSON")
    replay.set_defaults(handler=run_replay)


def _summary(letter: Any) -> dict[str, Any]:
    return {
        "id": letter.id,
        "received_at": letter.received_at,
        "source": letter.source,
        "correlation_id": letter.correlation_id,
        "reason": redact(letter.reason),
        "dequeue_count": letter.dequeue_count,
    }


def run_list(args: argparse.Namespace) -> int:
    from shared.deadletters import list_letters

    install_redaction()
    letters = [letter for letter in list_letters() if not args.source or letter.source == args.source]
    letters.sort(key=lambda letter: letter.received_at, reverse=True)
    rows = [_summary(letter) for letter in letters]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no dead letters" + (f" from {args.source}" if args.source else ""))
        return 0
    for row in rows:
        reason = " ".join(row["reason"].split())
        if len(reason) > _REASON_WIDTH:
            reason = reason[: _REASON_WIDTH - 1] + "…"
        print(f"{row['id']}  {row['received_at']}  {row['source']}  {row['correlation_id'] or '-'}  {reason}")
    print(f"{len(rows)} dead letter(s)")
    return 0


def _body_for_display(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


def run_show(args: argparse.Namespace) -> int:
    from shared.deadletters import get_letter

    install_redaction()
    letter = get_letter(args.id)
    detail = {**_summary(letter), "message_id": letter.message_id, "body": _body_for_display(letter.body)}
    if args.json:
        print(redact(json.dumps(detail, indent=2, ensure_ascii=False)))
        return 0
    for key in ("id", "received_at", "source", "correlation_id", "message_id", "dequeue_count", "reason"):
        value = detail[key]
        print(f"{key + ':':<16}{'-' if value in (None, '') else value}")
    body = detail["body"]
    shown = json.dumps(body, indent=2, ensure_ascii=False) if not isinstance(body, str) else body
    print("body:")
    print(redact(shown))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from shared.deadletters import get_letter, replay

    install_redaction()
    letter = get_letter(args.id)
    target = args.queue or letter.source.removesuffix("-poison")
    if not _QUEUE_NAME.match(target):
        hint = "" if args.queue else "; pass --queue NAME to choose the queue"
        raise ValidationError(f"{target!r} is not a valid queue name{hint}")
    readable = trigger_queues()
    if target not in readable and not args.force:
        raise UsageError(
            "--queue",
            f"{target!r} is not a queue any function reads ({', '.join(sorted(readable))}); the dead letter "
            "was kept. Pass --force to replay onto it anyway",
        )
    replay(letter.id, queue=target, create_queue=args.force or target in readable)
    if args.json:
        print(json.dumps({"id": letter.id, "queue": target, "replayed": True}))
    else:
        print(f"replayed dead letter {letter.id} to queue {target}")
    sys.stdout.flush()
    return 0


def trigger_queues() -> set[str]:
    """The queues a function of this app is triggered by (poison queues excluded: they only dead-letter)."""
    from localdev.host.index import app_functions
    from mcasctl.host_cmd import _load_app

    names: set[str] = set()
    for function in app_functions(_load_app()):
        for binding in function.get_bindings():
            spec = binding.get_dict_repr()
            if spec.get("type") == "queueTrigger" and not str(spec.get("queueName")).endswith("-poison"):
                names.add(str(spec["queueName"]))
    return names
