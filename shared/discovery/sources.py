"""The `source` ids `upload_url` accepts (https://learn.microsoft.com/defender-cloud-apps/api-discovery-initiate).

Clients validate against the 71 ids of the current docs. The 13 ids dropped from the docs in 2021 are still in
the service's logType table and in the wild, so they are accepted with a warning. The docs lag the portal
(MicrosoftDocs/CloudAppSecurityDocs#506), so operators can allow further ids with
`MCAS_DISCOVERY_EXTRA_SOURCES`.
"""

from __future__ import annotations

import logging
import re

from shared.errors import ConfigurationError, ValidationError

log = logging.getLogger(__name__)

CURRENT_SOURCES: frozenset[str] = frozenset(
    [
        "BARRACUDA",
        "BARRACUDA_NEXT_GEN_FW",
        "BARRACUDA_NEXT_GEN_FW_WEBLOG",
        "BARRACUDA_SYSLOG",
        "BLUECOAT",
        "BLUECOAT_SYSLOG",
        "CHECKPOINT",
        "CHECKPOINT_CEF_SYSLOG",
        "CHECKPOINT_SMART_VIEW_TRACKER",
        "CHECKPOINT_XML",
        "CISCO_ASA",
        "CISCO_ASA_FIREPOWER_SYSLOG",
        "CISCO_ASA_SYSLOG",
        "CISCO_FIREPOWER_V6_SYSLOG",
        "CISCO_FWSM",
        "CISCO_FWSM_SYSLOG",
        "CISCO_IRONPORT_PROXY",
        "CISCO_IRONPORT_PROXY_SYSLOG",
        "CISCO_IRONPORT_WSA_II",
        "CISCO_IRONPORT_WSA_III",
        "CISCO_SCAN_SAFE",
        "CLAVISTER_SYSLOG",
        "CONTENTKEEPER_SYSLOG",
        "CORRATA",
        "FORCEPOINT",
        "FORCEPOINT_LEEF_SYSLOG",
        "FORTIGATE",
        "FORTIGATE_SYSLOG",
        "FORTIOS_SYSLOG",
        "GENERIC_CEF",
        "GENERIC_CEF_SYSLOG",
        "GENERIC_LEEF",
        "GENERIC_LEEF_SYSLOG",
        "GENERIC_W3C",
        "GENERIC_W3C_SYSLOG",
        "IBOSS",
        "I_FILTER",
        "I_FILTER_SYSLOG",
        "JUNIPER_SRX_SD_SYSLOG",
        "JUNIPER_SRX_SYSLOG",
        "JUNIPER_SRX_WELF_SYSLOG",
        "JUNIPER_SSG_SYSLOG",
        "MACHINE_ZONE_MERAKI",
        "MACHINE_ZONE_MERAKI_SYSLOG",
        "MCAFEE_SWG",
        "MCAFEE_SWG_SYSLOG",
        "MENLO_SECURITY_CEF",
        "MICROSOFT_ISA_W3C",
        "OPEN_SYSTEMS_SECURE_WEB_GATEWAY",
        "PALO_ALTO",
        "PALO_ALTO_LEEF",
        "PALO_ALTO_LEEF_SYSLOG",
        "PALO_ALTO_SYSLOG",
        "SONICWALL_SYSLOG",
        "SOPHOS_CYBEROAM_SYSLOG",
        "SOPHOS_SG",
        "SOPHOS_SG_SYSLOG",
        "SOPHOS_XG",
        "SOPHOS_XG_SYSLOG",
        "SQUID",
        "SQUID_NATIVE",
        "SQUID_NATIVE_SYSLOG",
        "STORMSHIELD_SYSLOG",
        "WANDERA_SYSLOG",
        "WATCHGUARD_XTM_SYSLOG",
        "WEBSENSE_SIEM_CEF_SYSLOG",
        "WEBSENSE_V7_5",
        "ZSCALER",
        "ZSCALER_CEF_SYSLOG",
        "ZSCALER_QRADAR_SYSLOG",
        "ZSCALER_SYSLOG",
    ]
)

# Dropped from the docs by commit c783db91 (2021-12-29) but still logType names the service knows.
LEGACY_SOURCES: frozenset[str] = frozenset(
    [
        "CISCO_ASA_FIREPOWER",
        "CLAVISTER",
        "CUSTOM_PARSER",
        "FORCEPOINT_LEEF",
        "JUNIPER_SRX",
        "JUNIPER_SRX_SD",
        "JUNIPER_SRX_WELF",
        "JUNIPER_SSG",
        "SOPHOS_CYBEROAM",
        "STORMSHIELD",
        "WEBSENSE_SIEM_CEF",
        "ZSCALER_CEF",
        "ZSCALER_QRADAR",
    ]
)

EXTRA_SOURCES_SETTING = "MCAS_DISCOVERY_EXTRA_SOURCES"
_SOURCE_ID = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")


def parse_extra_sources(raw: str | None) -> frozenset[str]:
    """`MCAS_DISCOVERY_EXTRA_SOURCES`: comma/space separated ids the docs do not list yet."""
    if not raw:
        return frozenset()
    ids = {item.strip().upper() for item in re.split(r"[,\s]+", raw) if item.strip()}
    bad = sorted(i for i in ids if not _SOURCE_ID.match(i))
    if bad:
        raise ConfigurationError(
            EXTRA_SOURCES_SETTING, f"must list source ids like PALO_ALTO (A-Z, 0-9, _), got {', '.join(bad)}"
        )
    return frozenset(ids)


def validate_source(value: object, *, extra: frozenset[str] = frozenset()) -> str:
    """Normalise (upper case) and check a `source` id; raise `ValidationError` with the reason."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            "source is required: one of the documented Cloud Discovery source ids, e.g. PALO_ALTO"
        )
    source = value.strip().upper()
    if source in CURRENT_SOURCES or source in extra:
        return source
    if source in LEGACY_SOURCES:
        log.warning(
            "source %s is no longer in the documented list (dropped in 2021); the service still knows it, "
            "but prefer a current id",
            source,
        )
        return source
    hint = _closest(source)
    raise ValidationError(
        f"unknown source type {value.strip()!r}"
        + (f" (did you mean {hint}?)" if hint else "")
        + f"; allow ids the docs do not list yet with {EXTRA_SOURCES_SETTING}"
    )


def _closest(source: str) -> str | None:
    import difflib

    matches = difflib.get_close_matches(source, sorted(CURRENT_SOURCES), n=1, cutoff=0.75)
    return matches[0] if matches else None
