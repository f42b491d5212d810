"""Alert pulls under chaos: two tenants pulled concurrently over real HTTPS while the API answers 10% 5xx,
drops 5% of connections, throttles in bursts and stalls now and then, Key Vault and Entra ID fail now and
then, and tokens are revoked and the client secret rotated mid-run.

What must hold (checked by alert id): every alert that exists when the runs end was delivered; no id is
delivered twice except within the documented bound - at most one page per run that failed after delivering
it, which the blob sink's page-keyed names then absorb.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.alerts.config import AlertConfig
from shared.alerts.pull import PullResult, default_environment, run_scheduled
from shared.settings import get_settings
from tests.fixtures.alerts import blob_ids
from tests.fixtures.chaos import ChaosEnv, ChaosSink, duplicates

pytestmark = pytest.mark.chaos

PAGE = 100
MAX_RUNS = 6


def _pull_until_caught_up(sink: ChaosSink) -> list[list[PullResult]]:
    """Timer runs until every tenant's run ends caught up without error (as the next timer slots would)."""
    config = AlertConfig.from_settings(get_settings())
    env = default_environment(config, extra_sinks=[sink])
    history: list[list[PullResult]] = []
    for _ in range(MAX_RUNS):
        results = run_scheduled(env=env, budget_s=45)
        history.append(results)
        if all(r.ok and r.stopped == "caught_up" for r in results):
            return history
    raise AssertionError(
        f"not caught up after {MAX_RUNS} runs: {[[r.as_dict() for r in h] for h in history]}"
    )


def _check_delivery(
    chaos: ChaosEnv, sink: ChaosSink, history: list[list[PullResult]], expected: dict[str, set]
):
    failed_runs = {
        t: sum(1 for h in history for r in h if r.tenant == chaos.profile(t) and not r.ok) for t in expected
    }
    for tenant, ids in expected.items():
        name = chaos.profile(tenant)
        delivered = sink.ids(name)
        assert set(delivered) == ids, (len(set(delivered) - ids), len(ids - set(delivered)))
        assert sum(duplicates(delivered).values()) <= PAGE * failed_runs[tenant]
        stored = blob_ids(name)
        assert set(stored) == ids
        assert sum(duplicates(stored).values()) <= PAGE * failed_runs[tenant]


def test_pulls_finish_complete_under_api_key_vault_and_entra_faults(chaos_env: ChaosEnv) -> None:
    sim = chaos_env.sim
    seeded = {
        "contoso": chaos_env.seed("contoso", 1150, seed=3),
        "fabrikam": chaos_env.seed("fabrikam", 850, seed=4),
    }
    arrived: dict[str, list[str]] = {"contoso": [], "fabrikam": []}
    sink = ChaosSink(
        actions={
            2: lambda: arrived["contoso"].extend(chaos_env.add_now("contoso", 30)),
            4: lambda: arrived["fabrikam"].extend(chaos_env.add_now("fabrikam", 30)),
        }
    )
    sim.add_fault(service="mda", throttle_burst=3, retry_after=1)  # a 429 storm at the start
    sim.add_fault(service="mda", error_rate=0.1, status=503, retry_after=0)  # every 10th: 503
    sim.add_fault(service="mda", reset_rate=0.05)  # every 20th: connection reset
    sim.add_fault(service="mda", latency_ms=400, latency_rate=0.1)  # every 10th: +400 ms
    # Each tenant's worker needs one secret and one token: the first of each fails.
    sim.add_fault(service="keyvault", error_rate=1.0, status=503, retry_after=0, count=1)
    sim.add_fault(service="entra", error_rate=1.0, status=503, retry_after=0, count=1)

    history = _pull_until_caught_up(sink)

    expected = {t: set(seeded[t]) | set(arrived[t]) for t in seeded}
    assert all(len(arrived[t]) == 30 for t in arrived)
    _check_delivery(chaos_env, sink, history, expected)
    fired = sim.counters()["faults"]
    for kind in ("mda:throttle", "mda:error", "mda:reset", "mda:latency", "keyvault:error", "entra:error"):
        assert fired.get(kind, 0) >= 1, fired
    throttled = sum(r.throttled for h in history for r in h)
    assert throttled >= 3


def test_pull_survives_revoked_tokens_and_a_rotated_client_secret(chaos_env: ChaosEnv) -> None:
    sim = chaos_env.sim
    seeded = chaos_env.seed("contoso", 520, seed=5)
    secret_name = sim.secrets["client_secret_name"]
    events: list[Any] = []
    sink = ChaosSink(
        actions={
            1: lambda: events.append(sim.revoke_tokens()),
            3: lambda: events.append((sim.rotate_secret(secret_name), sim.revoke_tokens())),
        }
    )
    before = sim.counters()
    history = _pull_until_caught_up(sink)

    contoso = [r for h in history for r in h if r.tenant == chaos_env.profile("contoso")]
    assert contoso[-1].ok and len(events) == 2
    _check_delivery(chaos_env, sink, history, {"contoso": set(seeded)})
    after = sim.counters()
    issued = after["tokens"]["client_credentials"] - before.get("tokens", {}).get("client_credentials", 0)
    assert issued >= 3  # the first token, one after the revocation, one with the rotated secret
    statuses = after.get("mda_status", {})
    assert statuses.get("401", 0) >= 2  # each revocation was noticed by the API, and recovered from
    reads = after["keyvault_reads"].get(secret_name, 0) - before.get("keyvault_reads", {}).get(secret_name, 0)
    assert reads >= 2  # the rotated secret was re-read (with a fresh Key Vault token: the old one is revoked)
