"""Discovery settings: the documented limits, scaled down for tests but never above the service's."""

from __future__ import annotations

import pytest

from shared.discovery.config import DiscoveryConfig
from shared.errors import ConfigurationError


class TestConfig:
    def test_defaults_are_the_documented_limits(self) -> None:
        config = DiscoveryConfig.from_getter(lambda name, default: default)
        assert (config.max_file_bytes, config.single_put_bytes) == (5_000_000_000, 64 * 1024 * 1024)

    def test_limits_scale_down_but_not_above_the_service_limit(self) -> None:
        env = {
            "MCAS_DISCOVERY_MAX_FILE_BYTES": "4096",
            "MCAS_DISCOVERY_SINGLE_PUT_BYTES": "1024",
            "MCAS_DISCOVERY_BLOCK_BYTES": "256",
        }
        config = DiscoveryConfig.from_getter(env.get)
        assert (config.max_file_bytes, config.single_put_bytes, config.block_bytes) == (4096, 1024, 256)
        with pytest.raises(ConfigurationError, match="MCAS_DISCOVERY_MAX_FILE_BYTES"):
            DiscoveryConfig.from_getter(lambda name, default: "6000000000" if "MAX_FILE" in name else default)
        with pytest.raises(
            ConfigurationError, match="MCAS_DISCOVERY_UPLOAD_CONCURRENCY must be between 1 and 16"
        ):
            DiscoveryConfig.from_getter(lambda name, default: "0" if "CONCURRENCY" in name else default)
