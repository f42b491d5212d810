"""`mcasctl tenants add | list | show | update | disable | enable | remove | import`: the tenant registry.

- `add NAME --api-url URL --tenant-id ID --client-id ID [--auth-mode ...] [--client-secret-name ...]
  [--client-certificate-name ...] [--alert-source mda|graph] [--sinks queue,blob] [--disabled]`: a new
  tenant, validated with the same rules and messages as the app settings (omitted values inherit them).
- `list [--json]`: every registry tenant (and, marked `settings`, the tenants the app settings define).
- `show NAME [--json]`: one tenant's stored values and its effective profile.
- `update NAME [--FIELD VALUE ...] [--unset FIELD]`: change values; the result is validated before it
  is written.
- `disable NAME` / `enable NAME`: stop or resume pulling a tenant without losing its checkpoint.
- `remove NAME`: delete the row (its checkpoint and health rows stay).
- `import [--replace]`: rows from `MCAS_TENANT_PROFILES` (all validated before any is written).

Rows never hold a secret: credentials stay in Key Vault, rows only name them.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from mcasctl.subcommand import add_documented
from shared.errors import ConfigurationError

# (flag, registry key, help)
_VALUE_FLAGS = (
    ("--api-url", "api_url", "tenant API URL (https://<tenant>.<region>.portal.cloudappsecurity.com)"),
    ("--tenant-id", "tenant_id", "Entra tenant id"),
    ("--client-id", "client_id", "client id of the app registration in that tenant"),
    ("--auth-mode", "auth_mode", "application | user | legacy"),
    ("--client-secret-name", "client_secret_name", "Key Vault secret with the client secret"),
    ("--client-certificate-name", "client_certificate_name", "Key Vault certificate instead of a secret"),
    ("--legacy-token-name", "legacy_token_name", "Key Vault secret with a legacy API token"),
    ("--rate-limit-per-minute", "rate_limit_per_minute", "the tenant's API budget"),
    ("--alert-source", "alert_source", "mda | graph"),
    ("--graph-url", "graph_url", "Microsoft Graph root for the graph source"),
    ("--graph-service-sources", "graph_service_sources", "comma list of Graph serviceSource values"),
    ("--graph-scope", "graph_scope", "token scope for Graph"),
    ("--graph-rate-limit-per-minute", "graph_rate_limit_per_minute", "the tenant's Graph budget"),
    ("--sinks", "sinks", "comma list of queue, blob, webhook, logs (default: MCAS_ALERT_SINKS)"),
)


def register(subparsers: Any) -> None:
    parser = add_documented(
        subparsers, "tenants", help_text="manage the tenant registry (mcasTenants)", doc=__doc__
    )
    commands = parser.add_subparsers(dest="tenants_command", metavar="ACTION", required=True)

    add = commands.add_parser("add", help="add a tenant")
    add.add_argument("name")
    _value_flags(add)
    add.add_argument("--disabled", action="store_true", help="store it disabled")
    add.set_defaults(handler=run_add)

    listing = commands.add_parser("list", help="list tenants")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=run_list)

    show = commands.add_parser("show", help="show one tenant")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_show)

    update = commands.add_parser("update", help="change a tenant's values")
    update.add_argument("name")
    _value_flags(update)
    update.add_argument("--unset", action="append", default=[], metavar="FIELD", help="drop a stored value")
    update.set_defaults(handler=run_update)

    for action, enabled in (("disable", False), ("enable", True)):
        sub = commands.add_parser(action, help=f"{action} a tenant")
        sub.add_argument("name")
        sub.set_defaults(handler=run_enable, enabled=enabled)

    remove = commands.add_parser("remove", help="delete a tenant from the registry")
    remove.add_argument("name")
    remove.set_defaults(handler=run_remove)

    imp = commands.add_parser("import", help="import MCAS_TENANT_PROFILES")
    imp.add_argument("--replace", action="store_true", help="overwrite rows that already exist")
    imp.set_defaults(handler=run_import)


def _value_flags(parser: argparse.ArgumentParser) -> None:
    for flag, key, help_text in _VALUE_FLAGS:
        parser.add_argument(flag, dest=key, help=help_text)


def _values(args: argparse.Namespace) -> dict[str, object]:
    return {key: getattr(args, key) for _, key, _ in _VALUE_FLAGS if getattr(args, key, None) is not None}


def _registry() -> Any:
    from shared.tenants.registry import registry

    return registry()


def _print(entry: Any, *, as_json: bool) -> None:
    data = entry.public()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        print(f"{key}: {value if value is not None else '(inherited)'}")


def run_add(args: argparse.Namespace) -> int:
    entry = _registry().add(args.name, {**_values(args), "enabled": not args.disabled})
    print(f"added tenant {entry.name}{' (disabled)' if not entry.enabled else ''}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from shared.settings import get_settings

    reg = _registry()
    rows: list[dict[str, Any]] = [
        {"name": p.name, "source": "settings", "enabled": True, "api_url": p.api_url}
        for p in get_settings().tenants
    ]
    for entry in sorted(reg.entries(), key=lambda e: e.name):
        rows.append(
            {
                "name": entry.name,
                "source": "registry",
                "enabled": entry.enabled,
                "api_url": entry.values.get("api_url", "(inherited)"),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = "enabled" if row["enabled"] else "disabled"
        print(f"{row['name']:<32} {row['source']:<9} {state:<9} {row['api_url']}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    import dataclasses

    from shared.settings import get_settings
    from shared.tenants.registry import resolve

    entry = _registry().get(args.name)
    target = resolve(entry, get_settings())
    effective = {k: v for k, v in dataclasses.asdict(target.profile).items() if v not in (None, "")}
    if args.json:
        print(json.dumps({"stored": entry.public(), "effective": effective}, indent=2, default=list))
        return 0
    _print(entry, as_json=False)
    print("effective profile:")
    for key, value in effective.items():
        print(f"  {key}: {value}")
    return 0


def run_update(args: argparse.Namespace) -> int:
    entry = _registry().update(args.name, _values(args), unset=args.unset)
    print(f"updated tenant {entry.name}")
    return 0


def run_enable(args: argparse.Namespace) -> int:
    entry = _registry().set_enabled(args.name, args.enabled)
    print(f"tenant {entry.name} {'enabled' if entry.enabled else 'disabled'}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    _registry().remove(args.name)
    print(f"removed tenant {args.name}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    raw = os.environ.get("MCAS_TENANT_PROFILES", "")
    if not raw.strip():
        raise ConfigurationError("MCAS_TENANT_PROFILES", "is not set: nothing to import")
    entries = _registry().import_profiles(raw, replace=args.replace)
    print(f"imported {len(entries)} tenant(s): {', '.join(e.name for e in entries)}")
    return 0
