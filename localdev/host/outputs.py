"""Storage-queue plumbing shared by queue triggers and output bindings: raw clients per connection setting,
the host.json message encoding, and turning captured `func.Out` values into queue messages."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueServiceClient

from localdev.host.index import FunctionSpec, QueueOutput, resolve_setting_expressions
from localdev.host.invoke import CapturingOut
from shared.errors import ConfigurationError


def encode_body(body: bytes, encoding: str) -> str:
    return base64.b64encode(body).decode("ascii") if encoding == "base64" else body.decode("utf-8")


def decode_body(wire: str, encoding: str) -> bytes:
    if encoding == "base64":
        try:
            return base64.b64decode(wire, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "queue message is not valid base64 (host.json messageEncoding is base64)"
            ) from None
    return wire.encode("utf-8")


def output_messages(value: Any) -> list[bytes]:
    """What an output binding value becomes: str/bytes/QueueMessage/JSON-able, or a list of those."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [body for item in value for body in output_messages(item)]
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, str):
        return [value.encode("utf-8")]
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    return [json.dumps(value).encode("utf-8")]


class StorageQueues:
    """Queue clients without SDK encode/decode policies: the host does the (base64) encoding itself, so a
    poisoned message can be copied byte for byte."""

    def __init__(self, env: Mapping[str, str], encoding: str) -> None:
        self.env = env
        self.encoding = encoding
        self._services: dict[str, QueueServiceClient] = {}
        self._lock = threading.Lock()

    def client(self, connection: str, queue_name: str) -> QueueClient:
        with self._lock:
            service = self._services.get(connection)
            if service is None:
                value = self.env.get(connection) or self.env.get(f"AzureWebJobs{connection}")
                if not value or "=" not in value:
                    raise ConfigurationError(
                        connection, "must be a storage connection string for the local host (e.g. Azurite's)"
                    )
                service = QueueServiceClient.from_connection_string(value)
                self._services[connection] = service
        return service.get_queue_client(queue_name)

    def bind(self, spec: FunctionSpec) -> BoundOutputs:
        what = f"function {spec.name}"
        return BoundOutputs(
            self,
            tuple(
                (
                    out,
                    self.client(
                        out.connection, resolve_setting_expressions(out.queue_name, self.env, what=what)
                    ),
                )
                for out in spec.outputs
            ),
        )

    @staticmethod
    def ensure(client: QueueClient) -> None:
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()

    def send_wire(self, client: QueueClient, wire: str) -> None:
        """Send an already-encoded body, creating the queue if it is missing (as the host's bindings do)."""
        try:
            client.send_message(wire)
        except ResourceNotFoundError:
            self.ensure(client)
            client.send_message(wire)

    def send(self, client: QueueClient, body: bytes) -> None:
        self.send_wire(client, encode_body(body, self.encoding))

    def close(self) -> None:
        with self._lock:
            for service in self._services.values():
                service.close()
            self._services.clear()


@dataclass(frozen=True)
class BoundOutputs:
    """A function's queue output bindings with their clients."""

    queues: StorageQueues
    outputs: tuple[tuple[QueueOutput, QueueClient], ...]

    def arguments(self) -> dict[str, CapturingOut]:
        return {out.arg_name: CapturingOut() for out, _ in self.outputs if out.arg_name != "$return"}

    def flush(self, arguments: Mapping[str, CapturingOut], result: Any) -> None:
        """After a successful invocation: send what each binding captured (the return value for `$return`)."""
        for out, client in self.outputs:
            value = result if out.arg_name == "$return" else arguments[out.arg_name].value
            for body in output_messages(value):
                self.queues.send(client, body)

    def ensure(self) -> None:
        for _, client in self.outputs:
            self.queues.ensure(client)
