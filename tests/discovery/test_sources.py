"""Source ids: the current and legacy names, extra sources from the settings."""

from __future__ import annotations

import logging

import pytest

from shared.discovery.sources import CURRENT_SOURCES, LEGACY_SOURCES, parse_extra_sources, validate_source
from shared.errors import ConfigurationError, ValidationError


class TestSources:
    def test_the_documented_list_has_71_ids_and_13_legacy(self) -> None:
        assert len(CURRENT_SOURCES) == 71
        assert len(LEGACY_SOURCES) == 13
        assert not CURRENT_SOURCES & LEGACY_SOURCES

    def test_current_id_is_normalised_to_upper_case(self) -> None:
        assert validate_source(" palo_alto ") == "PALO_ALTO"

    def test_legacy_id_is_accepted_with_a_warning(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING):
            assert validate_source("ZSCALER_CEF") == "ZSCALER_CEF"
        assert "no longer in the documented list" in caplog.text

    def test_unknown_id_is_refused_with_a_hint(self) -> None:
        with pytest.raises(
            ValidationError, match=r"unknown source type 'PALO_ALTOO' \(did you mean PALO_ALTO\?\)"
        ):
            validate_source("PALO_ALTOO")

    def test_override_setting_allows_ids_the_docs_lag_on(self) -> None:
        extra = parse_extra_sources("IBOSS_SYSLOG, fortios")
        assert validate_source("IBOSS_SYSLOG", extra=extra) == "IBOSS_SYSLOG"
        with pytest.raises(ConfigurationError, match="MCAS_DISCOVERY_EXTRA_SOURCES"):
            parse_extra_sources("GOOD, bad id!")
