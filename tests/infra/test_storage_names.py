"""The queues, tables and containers the code uses exist in infra/app/storage.bicep, with valid names.

With shared keys disabled, a missing queue or container is still created by the app at first use (its roles
allow it), but the Event Grid subscription and the dead-letter functions need theirs at deployment time.
"""

from __future__ import annotations

import re

from tests.infra import bicep_model as model

# Azure naming rules (Storage docs: "Naming queues and metadata", "Understanding the Table service data
# model", "Naming and referencing containers").
QUEUE_OR_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


def test_code_uses_only_declared_storage_names() -> None:
    layout = model.storage_layout()
    declared = {"queue": layout.all_queues, "table": set(layout.tables), "container": set(layout.containers)}
    missing = [read for read in model.code_storage_names() if read.name not in declared[read.how]]
    assert not missing, "add these to the lists at the top of infra/app/storage.bicep: " + ", ".join(
        f"{r.how} {r.name!r} ({r.where()})" for r in missing
    )


def test_scanner_sees_the_storage_constants() -> None:
    kinds = {read.how for read in model.code_storage_names()}
    assert kinds == {"queue", "table", "container"}


def test_discovery_events_target_the_code_s_container_and_queue() -> None:
    """Event Grid must watch the container the app reads and feed the queue the discovery function reads."""
    from shared import storage

    layout = model.storage_layout()
    assert layout.discovery_logs_container == storage.CONTAINER_DISCOVERY_LOGS
    assert layout.discovery_jobs_queue == storage.QUEUE_DISCOVERY_JOBS
    # storage.bicep outputs containers[0] / queues[0] so that the Event Grid module waits for them to exist.
    assert layout.containers[0] == layout.discovery_logs_container
    assert layout.queues[0] == layout.discovery_jobs_queue

    events = model.parse(model.INFRA_DIR / "app" / "discovery-events.bicep")["resources"]
    subscription = events["blobCreatedToQueue"]["config"]["properties"]
    assert subscription["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert (
        subscription["filter"]["subjectBeginsWith"]
        == "/blobServices/default/containers/${containerName}/blobs/"
    )
    destination = subscription["deliveryWithResourceIdentity"]["destination"]
    assert destination["endpointType"] == "StorageQueue"
    assert destination["properties"]["queueName"] == "queueName"


def test_names_follow_azure_naming_rules() -> None:
    layout = model.storage_layout()
    bad = [
        name
        for name in sorted(layout.all_queues | set(layout.containers))
        if not QUEUE_OR_CONTAINER.match(name)
    ]
    bad += [name for name in layout.tables if not TABLE.match(name)]
    assert not bad, f"invalid storage names: {bad}"


def test_infra_readme_lists_the_storage_names() -> None:
    readme = (model.INFRA_DIR / "README.md").read_text(encoding="utf-8")
    layout = model.storage_layout()
    missing = [
        name for name in (*layout.queues, *layout.tables, *layout.containers) if f"`{name}`" not in readme
    ]
    assert not missing, f"update the resource table in infra/README.md: {missing}"
