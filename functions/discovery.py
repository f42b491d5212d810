"""Discovery blueprint: the upload queue and its poison queue.

`discovery_upload` takes explicit jobs and Event Grid BlobCreated events from the discovery queue and hands
each message to `shared.discovery.handler`; an exception from there means "retry" (the host redelivers, and
after `maxDequeueCount` moves the message to `<queue>-poison`). `discovery_upload_poison` moves those into
the dead-letter store with the reason "exhausted retries", so nothing is retried forever or lost.
"""

from __future__ import annotations

import azure.functions as func

from shared.log_context import log_context
from shared.storage import QUEUE_DISCOVERY_JOBS

POISON_QUEUE = f"{QUEUE_DISCOVERY_JOBS}-poison"

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated


@bp.function_name(name="discovery_upload")
@bp.queue_trigger(arg_name="msg", queue_name=QUEUE_DISCOVERY_JOBS, connection="AzureWebJobsStorage")
def discovery_upload(msg: func.QueueMessage, context: func.Context) -> None:
    from shared.discovery.handler import handle_discovery_message  # on first message, not at indexing

    with log_context(invocation_id=context.invocation_id):  # the handler adds tenant and correlation id
        handle_discovery_message(msg.get_body(), message_id=msg.id, dequeue_count=_dequeue_count(msg))


@bp.function_name(name="discovery_upload_poison")
@bp.queue_trigger(arg_name="msg", queue_name=POISON_QUEUE, connection="AzureWebJobsStorage")
def discovery_upload_poison(msg: func.QueueMessage, context: func.Context) -> None:
    from shared.discovery.handler import handle_poison_message

    with log_context(invocation_id=context.invocation_id):
        handle_poison_message(msg.get_body(), message_id=msg.id, dequeue_count=_dequeue_count(msg))


def _dequeue_count(msg: func.QueueMessage) -> int | None:
    count = getattr(msg, "dequeue_count", None)
    return int(count) if count is not None else None
