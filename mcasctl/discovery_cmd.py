"""`mcasctl discovery`: Cloud Discovery log uploads by hand, the valid source ids, and a local log drop.

  mcasctl discovery upload FILE... --source SOURCE --stream NAME [--snapshot] [--json]
  mcasctl discovery sources [--json]
  mcasctl discovery drop FILE... --source SOURCE --stream NAME [--snapshot]

`upload` runs the same engine as the queue function (shared.discovery.uploader): validated source, the data
source checked before any byte is sent, streamed and BOM-stripped, split above the per-file limit,
SSRF-guarded upload URL, fresh URL after a failed PUT. With `AzureWebJobsStorage` set, the upload ledger is
shared with the app, so a file the app already uploaded is skipped (use --force to send it anyway). A
progress bar (bytes, rate, ETA) is drawn on a terminal; every file ends with one summary line on stdout
(failures on stderr). Exit status 1 if any file failed.

`sources` lists the `--source` ids (log formats) the API accepts.

`drop` is for the local host, where Event Grid is not emulated: it stores each file in the discovery
container under `<SOURCE>/<NAME>/` and queues the BlobCreated event Event Grid would deliver, so the
`discovery_upload` function uploads it (run `mcasctl host --once`, or keep `mcasctl host` running).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mcasctl.progress import ProgressBar, human_bytes
from mcasctl.subcommand import add_documented
from shared.errors import McasError


def register(subparsers: Any) -> None:
    parser = add_documented(subparsers, "discovery", help_text="Cloud Discovery log uploads", doc=__doc__)
    commands = parser.add_subparsers(dest="discovery_command", metavar="SUBCOMMAND")
    upload = add_documented(commands, "upload", help_text="upload log files to Cloud Discovery", doc=__doc__)
    _file_arguments(upload)
    upload.add_argument("--tenant", help="tenant profile name (MCAS_TENANT_PROFILES); default: the first")
    upload.add_argument("--force", action="store_true", help="ignore the upload ledger (upload even if done)")
    upload.add_argument("--json", action="store_true", help="print one JSON object per file")
    upload.set_defaults(handler=run_upload)

    sources = commands.add_parser("sources", help="list the valid --source ids (log formats)")
    sources.add_argument("--json", action="store_true", help="print a JSON object")
    sources.set_defaults(handler=run_sources)

    drop = add_documented(
        commands,
        "drop",
        help_text="local host: store logs in the discovery container and queue their BlobCreated events",
        doc=__doc__,
    )
    _file_arguments(drop)
    drop.add_argument("--tenant", help="tenant profile name (blob metadata mcas_tenant); default: the first")
    drop.add_argument("--json", action="store_true", help="print one JSON object per file")
    drop.set_defaults(handler=run_drop)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _file_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="log files (text, gzip or zip)")
    parser.add_argument(
        "--source", required=True, help="log format id, e.g. PALO_ALTO (`mcasctl discovery sources`)"
    )
    parser.add_argument(
        "--stream", required=True, help="data source name (or the report name with --snapshot)"
    )
    parser.add_argument("--snapshot", action="store_true", help="create a one-off snapshot report")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_sources(args: argparse.Namespace) -> int:
    from shared.discovery.config import discovery_config
    from shared.discovery.sources import CURRENT_SOURCES, LEGACY_SOURCES

    try:
        extra = discovery_config().extra_sources
    except McasError:
        extra = frozenset()  # listing must work before the app is configured
    listing = {
        "documented": sorted(CURRENT_SOURCES),
        "legacy": sorted(LEGACY_SOURCES),
        "extra": sorted(extra - CURRENT_SOURCES - LEGACY_SOURCES),
    }
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for source in listing["documented"]:
        print(source)
    for source in listing["legacy"]:
        print(f"{source}  (dropped from the docs; accepted with a warning)")
    for source in listing["extra"]:
        print(f"{source}  (MCAS_DISCOVERY_EXTRA_SOURCES)")
    return 0


def run_upload(args: argparse.Namespace) -> int:
    from shared.discovery.api import MdaDiscoveryApi
    from shared.discovery.config import discovery_config
    from shared.discovery.content import FileSource
    from shared.discovery.jobs import validate_stream
    from shared.discovery.ledger import Ledger, MemoryLedger, TableLedger
    from shared.discovery.sources import validate_source
    from shared.discovery.uploader import Uploader, UploadRequest
    from shared.settings import get_settings

    settings = get_settings()
    config = discovery_config()
    source_type = validate_source(args.source, extra=config.extra_sources)
    stream = validate_stream(args.stream)
    profile = settings.tenant(args.tenant) if args.tenant else settings.default_tenant
    ledger: Ledger
    if settings.storage.configured and not args.force:
        ledger = TableLedger.default()
    else:
        ledger = MemoryLedger()
        if not args.force:
            print(
                "note: AzureWebJobsStorage is not set; uploads are not checked against the app's ledger",
                file=sys.stderr,
            )
    uploader = Uploader(
        MdaDiscoveryApi.for_profile(profile), config, ledger, allow_loopback=settings.allow_loopback
    )
    failed = 0
    for path in args.files:
        bar = ProgressBar(path.name, sys.stderr)
        try:
            source = FileSource(path, chunk_bytes=config.block_bytes)
            result = uploader.upload(
                UploadRequest(source, source_type, stream, args.snapshot, profile.name), progress=bar.update
            )
        except (McasError, OSError) as exc:
            bar.close()
            failed += 1
            if args.json:
                print(
                    json.dumps({"file": str(path), "outcome": "failed", "error": _one_line(exc)}), flush=True
                )
            print(f"{path}: FAILED: {_one_line(exc)}", file=sys.stderr, flush=True)
            continue
        bar.close()
        for warning in getattr(result, "warnings", ()):
            print(f"{path}: warning: {warning}", file=sys.stderr, flush=True)
        if args.json:
            print(json.dumps(_as_json(path, result, source_type, stream, snapshot=args.snapshot)), flush=True)
        else:
            print(_summary(path, result, source_type, stream, snapshot=args.snapshot), flush=True)
    return 1 if failed else 0


def _as_json(path: Path, result: Any, source_type: str, stream: str, *, snapshot: bool) -> dict[str, Any]:
    return {
        "file": str(path),
        "outcome": result.outcome,
        "source": source_type,
        "stream": stream,
        "snapshot": snapshot,
        "size": result.size,
        "sha256": result.sha256,
        "kind": result.kind,
        "seconds": round(result.seconds, 3),
        "parts": [
            {
                "index": p.index,
                "size": p.size,
                "sha256": p.sha256,
                "outcome": p.outcome,
                "name": p.name,
                "report": p.report,
            }
            for p in result.parts
        ],
        "warnings": list(getattr(result, "warnings", ())),
    }


def _summary(path: Path, result: Any, source_type: str, stream: str, *, snapshot: bool) -> str:
    target = f"{source_type} -> {stream}{' (snapshot)' if snapshot else ''}"
    if result.outcome == "already_uploaded":
        return f"{path}: already uploaded (sha256 {result.sha256[:12]}), skipped; {target}"
    rate = result.size / result.seconds if result.seconds > 0 else 0.0
    parts = f"{len(result.parts)} parts" if len(result.parts) > 1 else "1 part"
    what = "uploaded" if result.outcome == "uploaded" else "identical content already finalized, not repeated"
    kind = "" if result.kind == "text" else f" {result.kind},"
    return (
        f"{path}: {what};{kind} {human_bytes(result.size)} in {parts}, {result.seconds:.1f} s "
        f"({human_bytes(rate)}/s), sha256 {result.sha256[:12]}; {target}"
    )


def run_drop(args: argparse.Namespace) -> int:
    import datetime as dt
    import uuid

    from shared.discovery.config import discovery_config
    from shared.discovery.jobs import validate_stream
    from shared.discovery.sources import validate_source
    from shared.errors import ConfigurationError
    from shared.settings import get_settings
    from shared.storage import QUEUE_DISCOVERY_JOBS, container_client, queue_client

    settings = get_settings()
    if not settings.storage.configured:
        raise ConfigurationError("AzureWebJobsStorage", "is needed: the log goes to the app's storage")
    config = discovery_config()
    source_type = validate_source(args.source, extra=config.extra_sources)
    stream = validate_stream(args.stream)
    profile = settings.tenant(args.tenant) if args.tenant else settings.default_tenant
    container = container_client(config.container)
    queue = queue_client(QUEUE_DISCOVERY_JOBS)
    for path in args.files:
        name = f"{source_type}/{stream}/{path.name}"
        blob = container.get_blob_client(name)
        metadata = {"mcas_tenant": profile.name}
        if args.snapshot:
            metadata["mcas_snapshot"] = "true"
        with path.open("rb") as handle:
            blob.upload_blob(handle, overwrite=True, metadata=metadata)
        event = {
            "topic": _LOCAL_TOPIC,
            "subject": f"/blobServices/default/containers/{config.container}/blobs/{name}",
            "eventType": "Microsoft.Storage.BlobCreated",
            "id": str(uuid.uuid4()),
            "eventTime": dt.datetime.now(dt.UTC).isoformat(),
            "data": {"api": "PutBlob", "url": blob.url, "blobType": "BlockBlob"},
            "dataVersion": "",
            "metadataVersion": "1",
        }
        queue.send_message(json.dumps(event))
        if args.json:
            print(json.dumps({"file": str(path), "blob": f"{config.container}/{name}", "queued": True}))
        else:
            print(
                f"{path}: stored as {config.container}/{name}; BlobCreated queued on {QUEUE_DISCOVERY_JOBS}"
            )
    if not args.json:
        print("run `mcasctl host --once` (or keep `mcasctl host` running) to upload", file=sys.stderr)
    return 0


_LOCAL_TOPIC = "/subscriptions/local/resourceGroups/local/providers/Microsoft.Storage/storageAccounts/dev"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
