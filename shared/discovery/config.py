"""Discovery settings, validated here because this feature owns them (read through `Settings.get`).

Limits default to the documented service limits (5 GB per file, 64 MB per single Azure PUT); the byte settings
exist so tests and benchmarks can scale them down instead of moving gigabytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.discovery.sources import EXTRA_SOURCES_SETTING, parse_extra_sources
from shared.errors import ConfigurationError
from shared.storage import CONTAINER_DISCOVERY_LOGS

MAX_FILE_BYTES = 5_000_000_000  # "5 GB per file" (decimal, the safe reading of the docs)
SINGLE_PUT_BYTES = 64 * 1024 * 1024  # Azure: one Put Blob up to 64 MB, staged blocks above

EXTRA_CONTAINERS_SETTING = "MCAS_DISCOVERY_EXTRA_CONTAINERS"

Getter = Callable[[str, str | None], str | None]


@dataclass(frozen=True)
class DiscoveryConfig:
    container: str = CONTAINER_DISCOVERY_LOGS
    max_file_bytes: int = MAX_FILE_BYTES
    single_put_bytes: int = SINGLE_PUT_BYTES
    block_bytes: int = 4 * 1024 * 1024
    concurrency: int = 4
    put_attempts: int = 3
    time_budget_s: float = 480.0
    retry_base_s: float = 1.0
    extra_sources: frozenset[str] = frozenset()
    extra_containers: frozenset[str] = frozenset()  # beyond `container`, readable by explicit upload jobs

    @property
    def job_containers(self) -> frozenset[str]:
        """The containers an explicit `discovery.upload` job may name."""
        return frozenset({self.container}) | self.extra_containers

    @classmethod
    def from_getter(cls, get: Getter) -> DiscoveryConfig:
        """Build from `Settings.get` (or any `get(name, default)`), failing with the setting's name."""
        return cls(
            container=_container(get("MCAS_DISCOVERY_CONTAINER", None) or CONTAINER_DISCOVERY_LOGS),
            max_file_bytes=_int(get, "MCAS_DISCOVERY_MAX_FILE_BYTES", MAX_FILE_BYTES, 2, MAX_FILE_BYTES),
            single_put_bytes=_int(
                get, "MCAS_DISCOVERY_SINGLE_PUT_BYTES", SINGLE_PUT_BYTES, 1, 256 * 1024 * 1024
            ),
            block_bytes=_int(get, "MCAS_DISCOVERY_BLOCK_BYTES", 4 * 1024 * 1024, 1, 100 * 1024 * 1024),
            concurrency=_int(get, "MCAS_DISCOVERY_UPLOAD_CONCURRENCY", 4, 1, 16),
            put_attempts=_int(get, "MCAS_DISCOVERY_PUT_ATTEMPTS", 3, 1, 10),
            time_budget_s=_float(get, "MCAS_DISCOVERY_TIME_BUDGET_SECONDS", 480.0, 1.0, 3600.0),
            retry_base_s=_float(get, "MCAS_DISCOVERY_RETRY_BASE_SECONDS", 1.0, 0.0, 60.0),
            extra_sources=parse_extra_sources(get(EXTRA_SOURCES_SETTING, None)),
            extra_containers=_extra_containers(get(EXTRA_CONTAINERS_SETTING, None)),
        )


def discovery_config() -> DiscoveryConfig:
    """The worker's discovery settings (cheap: the settings object is cached)."""
    from shared.settings import get_settings

    return DiscoveryConfig.from_getter(get_settings().get)


def _container(name: str, setting: str = "MCAS_DISCOVERY_CONTAINER") -> str:
    name = name.strip()
    ok = 3 <= len(name) <= 63 and name.replace("-", "").isalnum() and name == name.lower()
    if not ok or name.startswith("-") or name.endswith("-") or "--" in name:
        raise ConfigurationError(setting, f"is not a valid blob container name: {name!r}")
    if name.startswith("azure-webjobs-"):
        raise ConfigurationError(setting, f"must not name the Functions host's own container {name!r}")
    return name


def _extra_containers(raw: str | None) -> frozenset[str]:
    names = [part for part in (raw or "").replace(",", " ").split() if part]
    return frozenset(_container(name, EXTRA_CONTAINERS_SETTING) for name in names)


def _int(get: Getter, name: str, default: int, low: int, high: int) -> int:
    raw = get(name, None)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise ConfigurationError(name, f"must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(name, f"must be between {low} and {high}, got {value}")
    return value


def _float(get: Getter, name: str, default: float, low: float, high: float) -> float:
    raw = get(name, None)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(name, f"must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(name, f"must be between {low} and {high}, got {value}")
    return value
