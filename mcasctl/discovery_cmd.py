"""`mcasctl discovery upload FILE... --source SOURCE --stream NAME [--snapshot]`: upload logs by hand.

The same engine as the queue function (shared.discovery.uploader): validated source, streamed and
BOM-stripped, split above the per-file limit, SSRF-guarded upload URL, fresh URL after a failed PUT. With
`AzureWebJobsStorage` set, the upload ledger is shared with the app, so a file the app already uploaded is
skipped (use --force to send it anyway). A progress bar (bytes, rate, ETA) is drawn on a terminal; every file
ends with one summary line on stdout. Exit status 1 if any file failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mcasctl.progress import ProgressBar, human_bytes
from shared.errors import McasError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("discovery", help="Cloud Discovery log uploads", description=__doc__)
    commands = parser.add_subparsers(dest="discovery_command", metavar="SUBCOMMAND")
    upload = commands.add_parser(
        "upload",
        help="upload log files to Cloud Discovery",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upload.add_argument("files", nargs="+", type=Path, metavar="FILE", help="log files (text, gzip or zip)")
    upload.add_argument("--source", required=True, help="log format id, e.g. PALO_ALTO (see the docs' list)")
    upload.add_argument(
        "--stream", required=True, help="data source name (or the report name with --snapshot)"
    )
    upload.add_argument("--snapshot", action="store_true", help="create a one-off snapshot report")
    upload.add_argument("--tenant", help="tenant profile name (MCAS_TENANT_PROFILES); default: the first")
    upload.add_argument("--force", action="store_true", help="ignore the upload ledger (upload even if done)")
    upload.set_defaults(handler=run_upload)
    parser.set_defaults(handler=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


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
            print(f"{path}: FAILED: {_one_line(exc)}", flush=True)
            continue
        bar.close()
        print(_summary(path, result, source_type, stream, snapshot=args.snapshot), flush=True)
    return 1 if failed else 0


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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
