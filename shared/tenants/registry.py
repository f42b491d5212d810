"""The tenant registry: one row per customer tenant in the `mcasTenants` table.

A managed service provider adds tenants here instead of growing one JSON app setting. A row holds only the
values the operator gave (API URL, Entra tenant and client id, auth mode, Key Vault credential names, alert
source, sinks, enabled); omitted values inherit the flat `MCAS_*` settings at load time, exactly as
`MCAS_TENANT_PROFILES` entries do. Every row is validated by the same code and messages as the settings
(`shared.settings.profile_from_mapping`), on write and again on read, so a row made invalid by a later
settings change is reported and skipped, never allowed to stop the other tenants.

The flat settings (and `MCAS_TENANT_PROFILES`) still define the default tenant(s); registry tenants add to
them and may not reuse their names.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigurationError, ValidationError
from shared.settings import (
    PROFILE_KEYS,
    Settings,
    TenantProfile,
    check_profile_keys,
    check_unique_names,
    parse_extra_api_host_suffixes,
    profile_from_mapping,
    profile_list,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)

PARTITION = "tenants"
# Keys a registry row may hold: the profile keys of MCAS_TENANT_PROFILES (minus the name, which is the row
# key) plus the tenant's own sinks and its enabled flag.
PROFILE_FIELDS = tuple(k for k in PROFILE_KEYS if k != "name")
ENTRY_FIELDS = (*PROFILE_FIELDS, "sinks", "enabled")


@dataclass(frozen=True)
class TenantEntry:
    """A registry row as stored: the operator's own values, not yet merged with the settings."""

    name: str
    values: Mapping[str, str] = field(default_factory=dict)  # profile keys the operator set
    sinks: tuple[str, ...] | None = None  # None: the app's MCAS_ALERT_SINKS
    enabled: bool = True
    updated_at: str = ""

    def public(self) -> dict[str, Any]:
        """Names and settings only; a registry row never holds a secret (credentials live in Key Vault)."""
        return {
            "name": self.name,
            **dict(sorted(self.values.items())),
            "sinks": list(self.sinks) if self.sinks is not None else None,
            "enabled": self.enabled,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class TenantTarget:
    """A tenant the alert pull works for: its validated profile, its sinks and where it was defined."""

    profile: TenantProfile
    sinks: tuple[str, ...] | None = None  # None: MCAS_ALERT_SINKS
    source: str = "settings"  # "settings" | "registry"

    @property
    def name(self) -> str:
        return self.profile.name


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def normalize_values(raw: Mapping[str, object]) -> dict[str, str]:
    """Operator input -> stored strings; unknown keys are refused with the list of known ones."""
    unknown = sorted(set(raw) - set(ENTRY_FIELDS) - {"name"})
    if unknown:
        raise ValidationError(f"unknown tenant fields {unknown}; known: {', '.join(ENTRY_FIELDS)}")
    values: dict[str, str] = {}
    for key in PROFILE_FIELDS:
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        text = str(value).strip()
        if text:
            values[key] = text
    return values


def parse_enabled(value: object) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValidationError(f"enabled must be true or false, got {value!r}")


def parse_entry_sinks(value: object) -> tuple[str, ...] | None:
    """A tenant's own sinks (`queue`, `blob`, `webhook`); None or "" inherits MCAS_ALERT_SINKS."""
    from shared.alerts.config import parse_sinks

    if value is None:
        return None
    text = ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    if not text.strip():
        return None
    sinks = parse_sinks(text)
    if not sinks:
        raise ConfigurationError("sinks", "names no sink: use queue, blob, webhook or logs (or unset it)")
    return sinks


def resolve(entry: TenantEntry, settings: Settings) -> TenantTarget:
    """Validate a row against the settings (same rules and messages); raises ConfigurationError."""
    base = settings.default_tenant
    inherited: dict[str, object] = {k: getattr(base, k) for k in PROFILE_FIELDS}
    profile = profile_from_mapping(
        {**inherited, **entry.values, "name": entry.name},
        setting_prefix=f"tenant {entry.name}: MCAS_",
        allow_loopback=settings.allow_loopback,
        extra_suffixes=parse_extra_api_host_suffixes(settings.get("MCAS_EXTRA_API_HOST_SUFFIXES") or ""),
    )
    assert profile is not None  # api_url is always inherited or given
    if entry.sinks is not None and "webhook" in entry.sinks and not settings.get("MCAS_ALERT_WEBHOOK_URL"):
        raise ConfigurationError(
            f"tenant {entry.name}: sinks", "include webhook, but MCAS_ALERT_WEBHOOK_URL is not set"
        )
    return TenantTarget(profile, entry.sinks, "registry")


class TenantRegistry:
    """CRUD over `mcasTenants`. Writes validate first; nothing invalid is ever stored."""

    def __init__(self, table: TableClient, settings: Settings) -> None:
        self._table = table
        self._settings = settings

    # -- reads ---------------------------------------------------------------------------------------------

    def entries(self) -> Iterator[TenantEntry]:
        for row in self._table.query_entities(f"PartitionKey eq '{PARTITION}'"):
            yield _entry_from_row(row)

    def get(self, name: str) -> TenantEntry:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return _entry_from_row(self._table.get_entity(PARTITION, _row_key(name)))
        except ResourceNotFoundError:
            raise ValidationError(f"no tenant named {name!r} in the registry") from None

    def targets(self) -> list[TenantTarget]:
        """Enabled, valid registry tenants. An invalid row is logged and skipped, never fatal."""
        targets: list[TenantTarget] = []
        for entry in self.entries():
            if not entry.enabled:
                continue
            try:
                targets.append(resolve(entry, self._settings))
            except ConfigurationError as exc:
                log.error("registry tenant %s is invalid and is skipped: %s", entry.name, exc)
        return targets

    # -- writes --------------------------------------------------------------------------------------------

    def add(self, name: str, raw: Mapping[str, object]) -> TenantEntry:
        from azure.core.exceptions import ResourceExistsError

        entry = self._validated(name, raw)
        try:
            self._table.create_entity(_row(entry))
        except ResourceExistsError:
            raise ValidationError(f"tenant {name!r} is already in the registry (use update)") from None
        return entry

    def update(self, name: str, changes: Mapping[str, object], *, unset: Iterable[str] = ()) -> TenantEntry:
        """Merge `changes` into the row (and drop the `unset` keys), validate the result, write it."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        current = self.get(name)
        merged: dict[str, object] = dict(current.values)
        for key in unset:
            if key not in ENTRY_FIELDS:
                raise ValidationError(f"unknown tenant field {key!r}; known: {', '.join(ENTRY_FIELDS)}")
            merged.pop(key, None)
        merged["sinks"] = None if "sinks" in set(unset) else current.sinks
        merged["enabled"] = current.enabled
        merged.update(changes)
        entry = self._validated(name, merged, check_collision=False)
        row = self._table.get_entity(PARTITION, _row_key(name))
        self._table.update_entity(
            _row(entry),
            mode=UpdateMode.REPLACE,
            etag=row.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
        return entry

    def set_enabled(self, name: str, enabled: bool) -> TenantEntry:
        return self.update(name, {"enabled": enabled})

    def remove(self, name: str) -> None:
        self.get(name)  # a clear error for an unknown name
        self._table.delete_entity(PARTITION, _row_key(name))

    def import_profiles(self, raw_json: str, *, replace: bool = False) -> list[TenantEntry]:
        """Rows from an `MCAS_TENANT_PROFILES` JSON list (all validated before any is written)."""
        entries: list[TenantEntry] = []
        for index, item in enumerate(profile_list(raw_json)):
            name = str(item.get("name") or "").strip()
            if not name:
                raise ConfigurationError(f"MCAS_TENANT_PROFILES[{index}].name", "is required to import")
            check_profile_keys(item, index)
            entries.append(self._validated(name, item, check_collision=False))
        check_unique_names([e.name for e in entries])
        from azure.data.tables import UpdateMode

        for entry in entries:
            if replace:
                self._table.upsert_entity(_row(entry), mode=UpdateMode.REPLACE)
            else:
                self.add(entry.name, {**entry.values, "enabled": entry.enabled})
        return entries

    def _validated(
        self, name: str, raw: Mapping[str, object], *, check_collision: bool = True
    ) -> TenantEntry:
        values = normalize_values(raw)
        entry = TenantEntry(
            name=name.strip(),
            values=values,
            sinks=parse_entry_sinks(raw.get("sinks")),
            enabled=parse_enabled(raw.get("enabled", True)),
            updated_at=_now_iso(),
        )
        resolve(entry, self._settings)  # raises with the settings' own messages
        if check_collision and entry.name in {p.name for p in self._settings.tenants}:
            raise ValidationError(
                f"tenant {entry.name!r} is already defined by the app settings (MCAS_TENANT_NAME or "
                "MCAS_TENANT_PROFILES); pick another name"
            )
        return entry


def _row_key(name: str) -> str:
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValidationError(f"tenant names hold only letters, digits, '-' and '_', got {name!r}")
    return name


def _row(entry: TenantEntry) -> dict[str, Any]:
    row: dict[str, Any] = {
        "PartitionKey": PARTITION,
        "RowKey": _row_key(entry.name),
        "enabled": entry.enabled,
        "updated_at": entry.updated_at,
        **entry.values,
    }
    if entry.sinks is not None:
        row["sinks"] = ",".join(entry.sinks)
    return row


def _entry_from_row(row: Mapping[str, Any]) -> TenantEntry:
    values = {k: str(row[k]) for k in PROFILE_FIELDS if row.get(k) not in (None, "")}
    sinks_raw = row.get("sinks")
    return TenantEntry(
        name=str(row["RowKey"]),
        values=values,
        sinks=tuple(s for s in str(sinks_raw).split(",") if s) if sinks_raw else None,
        enabled=bool(row.get("enabled", True)),
        updated_at=str(row.get("updated_at") or ""),
    )


def registry(settings: Settings | None = None) -> TenantRegistry:
    """The registry over the app's storage account."""
    from shared.settings import get_settings
    from shared.storage import TABLE_TENANTS, table_client

    return TenantRegistry(table_client(TABLE_TENANTS), settings or get_settings())


def find_target(name: str, settings: Settings | None = None) -> tuple[TenantTarget | None, str]:
    """One tenant by name with one point read (a queue message names its tenant): (target, "") or
    (None, why not)."""
    from shared.settings import get_settings

    settings = settings or get_settings()
    for profile in settings.tenants:
        if profile.name == name:
            return TenantTarget(profile), ""
    try:
        entry = registry(settings).get(name)
    except ValidationError:
        return None, "is not a tenant (removed, or never added)"
    if not entry.enabled:
        return None, "is disabled"
    try:
        return resolve(entry, settings), ""
    except ConfigurationError as exc:
        return None, f"is invalid ({exc})"


def all_targets(settings: Settings | None = None, *, include_registry: bool = True) -> list[TenantTarget]:
    """Every tenant the alert pull works for: the settings' profiles first, then enabled registry tenants.

    A registry row whose name the settings already use is skipped with an error in the log (the settings win).
    """
    from shared.settings import get_settings

    settings = settings or get_settings()
    targets = [TenantTarget(p) for p in settings.tenants]
    if not include_registry:
        return targets
    taken = {t.name for t in targets}
    for target in registry(settings).targets():
        if target.name in taken:
            log.error("registry tenant %s clashes with a settings profile; the settings win", target.name)
            continue
        taken.add(target.name)
        targets.append(target)
    return targets
