"""`mcasctl alerts checkpoint show | set --since T | reset` and `mcasctl alerts export`.

- `checkpoint show [--tenant NAME] [--json]`: each tenant's timer checkpoint (watermark, ids delivered at
  it, lease, totals); a watermark in the future is flagged (no alert would be delivered).
- `checkpoint set --since T --tenant NAME [--yes]`: move the watermark to T (not in the future): alerts
  created from T on are delivered by the next pull, again if they were delivered before.
- `checkpoint reset --tenant NAME [--yes]`: forget the checkpoint; the next pull starts from
  MCAS_FIRST_FETCH_LOOKBACK (or its --since / --lookback).
  Both ask for confirmation (or take --yes), refuse while another run holds the lease, write conditionally
  (a run that committed in between wins) and log what they changed.
- `export --since T [--until T] --out FILE.ndjson [--tenant NAME]`: the alerts created in that window, read
  as the timer reads them (by time, deduplicated by id) but with a private in-memory checkpoint: the
  timer's is neither read nor written, and no sink other than the file receives anything.
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
from shared.errors import McasError

audit = logging.getLogger("mcasctl.audit")
EXPORT_STREAM = "export"


def register(commands: Any) -> None:
    checkpoint = add_documented(
        commands, "checkpoint", help_text="show, set or reset a tenant's alert checkpoint", doc=__doc__
    )
    actions = checkpoint.add_subparsers(dest="checkpoint_command", metavar="ACTION", required=True)

    show = actions.add_parser("show", help="show the timer's checkpoint of each tenant")
    show.add_argument("--tenant", action="append", metavar="NAME", help="only this tenant (repeatable)")
    show.add_argument("--json", action="store_true", help="print a JSON array")
    show.set_defaults(handler=run_show)

    set_ = actions.add_parser("set", help="move a tenant's watermark to a time (re-delivers from there)")
    set_.add_argument(
        "--since", required=True, metavar="ISO", help="new watermark, ISO-8601 (UTC if no offset)"
    )
    _write_options(set_)
    set_.set_defaults(handler=run_set)

    reset = actions.add_parser("reset", help="forget a tenant's checkpoint (next pull starts from lookback)")
    _write_options(reset)
    reset.set_defaults(handler=run_reset)

    export = add_documented(
        commands,
        "export",
        help_text="write the alerts of a time window to a file, without touching the checkpoint",
        doc=__doc__,
    )
    export.add_argument("--since", required=True, metavar="ISO", help="window start (creation time)")
    export.add_argument("--until", metavar="ISO", help="window end, inclusive (default: now)")
    outfile.add_arguments(export, help_text="NDJSON file to write (required)")
    export.add_argument("--tenant", metavar="NAME", help="tenant profile (default: the first)")
    export.add_argument("--json", action="store_true", help="print the result as JSON")
    export.set_defaults(handler=run_export)


def _write_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", metavar="NAME", help="tenant profile (required with several profiles)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _describe(tenant: str, cp: Any, now_s: float) -> dict[str, Any]:
    from shared.alerts.checkpoints import future_problem
    from shared.timeparse import iso_from_ms

    if cp is None:
        return {"tenant": tenant, "exists": False}
    lease_live = cp.lease_owner is not None and cp.lease_until > now_s
    return {
        "tenant": tenant,
        "exists": True,
        "watermark_ms": cp.watermark_ms,
        "watermark": iso_from_ms(cp.watermark_ms),
        "ids_at_watermark": len(cp.ids_at_watermark),
        "lease_owner": cp.lease_owner if lease_live else None,
        "lease_until": iso_from_ms(int(cp.lease_until * 1000)) if lease_live else None,
        "delivered_total": cp.delivered_total,
        "pages_total": cp.pages_total,
        "problem": future_problem(cp.watermark_ms, now_s=now_s),
    }


def _store() -> Any:
    from shared.alerts.checkpoints import checkpoint_store

    return checkpoint_store()


def run_show(args: argparse.Namespace) -> int:
    from shared.alerts.checkpoints import STREAM_SCHEDULED
    from shared.settings import get_settings

    settings = get_settings()
    names = args.tenant or [p.name for p in settings.tenants]
    for name in names:
        settings.tenant(name)  # unknown names fail with the list of known ones
    store = _store()
    now_s = time.time()
    rows = [_describe(name, store.load(STREAM_SCHEDULED, name), now_s) for name in names]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            if not row["exists"]:
                print(f"{row['tenant']}: no checkpoint (the next pull starts at MCAS_FIRST_FETCH_LOOKBACK)")
                continue
            lease = (
                f", leased by {row['lease_owner']} until {row['lease_until']}" if row["lease_owner"] else ""
            )
            print(
                f"{row['tenant']}: watermark {row['watermark']} ({row['ids_at_watermark']} ids delivered at "
                f"it), {row['delivered_total']} alerts in {row['pages_total']} pages so far{lease}"
            )
            if row["problem"]:
                print(f"{row['tenant']}: error: checkpoint {row['problem']}", file=sys.stderr)
    return 1 if any(row.get("problem") for row in rows) else 0


def _profile_name(args: argparse.Namespace) -> str:
    from shared.settings import get_settings

    settings = get_settings()
    if args.tenant:
        return settings.tenant(args.tenant).name
    if len(settings.tenants) > 1:
        known = ", ".join(p.name for p in settings.tenants)
        raise UsageError("--tenant", f"is required with several tenant profiles ({known})")
    return settings.default_tenant.name


def _confirm(args: argparse.Namespace, question: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("--yes", f"is needed to confirm without a terminal: {question}")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise UsageError("confirmation", "was not given; nothing changed")


def _refuse_live_lease(name: str, cp: Any) -> None:
    from shared.timeparse import iso_from_ms

    if cp is not None and cp.lease_owner is not None and cp.lease_until > time.time():
        raise McasError(
            f"a pull of {name} is running (lease held by {cp.lease_owner} until "
            f"{iso_from_ms(int(cp.lease_until * 1000))}); try again when it has finished"
        )


def run_set(args: argparse.Namespace) -> int:
    from mcasctl.alerts_cmd import _since_ms
    from shared.alerts.checkpoints import STREAM_SCHEDULED, Checkpoint
    from shared.timeparse import iso_from_ms

    since_ms = _since_ms(args.since)
    name = _profile_name(args)
    store = _store()
    cp = store.load(STREAM_SCHEDULED, name)
    _refuse_live_lease(name, cp)
    before = iso_from_ms(cp.watermark_ms) if cp is not None else "none"
    direction = "again " if cp is not None and since_ms < cp.watermark_ms else ""
    _confirm(
        args,
        f"Move the alert checkpoint of {name} from {before} to {iso_from_ms(since_ms)}? "
        f"The next pull delivers {direction}every alert created from {iso_from_ms(since_ms)} on.",
    )
    new = Checkpoint(
        watermark_ms=since_ms,
        delivered_total=cp.delivered_total if cp is not None else 0,
        pages_total=cp.pages_total if cp is not None else 0,
        etag=cp.etag if cp is not None else None,
    )
    store.save(STREAM_SCHEDULED, name, new)
    audit.warning(
        "alert checkpoint %s/%s set by an operator: %s -> %s",
        STREAM_SCHEDULED,
        name,
        before,
        iso_from_ms(since_ms),
    )
    result = {"tenant": name, "action": "set", "before": before, "after": iso_from_ms(since_ms)}
    text = f"{name}: checkpoint moved from {before} to {iso_from_ms(since_ms)}"
    print(json.dumps(result) if args.json else text)
    return 0


def run_reset(args: argparse.Namespace) -> int:
    from shared.alerts.checkpoints import STREAM_SCHEDULED
    from shared.timeparse import iso_from_ms

    name = _profile_name(args)
    store = _store()
    cp = store.load(STREAM_SCHEDULED, name)
    if cp is None:
        result = {"tenant": name, "action": "reset", "before": "none"}
        print(json.dumps(result) if args.json else f"{name}: no checkpoint; nothing to reset")
        return 0
    _refuse_live_lease(name, cp)
    before = iso_from_ms(cp.watermark_ms)
    _confirm(
        args,
        f"Forget the alert checkpoint of {name} (watermark {before})? The next pull starts from "
        "MCAS_FIRST_FETCH_LOOKBACK (or its --since / --lookback).",
    )
    store.delete(STREAM_SCHEDULED, name, etag=cp.etag)
    audit.warning("alert checkpoint %s/%s reset by an operator (was %s)", STREAM_SCHEDULED, name, before)
    result = {"tenant": name, "action": "reset", "before": before}
    print(json.dumps(result) if args.json else f"{name}: checkpoint reset (was {before})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from mcasctl.alerts_cmd import _quiet_sdk_logs, _since_ms
    from mcasctl.pullrun import GateSink, Progress, ProgressSink, StopControl, stoppable_api
    from shared.alerts.checkpoints import MemoryCheckpointStore
    from shared.alerts.pull import PullOptions, pull_tenant
    from shared.alerts.sinks import FileSink
    from shared.settings import get_settings
    from shared.timeparse import iso_from_ms

    _quiet_sdk_logs(args)
    if args.out is None:
        raise UsageError("--out", "is required: the file the window's alerts are written to")
    since_ms = _since_ms(args.since)
    until_ms = _since_ms(args.until, option="--until") if args.until else int(time.time() * 1000)
    if until_ms < since_ms:
        raise UsageError("--until", f"({iso_from_ms(until_ms)}) is before --since ({iso_from_ms(since_ms)})")
    settings = get_settings()
    profile = settings.tenant(args.tenant) if args.tenant else settings.default_tenant
    path = outfile.prepare(args.out, append=args.append, overwrite=args.overwrite)
    progress = Progress(sys.stderr)
    stop = StopControl(progress)
    options = PullOptions(
        stream=EXPORT_STREAM, key=profile.name, start_ms=since_ms, end_ms=until_ms, max_pages=10**9
    )
    try:
        with stop.on_ctrl_c():
            result = pull_tenant(
                profile,
                options,
                api=stoppable_api(profile, stop),
                store=MemoryCheckpointStore(),  # private: the timer's checkpoint is not involved
                sinks=[GateSink(stop), FileSink(path), ProgressSink(progress)],
                deadline=time.monotonic() + 7 * 86400,
                sleep=stop.sleeper(profile.name, "waiting"),
            )
    finally:
        progress.close()
    summary = {
        "tenant": profile.name,
        "since": iso_from_ms(since_ms),
        "until": iso_from_ms(until_ms),
        "out": str(path),
        "alerts": result.alerts,
        "pages": result.pages,
        "requests": result.requests,
        "throttled": result.throttled,
        "complete": result.error is None and not stop.stopped,
        "error": None if stop.stopped else result.error,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{profile.name}: {result.alerts} alerts created {summary['since']} .. {summary['until']} "
            f"written to {path} ({result.pages} pages, {result.requests} requests)"
        )
    if stop.stopped:
        resume = iso_from_ms(result.watermark_ms) if result.watermark_ms is not None else summary["since"]
        print(
            f"{profile.name}: stopped before the window's end; continue with --since {resume} "
            f"--until {summary['until']} --append (alerts at exactly {resume} may repeat)",
            file=sys.stderr,
        )
        raise Interrupted()
    if result.error:
        print(f"mcasctl alerts export: error: {result.error}", file=sys.stderr)
        return 1
    return 0
