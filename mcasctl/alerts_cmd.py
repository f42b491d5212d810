"""`mcasctl alerts`: pull alerts exactly as the timer does, and close alerts.

    mcasctl alerts pull [--lookback 24h | --since 2025-01-31T00:00:00Z] [--out alerts.ndjson] [--tenant NAME]
    mcasctl alerts close {benign,false-positive,true-positive} ID... [--reason N] [--comment TEXT]

`pull` uses the same checkpoint store, sinks (MCAS_ALERT_SINKS) and request budget as the timer; `--lookback`
or `--since` only matter when a tenant has no checkpoint yet. `--out` also writes the delivered normalised
alerts as NDJSON (then MCAS_ALERT_SINKS may be empty). It prints one summary line per tenant.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from shared.errors import ConfigurationError

EXIT_OK = 0
EXIT_FAILED = 1
KIND_ARGS = {"benign": "benign", "false-positive": "false_positive", "true-positive": "true_positive"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "alerts",
        help="pull or close alerts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    pull = commands.add_parser("pull", help="one pull run, as the timer does it")
    start = pull.add_mutually_exclusive_group()
    start.add_argument(
        "--lookback", metavar="DURATION", help="window start for a first run, e.g. 90m, 24h, 7d"
    )
    start.add_argument(
        "--since", metavar="ISO", help="window start for a first run, ISO-8601 (UTC if no offset)"
    )
    pull.add_argument("--out", type=Path, metavar="FILE.ndjson", help="also write delivered alerts as NDJSON")
    pull.add_argument("--append", action="store_true", help="append to --out instead of truncating it")
    pull.add_argument(
        "--tenant", action="append", metavar="NAME", help="only this tenant profile (repeatable)"
    )
    pull.add_argument(
        "--budget", type=float, metavar="SECONDS", help="time budget (MCAS_ALERTS_TIME_BUDGET_SECONDS)"
    )
    pull.add_argument(
        "--wait-for-lease",
        action="store_true",
        help="wait for another run's checkpoint lease to end instead of skipping the tenant",
    )
    pull.add_argument("--json", action="store_true", help="print the run results as JSON")
    pull.set_defaults(handler=run_pull)

    close = commands.add_parser("close", help="close alerts as benign, false positive or true positive")
    close.add_argument("kind", choices=sorted(KIND_ARGS))
    close.add_argument("ids", nargs="+", metavar="ID", help="alert ids (24 hex characters)")
    close.add_argument(
        "--reason",
        type=int,
        metavar="N",
        help="reasonId: benign 2,4,5,6; false-positive 0,1,3,4; none for true-positive",
    )
    close.add_argument("--comment", metavar="TEXT")
    close.add_argument("--feedback", metavar="TEXT", help="send feedback to Microsoft with this text")
    close.add_argument("--contact", metavar="EMAIL", help="allow Microsoft to contact this address")
    close.add_argument("--tenant", metavar="NAME", help="tenant profile (default: the first)")
    close.set_defaults(handler=run_close)


def _since_ms(value: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            "--since", f"must be ISO-8601 such as 2025-01-31T00:00:00Z, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _quiet_sdk_logs(args: argparse.Namespace) -> None:
    """The Azure SDKs log every storage request at INFO; keep the summary readable unless -v."""
    if not getattr(args, "verbose", False):
        logging.getLogger("azure").setLevel(logging.WARNING)


def run_pull(args: argparse.Namespace) -> int:
    from shared.alerts.config import AlertConfig, parse_duration
    from shared.alerts.pull import default_environment, run_scheduled, summarize
    from shared.alerts.sinks import FileSink, Sink
    from shared.settings import get_settings

    _quiet_sdk_logs(args)
    settings = get_settings()
    config = AlertConfig.from_settings(settings)
    start_ms: int | None = None
    if args.since:
        start_ms = _since_ms(args.since)
    elif args.lookback:
        start_ms = int((time.time() - parse_duration(args.lookback, name="--lookback")) * 1000)
    extra: list[Sink] = []
    if args.out is not None:
        if not args.append:
            args.out.write_bytes(b"")
        extra.append(FileSink(args.out))
    if not config.sinks and not extra:
        raise ConfigurationError("MCAS_ALERT_SINKS", "names no sink; set it or pass --out FILE.ndjson")
    env = default_environment(config, extra_sinks=extra, require_sink=False)
    results = run_scheduled(
        settings=settings,
        env=env,
        start_ms=start_ms,
        tenants=args.tenant,
        budget_s=args.budget,
        wait_for_lease=args.wait_for_lease,
    )
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            lag = f"{r.lag_s:.0f}s" if r.lag_s is not None else "-"
            print(
                f"{r.tenant}: alerts={r.alerts} pages={r.pages} requests={r.requests} 429s={r.throttled} "
                f"duration={r.duration_s:.1f}s lag={lag} stopped={r.stopped}"
            )
        total = summarize(results)
        if len(results) > 1:
            print(f"total: alerts={total['alerts']} pages={total['pages']} 429s={total['throttled']}")
    failed = [r for r in results if r.error]
    if failed:
        print(
            "mcasctl alerts pull: error: " + "; ".join(f"{r.tenant}: {r.error}" for r in failed),
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def run_close(args: argparse.Namespace) -> int:
    from shared.mda.alerts import AlertsApi
    from shared.mda.client import client_for
    from shared.settings import get_settings

    _quiet_sdk_logs(args)
    settings = get_settings()
    profile = settings.tenant(args.tenant) if args.tenant else settings.default_tenant
    api = AlertsApi(client_for(profile))
    client = api.client
    result = api.close(
        KIND_ARGS[args.kind],  # type: ignore[arg-type]
        args.ids,
        reason_id=args.reason,
        comment=args.comment,
        send_feedback=args.feedback is not None,
        feedback_text=args.feedback,
        allow_contact=args.contact is not None,
        contact_email=args.contact,
        deadline=client.deadline_in(300),
    )
    confirmed = len(result.confirmed_by_recheck)
    print(
        f"{profile.name}: closed {result.closed + confirmed} of {result.requested} as {args.kind}"
        + (f" ({confirmed} confirmed by re-reading after an ambiguous failure)" if confirmed else "")
    )
    if result.not_found:
        print(
            f"mcasctl alerts close: error: {len(result.not_found)} alert id(s) not found: "
            + " ".join(result.not_found),
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
