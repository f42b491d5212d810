"""Demo step for Cloud Discovery uploads, for `localdev/demo.py`'s STEPS:

    from localdev.demo_discovery import step_discovery
    STEPS.append(("discovery", step_discovery))

A firewall log (with a UTF-8 BOM) lands in the discovery container under `PALO_ALTO/paloalto-hq/`, the
BlobCreated event Event Grid would deliver goes on the discovery queue, the local host runs the queue
function, and the simulator - whose upload URLs point at the demo's Azurite - shows the finished
`done_upload`. The same event delivered again is acknowledged without a second upload.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Any

from shared.errors import McasError

STREAM = "paloalto-hq"  # a data source the simulator starts with
SOURCE = "PALO_ALTO"


def sample_log(lines: int = 2000) -> bytes:
    rows = (
        f"2024-05-01 10:{i // 60 % 60:02d}:{i % 60:02d},001801000001,TRAFFIC,end,10.1.{i % 200}.7,"
        f"52.{i % 250}.1.9,allow,web-browsing,{1000 + i},443\n"
        for i in range(lines)
    )
    return b"\xef\xbb\xbf" + "".join(rows).encode()


def blob_created_event(url: str) -> dict[str, Any]:
    return {
        "topic": "/subscriptions/demo/resourceGroups/demo/providers/Microsoft.Storage/storageAccounts/dev",
        "subject": "/blobServices/default/containers/mcas-discovery-logs/blobs/demo",
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": str(uuid.uuid4()),
        "eventTime": dt.datetime.now(dt.UTC).isoformat(),
        "data": {"api": "PutBlob", "url": url, "blobType": "BlockBlob"},
        "dataVersion": "",
        "metadataVersion": "1",
    }


def step_discovery(ctx: Any) -> str:
    tenant = ctx.env.get("MCAS_TENANT_NAME", "contoso")
    previous = ctx.simulator.mda(tenant, "GET", "discovery/config")
    ctx.simulator.mda(
        tenant, "POST", "discovery/config", {"azurite_blob_endpoint": ctx.azurite.blob_endpoint}
    )
    try:
        return _upload_through_the_queue(ctx, tenant)
    finally:  # leave a shared simulator as it was
        ctx.simulator.mda(tenant, "POST", "discovery/config", previous)


def _upload_through_the_queue(ctx: Any, tenant: str) -> str:
    from shared.discovery.config import discovery_config
    from shared.storage import QUEUE_DISCOVERY_JOBS, container_client, queue_client

    data = sample_log()
    expected = hashlib.sha256(data[3:]).hexdigest()  # what MDA must receive: the log without its BOM
    name = f"{SOURCE}/{STREAM}/fw-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}.log"
    blob = container_client(discovery_config().container).get_blob_client(name)
    blob.upload_blob(data, overwrite=True)
    event = json.dumps(blob_created_event(blob.url))
    queue = queue_client(QUEUE_DISCOVERY_JOBS)

    queue.send_message(event)
    first = ctx.host.drain_queues()
    finished = [u for u in ctx.simulator.mda(tenant, "GET", "uploads")["uploads"] if u["sha256"] == expected]
    if first.succeeded < 1 or len(finished) != 1:
        raise McasError(f"no finished upload for {name} (queue: {first})")

    queue.send_message(event)  # Event Grid delivers at least once
    second = ctx.host.drain_queues()
    again = [u for u in ctx.simulator.mda(tenant, "GET", "uploads")["uploads"] if u["sha256"] == expected]
    if second.succeeded < 1 or len(again) != 1:
        raise McasError(f"the redelivered event uploaded again ({len(again)} uploads)")
    upload = finished[0]
    return (
        f"BlobCreated {discovery_config().container}/{name} -> queue function -> done_upload\n"
        f"{upload['size']} bytes (BOM stripped) as {upload['source']} to data source {upload['stream']!r} "
        f"via {upload['provider']}/{upload['backend']}, sha256 {expected[:12]}\n"
        "same event again: acknowledged from the upload ledger, no second upload"
    )
