"""Benchmark: the shared token helper vs acquiring a token per invocation (what the peers do).

Against a local simulator over HTTPS, in one process standing for one Functions worker:
- 1,000 invocations, the first 64 of them concurrent on a cold start, the rest on an 8-thread pool;
  counts identity-provider token requests and Key Vault reads from the simulator's own counters, for the
  helper and for the baseline (a new MSAL app and a Key Vault read per invocation);
- p50 / p99 of a cached `authorization_header()` call (and, for scale, of MSAL's own cache hit).

Run: .venv/bin/python bench/bench_auth.py [--invocations 1000] [--burst 64] [--json]
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import bench_parser, contoso_simulator

from localdev.simulator.client import SimulatorHandle
from shared.caches import reset_all_caches
from shared.settings import MDA_RESOURCE_APP_ID, get_settings, reset_settings_cache

SCOPE = [f"{MDA_RESOURCE_APP_ID}/.default"]


def _cold_worker() -> None:
    reset_settings_cache()
    reset_all_caches()


def _run_invocations(invoke: Callable[[], str], *, invocations: int, burst: int, pool: int) -> float:
    """`burst` concurrent invocations released together on a cold worker, then the rest on a pool."""
    barrier = threading.Barrier(burst)
    errors: list[BaseException] = []

    def first_wave() -> None:
        barrier.wait()
        try:
            invoke()
        except BaseException as exc:
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=first_wave) for _ in range(burst)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with ThreadPoolExecutor(pool) as executor:
        for _ in executor.map(lambda _i: invoke(), range(invocations - burst)):
            pass
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} invocations failed: {errors[0]!r}")
    return elapsed


def _idp_and_kv(sim: SimulatorHandle) -> tuple[int, int]:
    counters = sim.counters()
    tokens = counters.get("tokens", {}).get("client_credentials", 0)
    reads = sum(counters.get("keyvault_reads", {}).values())
    return tokens, reads


def bench_helper(sim: SimulatorHandle, *, invocations: int, burst: int, pool: int) -> dict[str, Any]:
    from shared.auth import api_credential

    _cold_worker()
    sim.reset()
    profile = get_settings().default_tenant
    elapsed = _run_invocations(
        lambda: api_credential(profile).authorization_header(),
        invocations=invocations,
        burst=burst,
        pool=pool,
    )
    tokens, reads = _idp_and_kv(sim)
    return {"token_requests": tokens, "key_vault_reads": reads, "seconds": round(elapsed, 3)}


def bench_per_invocation(sim: SimulatorHandle, *, invocations: int, burst: int, pool: int) -> dict[str, Any]:
    """The peers' pattern: every invocation reads the secret and builds a new MSAL app to get a token
    (the Key Vault client and the worker identity are reused, which flatters the baseline)."""
    import msal
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    _cold_worker()
    sim.reset()
    settings = get_settings()
    profile = settings.default_tenant
    vault = SecretClient(
        str(settings.key_vault_url),
        DefaultAzureCredential(),
        verify_challenge_resource=settings.verify_key_vault_challenge_resource,
    )

    def invoke() -> str:
        secret = vault.get_secret(profile.client_secret_name).value
        app = msal.ConfidentialClientApplication(
            profile.client_id,
            client_credential=secret,
            authority=f"{settings.authority_host}/{profile.tenant_id}",
            instance_discovery=False,
        )
        result = app.acquire_token_for_client(scopes=SCOPE)
        return f"Bearer {result['access_token']}"

    elapsed = _run_invocations(invoke, invocations=invocations, burst=burst, pool=pool)
    tokens, reads = _idp_and_kv(sim)
    return {"token_requests": tokens, "key_vault_reads": reads, "seconds": round(elapsed, 3)}


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    return {
        "p50_us": round(pick(0.50), 3),
        "p99_us": round(pick(0.99), 3),
        "mean_us": round(statistics.fmean(ordered) / 1000, 3),
    }


def bench_cached_call(calls: int) -> dict[str, Any]:
    import msal

    from shared.auth import api_credential

    _cold_worker()
    settings = get_settings()
    profile = settings.default_tenant
    credential = api_credential(profile)
    credential.authorization_header()
    samples: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        credential.authorization_header()
        samples.append(clock() - start)
    helper = _percentiles(samples)

    # For scale: MSAL's own cache hit on a long-lived app (what a "cache the app" design pays per call).
    from shared.auth.keyvault import secret_store

    secret = secret_store(settings).get(profile.client_secret_name).value
    app = msal.ConfidentialClientApplication(
        profile.client_id,
        client_credential=secret,
        authority=f"{settings.authority_host}/{profile.tenant_id}",
        instance_discovery=False,
    )
    app.acquire_token_for_client(scopes=SCOPE)
    msal_samples: list[int] = []
    for _ in range(min(calls, 20_000)):
        start = clock()
        app.acquire_token_for_client(scopes=SCOPE)
        msal_samples.append(clock() - start)
    return {"helper": helper, "msal_cache_hit": _percentiles(msal_samples), "calls": calls}


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--invocations", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=64)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--cached-calls", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    with contoso_simulator("bench-auth-") as sim:
        shape = {"invocations": args.invocations, "burst": args.burst, "pool": args.pool}
        helper = bench_helper(sim, **shape)
        baseline = bench_per_invocation(sim, **shape)
        cached = bench_cached_call(args.cached_calls)

    def ratio(a: float, b: float) -> float:
        return round(a / b, 1) if b else float("inf")

    report = {
        "shape": shape,
        "helper": helper,
        "per_invocation_baseline": baseline,
        "ratios_baseline_over_helper": {
            "token_requests": ratio(baseline["token_requests"], helper["token_requests"]),
            "key_vault_reads": ratio(baseline["key_vault_reads"], helper["key_vault_reads"]),
            "wall_time": ratio(baseline["seconds"], helper["seconds"]),
        },
        "cached_call": cached,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{args.invocations} invocations, first {args.burst} concurrent on a cold worker, "
        f"rest on {args.pool} threads"
    )
    print(f"{'':28}{'token requests':>16}{'Key Vault reads':>17}{'wall s':>10}")
    for name, row in (("shared helper", helper), ("per-invocation (baseline)", baseline)):
        print(f"{name:28}{row['token_requests']:>16}{row['key_vault_reads']:>17}{row['seconds']:>10}")
    r = report["ratios_baseline_over_helper"]
    print(
        f"{'ratio baseline/helper':28}{r['token_requests']:>16}{r['key_vault_reads']:>17}{r['wall_time']:>10}"
    )
    h, m = cached["helper"], cached["msal_cache_hit"]
    print(
        f"cached authorization_header(): p50 {h['p50_us']} us, p99 {h['p99_us']} us ({cached['calls']} calls)"
    )
    print(f"MSAL acquire_token_for_client cache hit, for scale: p50 {m['p50_us']} us, p99 {m['p99_us']} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
