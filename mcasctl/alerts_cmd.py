"""`mcasctl alerts`: pull alerts exactly as the timer does, export a window, inspect or repair a checkpoint,
close alerts.

    mcasctl alerts pull [--source graph|mda] [--lookback 24h | --since 2025-01-31T00:00:00Z]
                        [--out alerts.ndjson [--append]]
    mcasctl alerts export --since T [--until T] --out FILE.ndjson
    mcasctl alerts checkpoint show | set --since T | reset
    mcasctl alerts close {benign,false-positive,true-positive} ID... [--reason N] [--comment TEXT]

`pull` uses the same checkpoint store, sinks (MCAS_ALERT_SINKS) and request budget as the timer; `--lookback`
or `--since` only matter when a tenant has no checkpoint yet. `--out` also writes the delivered normalised
alerts as NDJSON (then MCAS_ALERT_SINKS may be empty); an existing file needs --append or --overwrite. It
shows progress on stderr and prints one summary line per tenant. Ctrl-C stops it at the next safe point,
releases the checkpoint and says what was delivered. `--source` reads alerts from Microsoft Graph
(`alerts_v2`, every change a new version) or the Defender for Cloud Apps API instead of each profile's
MCAS_ALERT_SOURCE; each source keeps its own checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from mcasctl import outfile
from mcasctl.errors import Interrupted, UsageError
from mcasctl.subcommand import add_documented
from shared.errors import ConfigurationError

EXIT_OK = 0
EXIT_FAILED = 1
KIND_ARGS = {"benign": "benign", "false-positive": "false_positive", "true-positive": "true_positive"}


def register(subparsers: Any) -> None:
    parser = add_documented(subparsers, "alerts", help_text="pull or close alerts", doc=__doc__)
    commands = parser.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    pull = commands.add_parser("pull", help="one pull run, as the timer does it")
    start = pull.add_mutually_exclusive_group()
    start.add_argument(
        "--lookback", metavar="DURATION", help="window start for a first run, e.g. 90m, 24h, 7d"
    )
    start.add_argument(
        "--since", metavar="ISO", help="window start for a first run, ISO-8601 (UTC if no offset)"
    )
    pull.add_argument(
        "--source", choices=("graph", "mda"), help="alert source (default: each profile's MCAS_ALERT_SOURCE)"
    )
    outfile.add_arguments(pull, help_text="also write delivered alerts as NDJSON")
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
    close.add_argument("--json", action="store_true", help="print the result as JSON")
    close.set_defaults(handler=run_close)

    from mcasctl import alerts_checkpoint_cmd

    alerts_checkpoint_cmd.register(commands)


def _since_ms(value: str, *, option: str = "--since") -> int:
    """An ISO-8601 time (UTC if no offset) as epoch ms; refused beyond now (plus clock skew)."""
    from shared.alerts.checkpoints import CLOCK_SKEW_S
    from shared.timeparse import iso_from_ms, parse_instant

    try:
        moment = parse_instant(value, "iso8601")
    except ValueError:
        raise UsageError(option, f"must be ISO-8601 such as 2025-01-31T00:00:00Z, got {value!r}") from None
    ms = int(moment.timestamp() * 1000)
    now_ms = int(time.time() * 1000)
    if ms > now_ms + CLOCK_SKEW_S * 1000:
        raise UsageError(
            option,
            f"{iso_from_ms(ms)} is in the future (now {iso_from_ms(now_ms)}): "
            "alerts are pulled by creation time, so nothing would ever be delivered",
        )
    return ms


def lookback_s(value: str) -> float:
    """`--lookback` needs a unit: `24` alone is refused rather than read as 24 seconds."""
    from shared.timeparse import OPTION_DURATION, duration_seconds

    if value.strip() and value.strip()[-1:].isdigit():
        raise UsageError("--lookback", f"needs a unit, e.g. {value.strip()}h, {value.strip()}d or 90m")
    try:
        return duration_seconds(value, OPTION_DURATION)
    except ValueError as exc:
        raise UsageError("--lookback", str(exc)) from None


def _quiet_sdk_logs(args: argparse.Namespace) -> None:
    """The Azure SDKs log every storage request at INFO; keep the summary readable unless -v."""
    if not getattr(args, "verbose", False):
        logging.getLogger("azure").setLevel(logging.WARNING)


def run_pull(args: argparse.Namespace) -> int:
    from mcasctl.pullrun import GateSink, Progress, ProgressSink, StopControl, stoppable_api
    from shared.alerts.config import AlertConfig
    from shared.alerts.pull import default_environment, run_scheduled, summarize
    from shared.alerts.sinks import FileSink, Sink
    from shared.settings import get_settings

    _quiet_sdk_logs(args)
    start_ms: int | None = None
    if args.since:
        start_ms = _since_ms(args.since)
    elif args.lookback:
        start_ms = int((time.time() - lookback_s(args.lookback)) * 1000)
    settings = get_settings()
    config = AlertConfig.from_settings(settings)
    if not config.sinks and args.out is None:
        raise ConfigurationError("MCAS_ALERT_SINKS", "names no sink; set it or pass --out FILE.ndjson")
    extra: list[Sink] = []
    if args.out is not None:
        extra.append(FileSink(outfile.prepare(args.out, append=args.append, overwrite=args.overwrite)))
    progress = Progress(sys.stderr)
    stop = StopControl(progress)
    env = default_environment(
        config, extra_sinks=[GateSink(stop), *extra, ProgressSink(progress)], require_sink=False
    )
    env.api_for = lambda profile: stoppable_api(profile, stop)
    env.sleep = stop.sleeper("", "another run holds the checkpoint lease")
    try:
        with stop.on_ctrl_c():
            results = run_scheduled(
                settings=settings,
                env=env,
                start_ms=start_ms,
                tenants=args.tenant,
                budget_s=args.budget,
                wait_for_lease=args.wait_for_lease,
                source=args.source,
            )
    finally:
        progress.close()
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            lag = f"{r.lag_s:.0f}s" if r.lag_s is not None else "-"
            feed = "" if r.stream == "alerts" else f" [{r.stream}]"
            print(
                f"{r.tenant}{feed}: alerts={r.alerts} pages={r.pages} requests={r.requests} "
                f"429s={r.throttled} "
                f"duration={r.duration_s:.1f}s lag={lag} stopped={r.stopped}"
            )
        total = summarize(results)
        if len(results) > 1:
            print(f"total: alerts={total['alerts']} pages={total['pages']} 429s={total['throttled']}")
    if stop.stopped:
        for r in results:
            print(_interrupted_summary(r, progress), file=sys.stderr)
        raise Interrupted()
    failed = [r for r in results if r.error]
    if failed:
        print(
            "mcasctl alerts pull: error: " + "; ".join(f"{r.tenant}: {r.error}" for r in failed),
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _interrupted_summary(result: Any, progress: Any) -> str:
    """What an interrupted run delivered (and committed) and what it did not."""
    from shared.timeparse import iso_from_ms

    delivered = progress.tenants.get(result.tenant)
    uncommitted = (delivered.pages - result.pages) if delivered is not None else 0
    where = iso_from_ms(result.watermark_ms) if result.watermark_ms is not None else "its start"
    text = (
        f"{result.tenant}: stopped; {result.alerts} alerts in {result.pages} pages delivered and committed. "
        f"Not delivered: alerts created after {where}; the next pull continues from there"
    )
    if uncommitted > 0:
        text += f" (and delivers the last {uncommitted} page(s) again: delivered, not yet committed)"
    return text + "."


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
    if args.json:
        print(json.dumps({"tenant": profile.name, **result.as_dict()}, indent=2))
        return EXIT_FAILED if result.not_found else EXIT_OK
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
