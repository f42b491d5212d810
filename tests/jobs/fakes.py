"""In-memory stand-ins at the SDK boundary: a Table with ETags, a blob store, a queue, a JWKS client.

They mimic exactly the azure-data-tables behaviours the job stores rely on (409 on a duplicate insert, 412 on
a stale ETag, 404 on a missing entity), so unit tests exercise the real store code in milliseconds.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError


class Entity(dict[str, Any]):
    metadata: dict[str, Any]


class FakeTable:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self._lock = threading.Lock()
        self._etags = itertools.count(1)
        self.calls = 0

    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'

    def create_entity(self, entity: dict[str, Any], **_: Any) -> dict[str, Any]:
        key = (entity["PartitionKey"], entity["RowKey"])
        with self._lock:
            self.calls += 1
            if key in self._rows:
                raise ResourceExistsError("EntityAlreadyExists")
            etag = self._etag()
            self._rows[key] = (dict(entity), etag)
        return {"etag": etag}

    def get_entity(self, partition_key: str, row_key: str, **_: Any) -> Entity:
        with self._lock:
            self.calls += 1
            found = self._rows.get((partition_key, row_key))
        if found is None:
            raise ResourceNotFoundError("ResourceNotFound")
        entity = Entity(found[0])
        entity.metadata = {"etag": found[1]}
        return entity

    def update_entity(self, entity: dict[str, Any], mode: Any = None, **kwargs: Any) -> dict[str, Any]:
        key = (entity["PartitionKey"], entity["RowKey"])
        with self._lock:
            self.calls += 1
            found = self._rows.get(key)
            if found is None:
                raise ResourceNotFoundError("ResourceNotFound")
            if (
                kwargs.get("match_condition") == MatchConditions.IfNotModified
                and kwargs.get("etag") != found[1]
            ):
                raise ResourceModifiedError("UpdateConditionNotSatisfied")
            etag = self._etag()
            self._rows[key] = (dict(entity), etag)
        return {"etag": etag}

    def delete_entity(self, partition_key: str, row_key: str, **kwargs: Any) -> None:
        key = (partition_key, row_key)
        with self._lock:
            self.calls += 1
            found = self._rows.get(key)
            if found is None:
                return
            if (
                kwargs.get("match_condition") == MatchConditions.IfNotModified
                and kwargs.get("etag") != found[1]
            ):
                raise ResourceModifiedError("UpdateConditionNotSatisfied")
            del self._rows[key]

    def rows(self, row_key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entity) for (_, rk), (entity, _) in self._rows.items() if rk == row_key]


class FakeBlobs:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put(self, name: str, data: bytes) -> None:
        self.data[name] = data

    def get(self, name: str) -> bytes | None:
        return self.data.get(name)


class FakeQueue:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.fail = False

    def send(self, text: str) -> None:
        if self.fail:
            from azure.core.exceptions import ServiceRequestError

            raise ServiceRequestError("queue unreachable")
        self.messages.append(text)
