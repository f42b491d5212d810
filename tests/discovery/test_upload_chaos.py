"""Cloud Discovery uploads under chaos, through the local Functions host (queue polling, retries, poison
queues), while the API answers 10% 5xx, drops 5% of connections, throttles in a burst and stalls now and then,
and the upload storage fails PUTs.

What must hold: every upload finishes; nothing is dead-lettered or left in a poison queue; no log part is
finalized twice (checked by SHA-256 in the simulator's record of finished uploads).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from shared.storage import CONTAINER_DISCOVERY_LOGS, QUEUE_DISCOVERY_JOBS, container_client, queue_client
from tests.fixtures.chaos import ChaosEnv, api_faults, chaos_host

pytestmark = pytest.mark.chaos

KIB = 1024


def _log(size: int, marker: str) -> bytes:
    lines = bytearray()
    number = 0
    while len(lines) < size:
        number += 1
        lines += (
            f"2024-05-01 10:00:00,{marker},{number:08d},TRAFFIC,end,10.0.0.1,52.1.2.3,allow,443\n".encode()
        )
    return bytes(lines[:size]).rstrip(b"\n") + b"\n"


@pytest.fixture
def discovery_chaos(chaos_env: ChaosEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChaosEnv]:
    from shared.caches import reset_all_caches

    monkeypatch.setenv("MCAS_DISCOVERY_MAX_FILE_BYTES", str(48 * KIB))  # bigger files: several parts
    monkeypatch.setenv("MCAS_DISCOVERY_PUT_ATTEMPTS", "3")
    reset_all_caches()
    for name in (QUEUE_DISCOVERY_JOBS, f"{QUEUE_DISCOVERY_JOBS}-poison"):
        queue_client(name).clear_messages()
    yield chaos_env


def _part_hashes(data: bytes, max_part: int, tmp_path: Any) -> list[str]:
    """SHA-256 of each part, split as the uploader splits (its own planner, on a local copy)."""
    from shared.discovery.content import FileSource, plan_content

    path = tmp_path / f"{uuid.uuid4().hex}.log"
    path.write_bytes(data)
    plan = plan_content(FileSource(path), max_part)
    return [hashlib.sha256(data[p.start : p.end]).hexdigest() for p in plan.parts]


def test_discovery_uploads_finish_once_each_under_api_and_storage_faults(
    discovery_chaos: ChaosEnv, tmp_path: Any
) -> None:
    from functions import discovery
    from shared.deadletters import list_letters

    sim = discovery_chaos.sim
    marker = uuid.uuid4().hex
    files = {
        f"PALO_ALTO/paloalto-hq/{marker}-{n}.log": _log(size, f"{marker}-{n}")
        for n, size in enumerate([6 * KIB, 20 * KIB, 35 * KIB, 130 * KIB])
    }  # the last one: three parts
    expected = Counter(h for data in files.values() for h in _part_hashes(data, 48 * KIB, tmp_path))
    assert len(expected) == 6
    container = container_client(CONTAINER_DISCOVERY_LOGS)
    for name, data in files.items():
        container.upload_blob(name, data, overwrite=True)

    api_faults(sim)
    sim.add_fault(service="blob", reset_rate=1.0, count=1)  # the first PUT is cut off
    sim.add_fault(service="blob", error_rate=0.2, status=500, retry_after=0)  # then every 5th PUT fails

    host = chaos_host(discovery.bp).start(http=False, queues=False, timers=False)
    try:
        for name in files:
            job = {
                "action": "discovery.upload",
                "blob": f"{CONTAINER_DISCOVERY_LOGS}/{name}",
                "source": "PALO_ALTO",
                "stream": "paloalto-hq",
                "correlationId": f"chaos-{marker}",
            }
            queue_client(QUEUE_DISCOVERY_JOBS).send_message(json.dumps(job))
        stats = host.drain_queues(timeout=90)
    finally:
        host.stop()

    finished = Counter(u["sha256"] for u in sim.mda("contoso", "GET", "uploads")["uploads"])
    assert {h: finished[h] for h in expected} == dict(expected)  # every part finalized exactly once
    assert stats.poisoned == 0
    assert not [x for x in list_letters() if marker in x.body]
    fired = sim.counters()["faults"]
    assert fired.get("blob:error", 0) >= 1 and fired.get("blob:reset", 0) >= 1, fired
    assert fired.get("mda:throttle", 0) == 2 and fired.get("mda:error", 0) >= 1, fired
