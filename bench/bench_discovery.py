"""Cloud Discovery upload benchmark: a generated 1 GiB log via the Azurite-backed azure provider.

    .venv/bin/python bench/bench_discovery.py            # 1 GiB, 3 rounds (a few minutes on 2 cores)
    .venv/bin/python bench/bench_discovery.py --size-mib 256 --rounds 1 --json out.json

A private simulator issues upload URLs into a private Azurite (in memory, capped with --extentMemoryLimit) and
verifies every finished upload by reading it back. Each measurement runs in a fresh child process, so one
run's allocator state cannot flatter the next:
- ours: `Uploader.upload` of the file (upload_url -> staged blocks with bounded parallelism -> done_upload),
  with the BOM stripped and SHA-256 computed on the fly. Peak RSS growth = VmHWM after the upload minus VmRSS
  before it (the peak is reset through /proc/self/clear_refs after a warm-up upload). Target < 64 MiB.
- baseline: the Azure SDK's own `BlobClient.upload_blob` of the same file to the same Azurite (a SAS URL
  into the same container), with the same max_concurrency; also reported with the SDK's defaults.
Throughput is bytes / seconds of the transfer (our PUT phase vs the SDK call), best of the rounds (the order
rotates; Azurite is restarted empty before every measurement); ours / SDK must be >= 0.8 against both SDK
configurations. End-to-end time (API calls, the simulator's read-back) is
reported alongside. The exit status is 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024
RSS_LIMIT_MIB = 64
RATIO_TARGET = 0.8
BASELINE_CONTAINER = "bench-baseline"


def memory_kib() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    return {k: int(v) for k, v in re.findall(r"(VmRSS|VmHWM):\s+(\d+)", text)}


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def generate_log(path: Path, size: int) -> None:
    """A text log with a UTF-8 BOM (stripped by the uploader): 8 MiB of numbered firewall lines, repeated."""
    template = (
        "2024-05-01 10:00:{s:02d},{n:010d},TRAFFIC,end,10.1.{a}.{b},52.{b}.{a}.7,allow,443,https,GET /p/{n}\n"
    )
    lines, length, n = [], 0, 0
    while length < 8 * MIB:
        n += 1
        line = template.format(s=n % 60, n=n, a=n % 250, b=(n // 250) % 250)
        lines.append(line)
        length += len(line)
    block = "".join(lines).encode()
    with path.open("wb") as out:
        out.write(b"\xef\xbb\xbf")
        written = 3
        while written < size:
            data = block[: size - written]
            out.write(data)
            written += len(data)


# -- child processes -----------------------------------------------------------------------------------------


def child_ours(path: Path) -> dict[str, Any]:
    from shared.discovery.api import MdaDiscoveryApi
    from shared.discovery.config import discovery_config
    from shared.discovery.content import FileSource
    from shared.discovery.ledger import MemoryLedger
    from shared.discovery.uploader import Uploader, UploadRequest
    from shared.settings import get_settings

    settings = get_settings()
    config = discovery_config()
    uploader = Uploader(
        MdaDiscoveryApi.for_profile(settings.default_tenant), config, MemoryLedger(), allow_loopback=True
    )
    warm = path.with_name("warmup.log")
    warm.write_bytes(b"2024-05-01 warm-up line\n" * 1000)
    uploader.upload(
        UploadRequest(FileSource(warm), "PALO_ALTO", "bench", snapshot=True)
    )  # token, TLS, imports
    reset_peak()
    before = memory_kib()["VmRSS"]
    result = uploader.upload(
        UploadRequest(FileSource(path, chunk_bytes=config.block_bytes), "PALO_ALTO", "bench", snapshot=True)
    )
    after = memory_kib()
    part = result.parts[0]
    return {
        "bytes": result.size,
        "put_seconds": part.put_seconds,
        "total_seconds": result.seconds,
        "method": part.method,
        "sha256": result.sha256,
        "rss_before_mib": before / 1024,
        "rss_peak_growth_mib": (after["VmHWM"] - before) / 1024,
        "concurrency": config.concurrency,
        "block_mib": config.block_bytes / MIB,
    }


def child_sdk(path: Path, blob_endpoint: str, concurrency: int | None) -> dict[str, Any]:
    from azure.storage.blob import BlobClient

    from localdev.simulator.mda_discovery import azurite_sas_url

    def sas_url(name: str) -> str:  # the kind of URL the simulator hands out, into the baseline's container
        return azurite_sas_url(blob_endpoint, BASELINE_CONTAINER, name, expires=time.time() + 3600)

    kwargs: dict[str, Any] = {} if concurrency is None else {"max_concurrency": concurrency}
    BlobClient.from_blob_url(sas_url("warmup.log")).upload_blob(b"warm-up\n" * 1000, overwrite=True)
    reset_peak()
    before = memory_kib()["VmRSS"]
    client = BlobClient.from_blob_url(sas_url(f"{path.name}-{time.time_ns()}"))
    size = path.stat().st_size
    started = time.perf_counter()
    with path.open("rb") as handle:
        client.upload_blob(handle, length=size, overwrite=True, **kwargs)
    seconds = time.perf_counter() - started
    after = memory_kib()
    return {
        "bytes": size,
        "put_seconds": seconds,
        "rss_before_mib": before / 1024,
        "rss_peak_growth_mib": (after["VmHWM"] - before) / 1024,
        "concurrency": concurrency,
    }


def run_child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{result.stderr[-4000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


# -- orchestration -------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path = args.child[0], Path(args.child[1])
        if kind == "ours":
            out = child_ours(path)
        else:
            concurrency = None if args.child[3] == "default" else int(args.child[3])
            out = child_sdk(path, args.child[2], concurrency)
        print(json.dumps(out))
        return 0

    from localdev.azurite import AzuriteHandle
    from localdev.simulator.client import start_simulator

    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as tmp:
        work = Path(tmp)
        log_path = work / "firewall.log"
        started = time.perf_counter()
        generate_log(log_path, size)
        print(f"generated {size / MIB:.0f} MiB log in {time.perf_counter() - started:.1f} s", flush=True)
        # Restarted before every measurement, so it only ever holds one upload (plus a warm-up).
        azurite = AzuriteHandle(extent_memory_limit_mb=args.size_mib + 1024)
        azurite.start()
        sim = start_simulator(work / "sim", mda_tenants=["contoso"], rate_limit=1000)
        try:
            sim.handle.mda(
                "contoso", "POST", "discovery/config", {"azurite_blob_endpoint": azurite.blob_endpoint}
            )
            env = {
                **os.environ,
                **sim.handle.app_env("contoso"),
                "AzureWebJobsStorage": azurite.connection_string,
                "MCAS_RATE_LIMIT_PER_MINUTE": "1000",
                "PYTHONPATH": str(ROOT),
            }
            concurrency = int(env.get("MCAS_DISCOVERY_UPLOAD_CONCURRENCY", "4"))
            runs: dict[str, list[dict[str, Any]]] = {"ours": [], "sdk_same": [], "sdk_default": []}
            commands = {
                "ours": ["ours", str(log_path)],
                "sdk_same": ["sdk", str(log_path), azurite.blob_endpoint, str(concurrency)],
                "sdk_default": ["sdk", str(log_path), azurite.blob_endpoint, "default"],
            }
            labels = {
                "ours": "ours",
                "sdk_same": f"sdk upload_blob c={concurrency}",
                "sdk_default": "sdk upload_blob defaults",
            }
            order = list(commands)
            for round_no in range(1, args.rounds + 1):
                for name in order:
                    _fresh_azurite(azurite)  # same empty emulator for every measurement
                    runs[name].append(run_child(commands[name], env))
                    _report(labels[name], round_no, runs[name][-1])
                order = order[1:] + order[:1]  # rotate, so no contender always runs first
            uploads = sim.handle.mda("contoso", "GET", "uploads")["uploads"]
        finally:
            sim.stop()
            azurite.stop()

    ours, sdk_same = runs["ours"], runs["sdk_same"]
    best = {name: max(_mbps(r) for r in measured) for name, measured in runs.items()}
    ratio = best["ours"] / best["sdk_same"]
    ratio_default = best["ours"] / best["sdk_default"]
    rss = max(r["rss_peak_growth_mib"] for r in ours)
    verified = [u for u in uploads if u["stream"] == "bench" and u["size"] == size - 3]
    summary = {
        "size_mib": args.size_mib,
        "rounds": args.rounds,
        "ours_mb_per_s": round(best["ours"], 1),
        "sdk_same_concurrency_mb_per_s": round(best["sdk_same"], 1),
        "sdk_default_mb_per_s": round(best["sdk_default"], 1),
        "ratio_vs_sdk_same_concurrency": round(ratio, 3),
        "ratio_vs_sdk_default": round(ratio_default, 3),
        "ours_end_to_end_s": round(min(r["total_seconds"] for r in ours), 2),
        "ours_peak_rss_growth_mib": round(rss, 1),
        "sdk_peak_rss_growth_mib": round(max(r["rss_peak_growth_mib"] for r in sdk_same), 1),
        "concurrency": concurrency,
        "block_mib": ours[0]["block_mib"],
        "uploads_verified_by_simulator": len(verified),
        "runs": runs,
    }
    ok = rss < RSS_LIMIT_MIB and min(ratio, ratio_default) >= RATIO_TARGET and len(verified) == len(ours)
    print(
        f"\nours {best['ours']:.1f} MB/s vs SDK upload_blob {best['sdk_same']:.1f} MB/s (c={concurrency}) -> "
        f"ratio {ratio:.2f} (target >= {RATIO_TARGET}); vs SDK defaults {best['sdk_default']:.1f} MB/s -> "
        f"{ratio_default:.2f}\npeak RSS growth {rss:.1f} MiB (target < {RSS_LIMIT_MIB}); SDK "
        f"{summary['sdk_peak_rss_growth_mib']} MiB; verified by the simulator: {len(verified)}/{len(ours)}"
        f"\n{'PASS' if ok else 'FAIL'}"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if ok else 1


def _mbps(run: dict[str, Any]) -> float:
    return float(run["bytes"]) / float(run["put_seconds"]) / 1e6


def _report(name: str, round_no: int, run: dict[str, Any]) -> None:
    extra = f", end to end {run['total_seconds']:.1f} s ({run['method']})" if "total_seconds" in run else ""
    print(
        f"round {round_no} {name:28s} {_mbps(run):7.1f} MB/s ({run['put_seconds']:.2f} s{extra}), "
        f"peak RSS growth {run['rss_peak_growth_mib']:.1f} MiB",
        flush=True,
    )


def _fresh_azurite(azurite: Any) -> None:
    """Restart the in-memory emulator (same ports) so every run starts empty; recreate the baseline container.

    Azurite keeps memory of deleted blobs for a while, so deleting is not enough for gigabyte runs.
    """
    from azure.storage.blob import BlobServiceClient

    azurite.restart()
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(BASELINE_CONTAINER)


if __name__ == "__main__":
    sys.exit(main())
