"""Benchmark: the `logs` sink vs `azure-monitor-ingestion`'s `LogsIngestionClient.upload` with its defaults.

Against the simulator's Logs Ingestion endpoint over HTTPS (same token, same rows, same machine), sending
normalised alerts as the pull delivers them - pages of 100 - and, for the SDK, also as one bulk list:
- records per second (wall time of the sends, token cached),
- client CPU per 1,000 records (process CPU time: projection, JSON, gzip, TLS - the simulator is another
  process),
- compressed bytes per accepted record on the wire (the simulator's byte count) and calls made,
- rows refused: the simulator also caps the decompressed body at 1 MiB (the stricter reading of the limit);
  the SDK's chunker leaves the JSON separators out of its size count, so its bulk chunks can exceed it.
Rounds alternate the variants; the median round is reported, and ratios are against the SDK per page,
measured in the same run.

Run: .venv/bin/python bench/bench_logs.py [--records 10000] [--rounds 3] [--json]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import bench_parser, contoso_simulator

from localdev.simulator.client import SimulatorHandle
from shared.alerts.logs_records import project
from shared.alerts.logs_sink import logs_sink
from shared.alerts.model import NormalizedAlert, normalize
from shared.alerts.sinks import AlertBatch
from shared.caches import reset_all_caches

PAGE = 100
DAY_MS = 86_400_000


class _SdkCredential:
    """azure-core `TokenCredential` over the app's cached credential (the same token for both variants)."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        token = self._credential.token()
        return AccessToken(token.value, int(token.expires_on))


def _alerts(sim: SimulatorHandle, count: int) -> list[NormalizedAlert]:
    now = int(time.time() * 1000)
    sim.mda(
        "contoso",
        "POST",
        "alerts/seed",
        {"count": count, "seed": 77, "start_ms": now - 7 * DAY_MS, "end_ms": now - 1000},
    )
    raw = sim.mda("contoso", "GET", "alerts")["alerts"]
    return [normalize(a, tenant="contoso") for a in raw]


def _measure(sim: SimulatorHandle, send: Callable[[], int], records: int) -> dict[str, Any]:
    sim.logs("DELETE", "records")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    calls = send()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stats = sim.logs_stats()
    return {
        "rows_refused": records - stats["rows"],
        "statuses": stats["statuses"],
        "records_per_s": round(records / wall),
        "cpu_ms_per_1000": round(1000 * cpu * 1000 / records, 1),
        "wire_bytes_per_record": round(stats["bytes"] / max(1, stats["rows"]), 1),
        "calls": calls,
        "max_call_bytes": stats["max_request_bytes"],
        "seconds": round(wall, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from azure.monitor.ingestion import LogsIngestionClient

    from shared.auth import resource_credential
    from shared.settings import get_settings

    with contoso_simulator("bench-logs-") as sim:
        os.environ.update(sim.logs_env())
        reset_all_caches()
        alerts = _alerts(sim, args.records)
        pages = [alerts[i : i + PAGE] for i in range(0, len(alerts), PAGE)]
        batches = [AlertBatch.build("contoso", "scheduled", f"p{n}", p) for n, p in enumerate(pages)]
        info = sim.info["logs_ingestion"]
        credential = resource_credential(get_settings().default_tenant, "https://monitor.azure.com/.default")
        credential.authorization_header()  # warm the token for both
        client = LogsIngestionClient(info["endpoint"], _SdkCredential(credential))
        sink = logs_sink()
        sink_gzip6 = logs_sink(gzip_level=6)  # the SDK's (zlib's default) compression level

        def sdk_per_page() -> int:
            for page in pages:
                client.upload(info["dcr_immutable_id"], info["stream"], [project(a) for a in page])
            return len(pages)

        def sdk_bulk() -> int:
            # on_error: the SDK's chunks can exceed 1 MiB decompressed (its size count leaves out the
            # separators); a strict endpoint refuses them - counted as rows_refused, not a crash.
            client.upload(
                info["dcr_immutable_id"],
                info["stream"],
                [project(a) for a in alerts],
                on_error=lambda error: None,
            )
            return -1  # the SDK does not say how many calls it made

        def ours(target: Any) -> Callable[[], int]:
            def send() -> int:
                before = target.stats.calls
                for batch in batches:
                    target.deliver(batch, deadline=None)
                return int(target.stats.calls - before)

            return send

        variants: dict[str, Callable[[], int]] = {
            "sdk_per_page": sdk_per_page,
            "sdk_bulk": sdk_bulk,
            "logs_sink_per_page": ours(sink),
            "logs_sink_gzip6_per_page": ours(sink_gzip6),
        }
        for send in variants.values():  # warm-up: connections, imports, first token
            _measure(sim, send, len(alerts))
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                rounds[name].append(_measure(sim, variants[name], len(alerts)))

    def median(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return sorted(rows, key=lambda row: row["seconds"])[len(rows) // 2]

    results = {name: median(rows) for name, rows in rounds.items()}
    base = results["sdk_per_page"]

    def ratio(name: str, key: str) -> float:
        return round(results[name][key] / base[key], 2) if base[key] else float("inf")

    report = {
        "records": len(alerts),
        "page": PAGE,
        "rounds": args.rounds,
        "results": results,
        "ratios_vs_sdk_per_page": {
            name: {
                "records_per_s": ratio(name, "records_per_s"),
                "cpu_per_1000": ratio(name, "cpu_ms_per_1000"),
                "wire_bytes": ratio(name, "wire_bytes_per_record"),
            }
            for name in results
        },
        "cpu_ms_per_1000_spread": {
            name: round(statistics.pstdev([row["cpu_ms_per_1000"] for row in rows]), 1)
            for name, rows in rounds.items()
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{len(alerts)} alerts, pages of {PAGE}, median of {args.rounds} rounds")
    print(
        f"{'':26}{'records/s':>10}{'CPU ms/1000':>13}{'bytes/rec':>11}{'calls':>7}{'max call':>10}"
        f"{'refused':>9}"
    )
    for name, row in results.items():
        print(
            f"{name:26}{row['records_per_s']:>10}{row['cpu_ms_per_1000']:>13}"
            f"{row['wire_bytes_per_record']:>11}{row['calls']:>7}{row['max_call_bytes']:>10}"
            f"{row['rows_refused']:>9}"
        )
    print("ratios vs sdk_per_page (records/s, CPU, bytes):")
    for name, r in report["ratios_vs_sdk_per_page"].items():
        print(f"  {name:24}{r['records_per_s']:>8}{r['cpu_per_1000']:>8}{r['wire_bytes']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
