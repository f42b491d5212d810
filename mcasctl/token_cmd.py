"""`mcasctl token`, `mcasctl login`, `mcasctl logout`: check and manage the API credentials the app would use.

- `token [--json] [--tenant NAME]` acquires a token through the shared helper with the current settings and
  prints mode, tenant, client id, audience, roles or scopes, expiry and where it came from (cache, identity
  provider or Key Vault) - never the token itself.
- `login [--tenant NAME]` signs an operator in with the device code flow (user context, `MCAS_AUTH_MODE=user`)
  and keeps the token cache in the user's config directory with 0600 permissions; `logout` deletes it.

Exit 0 on success; non-zero with a one-line reason on stderr otherwise (the dispatcher prints McasError).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from shared.auth import TokenDescription, api_credential, install_redaction
from shared.settings import Settings, TenantProfile, get_settings


def register(subparsers: Any) -> None:
    token = subparsers.add_parser(
        "token",
        help="acquire an API token and describe it (never printed)",
        description=(
            "Acquire a token for the Defender for Cloud Apps API with the current settings, as the app "
            "would, and describe it: mode, tenant, client id, audience, roles or scopes, expiry, and whether "
            "it came from the cache. The token itself is never printed."
        ),
    )
    token.add_argument("--json", action="store_true", help="print one JSON object")
    token.add_argument("--tenant", metavar="NAME", help="tenant profile name (default: the first profile)")
    token.set_defaults(handler=run_token)

    login = subparsers.add_parser(
        "login",
        help="sign in with the device code flow (user context)",
        description=(
            "Sign in as yourself for user context (MCAS_AUTH_MODE=user): open the URL shown and enter the "
            "code. The sign-in is kept for later commands in your config directory, readable by you only; "
            "`mcasctl logout` removes it."
        ),
    )
    login.add_argument("--tenant", metavar="NAME", help="tenant profile name (default: the first profile)")
    login.add_argument("--timeout", type=float, metavar="SECONDS", help="give up waiting after this long")
    login.add_argument("--json", action="store_true", help="print the result as one JSON object")
    login.set_defaults(handler=run_login)

    logout = subparsers.add_parser(
        "logout",
        help="forget the device code sign-in",
        description="Forget the sign-in `mcasctl login` kept for this tenant profile.",
    )
    logout.add_argument("--tenant", metavar="NAME", help="tenant profile name (default: the first profile)")
    logout.add_argument("--json", action="store_true", help="print the result as one JSON object")
    logout.set_defaults(handler=run_logout)


def _profile(settings: Settings, name: str | None) -> TenantProfile:
    return settings.tenant(name) if name else settings.default_tenant


def run_token(args: argparse.Namespace) -> int:
    install_redaction()
    settings = get_settings()
    description = api_credential(_profile(settings, args.tenant), settings=settings).describe()
    _print(description, as_json=args.json)
    return 0


def run_login(args: argparse.Namespace) -> int:
    from shared.auth.factory import device_code_login
    from shared.auth.public import DeviceCodePrompt

    install_redaction()
    settings = get_settings()

    def prompt(request: DeviceCodePrompt) -> None:
        # The user code is meant to be shown: the operator types it into the sign-in page.
        print(
            request.message or f"Open {request.verification_uri} and enter {request.user_code}",
            file=sys.stderr,
        )
        sys.stderr.flush()

    description = device_code_login(settings, _profile(settings, args.tenant), prompt, timeout=args.timeout)
    _print(description, as_json=args.json)
    return 0


def run_logout(args: argparse.Namespace) -> int:
    from shared.auth.factory import device_code_logout

    settings = get_settings()
    removed = device_code_logout(settings, _profile(settings, args.tenant))
    if args.json:
        print(json.dumps({"signed_out": bool(removed), "removed": str(removed) if removed else None}))
        return 0
    print(f"signed out; removed {removed}" if removed else "no device code sign-in to remove")
    return 0


def _print(description: TokenDescription, *, as_json: bool) -> None:
    data = description.as_dict()
    if as_json:
        print(json.dumps(data, sort_keys=True))
        return
    expires = "never (legacy token)"
    if description.expires_on is not None:
        minutes = int((description.expires_on - datetime.now(UTC)).total_seconds() // 60)
        expires = f"{description.expires_on.isoformat(timespec='seconds')} (in {minutes} min)"
    rows = [
        ("mode", description.mode),
        ("tenant", f"{description.tenant_name} ({description.tenant_id or 'n/a'})"),
        ("client id", description.client_id or "n/a"),
        ("credential", description.credential),
        ("authority", description.authority),
        ("header", description.scheme),
        ("audience", description.audience or "n/a"),
        ("roles", ", ".join(description.roles) or "-"),
        ("scopes", ", ".join(description.scopes) or "-"),
        ("user", description.user or "-"),
        ("expires", expires),
        ("source", description.source),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name + ':':<{width + 2}}{value}")
