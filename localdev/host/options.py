"""host.json settings the local host honours, with the Functions host's defaults when a key is absent."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ConfigurationError

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


def timespan_seconds(value: object, name: str) -> float:
    """A host.json TimeSpan (`[d.]hh:mm:ss[.fff]`) in seconds; a bare number means milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0
    match = _TIMESPAN.match(str(value).strip())
    if not match:
        raise ConfigurationError(f"host.json {name}", f"must be a TimeSpan like 00:00:30, got {value!r}")
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return total + (float(f"0.{fraction}") if fraction else 0.0)


@dataclass(frozen=True)
class HostOptions:
    """`extensions.queues`, `extensions.http.routePrefix`, `functionTimeout`; defaults are the host's own."""

    batch_size: int = 16
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0  # delay before a failed message is retried
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"
    function_timeout: float = 300.0  # also the lease a received message holds while it is processed
    route_prefix: str = "api"

    @classmethod
    def from_mapping(cls, host_json: Mapping[str, Any]) -> HostOptions:
        queues = host_json.get("extensions", {}).get("queues", {})
        defaults = cls()
        options = cls(
            batch_size=int(queues.get("batchSize", defaults.batch_size)),
            max_dequeue_count=int(queues.get("maxDequeueCount", defaults.max_dequeue_count)),
            visibility_timeout=timespan_seconds(
                queues.get("visibilityTimeout", "00:00:00"), "extensions.queues.visibilityTimeout"
            ),
            max_polling_interval=timespan_seconds(
                queues.get("maxPollingInterval", "00:01:00"), "extensions.queues.maxPollingInterval"
            ),
            message_encoding=str(queues.get("messageEncoding", defaults.message_encoding)).lower(),
            function_timeout=timespan_seconds(
                host_json.get("functionTimeout", "00:05:00"), "functionTimeout"
            ),
            route_prefix=str(host_json.get("extensions", {}).get("http", {}).get("routePrefix", "api")).strip(
                "/"
            ),
        )
        if not 1 <= options.batch_size <= 32:
            raise ConfigurationError("host.json extensions.queues.batchSize", "must be between 1 and 32")
        if options.max_dequeue_count < 1:
            raise ConfigurationError("host.json extensions.queues.maxDequeueCount", "must be at least 1")
        if options.message_encoding not in ("base64", "none"):
            raise ConfigurationError("host.json extensions.queues.messageEncoding", "must be base64 or none")
        return options

    @classmethod
    def load(cls, source: Path | Mapping[str, Any] | None) -> HostOptions:
        if source is None:
            return cls()
        if isinstance(source, Path):
            try:
                data = json.loads(source.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigurationError(str(source), f"cannot be read as JSON ({exc})") from None
            return cls.from_mapping(data)
        return cls.from_mapping(source)
