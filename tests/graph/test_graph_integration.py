"""Changes are events, over real HTTPS (simulator: Entra, Key Vault, MDA, Graph) and Azurite checkpoints.

Graph: 2,000 alerts are pulled, then 300+ versions appear (some alerts change twice, some changes are
stamped behind the cursor inside the overlap window, some become visible only later); the next pulls deliver
exactly the new versions, each once. MDA: 300 closures after the first pull come as 300 new versions.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from shared.alerts.config import AlertConfig
from shared.alerts.pull import default_environment, run_scheduled
from shared.settings import get_settings
from tests.alerts.fakes import RecordingSink
from tests.fixtures.alerts import seed_alerts

DAY_MS = 86_400_000


@pytest.fixture
def graph_env(alerts_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    sim = alerts_env["sim"]
    monkeypatch.setenv("MCAS_ALERT_SOURCE", "graph")
    monkeypatch.setenv("MCAS_GRAPH_OVERLAP_SECONDS", "300")
    get_settings.cache_clear()
    sim.graph("contoso", "POST", "reset")
    sim.graph("contoso", "POST", "config", {"limit": 150, "window_s": 2})
    return alerts_env


def _pull(sink: RecordingSink) -> list[Any]:
    config = AlertConfig.from_settings(get_settings())
    env = default_environment(config, extra_sinks=[sink], require_sink=False)
    results = run_scheduled(env=env, budget_s=120, start_ms=int(time.time() * 1000) - 3 * DAY_MS)
    assert all(r.ok for r in results), [(r.stream, r.error) for r in results]
    return results


def _versions(sink: RecordingSink) -> list[tuple[str, int]]:
    return [(a["id"], a["version"]) for b in sink.batches for a in b.alerts]  # type: ignore[typeddict-item]


def test_graph_pull_delivers_every_new_version_once(graph_env: dict[str, Any]) -> None:
    sim = graph_env["sim"]
    seed_alerts(sim, 2000, seed=3)
    first = RecordingSink()
    _pull(first)
    graph_view = sim.graph("contoso", "GET", "alerts")["alerts"]
    assert sorted(_versions(first)) == sorted((a["id"], _us(a["lastUpdateDateTime"])) for a in graph_view)
    assert len(first.ids) == 2000 == len(set(first.ids))
    record = first.batches[0].alerts[0]
    assert record["schema_version"] == 2 and record["source"] == "graph"  # type: ignore[typeddict-item]
    assert record["mda_id"] and record["id"] == f"ca{record['mda_id']}"  # type: ignore[typeddict-item]

    ids = sorted(a["id"] for a in graph_view)
    once, twice, behind, late = ids[:200], ids[200:250], ids[250:280], ids[280:300]
    changes = sim.graph("contoso", "POST", "alerts/change", {"ids": once, "status": "inProgress"})["changes"]
    changes += sim.graph("contoso", "POST", "alerts/change", {"ids": twice})["changes"]
    # Stamped 60 s ago: behind the cursor the first pull committed, inside the 300 s overlap.
    changes += sim.graph(
        "contoso", "POST", "alerts/change", {"ids": behind, "classification": "truePositive", "back_s": 60}
    )["changes"]
    changes += sim.graph(
        "contoso",
        "POST",
        "alerts/change",
        {"ids": late, "assignedTo": "late@contoso.com", "visible_after_s": 2},
    )["changes"]
    expected = {(c["id"], _us(c["lastUpdateDateTime"])) for c in changes}
    assert len(expected) == 300

    second = RecordingSink()
    _pull(second)  # the late ones are not visible yet
    delivered = _versions(second)
    assert len(delivered) == len(set(delivered)) == 280
    assert set(delivered) <= expected and not {v for v in delivered if v[0] in late}

    # The second change of 50 alerts, after the pull that delivered their first.
    again = sim.graph("contoso", "POST", "alerts/change", {"ids": twice, "status": "resolved"})["changes"]
    expected |= {(c["id"], _us(c["lastUpdateDateTime"])) for c in again}
    assert len(expected) == 350
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait for the simulator to show the late changes (no fixed sleep)
        shown = {a["id"]: a for a in sim.graph("contoso", "GET", "alerts")["alerts"]}
        if all(shown[i]["assignedTo"] == "late@contoso.com" for i in late):
            break
        time.sleep(0.2)
    third = RecordingSink()
    _pull(third)
    delivered += _versions(third)
    assert Counter(delivered) == Counter(expected)  # every new version, each once, none missed

    fourth = RecordingSink()
    _pull(fourth)
    assert _versions(fourth) == []
    assert int(sim.graph("contoso", "GET", "throttle/stats")["throttled"]) == 0

    # The probe: one one-item request says whether a pull would find anything newer.
    assert _probe() is False
    sim.graph("contoso", "POST", "alerts/change", {"ids": ids[:1], "status": "resolved"})
    assert _probe() is True


def test_mda_source_delivers_closures_as_new_versions(alerts_env: dict[str, Any]) -> None:
    from shared.mda.alerts import AlertsApi
    from shared.mda.client import client_for

    sim = alerts_env["sim"]
    seed_alerts(sim, 2000, seed=8)
    first = RecordingSink()
    _pull(first)
    assert len(first.ids) == 2000 == len(set(first.ids))
    open_ids = sorted(
        a["_id"] for a in sim.mda("contoso", "GET", "alerts")["alerts"] if a["resolutionStatusValue"] == 0
    )
    assert len(open_ids) >= 300
    profile = get_settings().default_tenant
    api = AlertsApi(client_for(profile))
    api.close("true_positive", open_ids[:150], deadline=api.client.deadline_in(60))
    api.close("benign", open_ids[150:300], reason_id=6, deadline=api.client.deadline_in(60))

    second = RecordingSink()
    _pull(second)
    records = [a for b in second.batches for a in b.alerts]
    assert sorted(r["id"] for r in records) == sorted(open_ids[:300])
    by_id = {r["id"]: r for r in records}
    assert {by_id[i]["classification"] for i in open_ids[:150]} == {"truePositive"}  # type: ignore[typeddict-item]
    assert {by_id[i]["classification"] for i in open_ids[150:300]} == {  # type: ignore[typeddict-item]
        "informationalExpectedActivity"
    }
    assert all(r["status"] == "resolved" for r in records)
    third = RecordingSink()
    _pull(third)
    assert third.batches == []
    assert _probe() is False
    api.close("false_positive", open_ids[300:301], deadline=api.client.deadline_in(60))
    assert _probe() is True


def _probe() -> bool:
    from shared.alerts.pull import probe_tenant

    config = AlertConfig.from_settings(get_settings())
    env = default_environment(config, extra_sinks=[RecordingSink()], require_sink=False)
    return probe_tenant(get_settings().default_tenant, env)


def _us(iso: str) -> int:
    from shared.timeparse import parse_iso_us

    return parse_iso_us(iso, what="test")


def test_mcasctl_pull_source_graph_overrides_the_profile(alerts_env, monkeypatch, tmp_path, capsys) -> None:
    from mcasctl.cli import main

    sim = alerts_env["sim"]
    monkeypatch.setenv("MCAS_ALERT_SINKS", "")
    sim.graph("contoso", "POST", "reset")
    sim.graph("contoso", "POST", "config", {"limit": 150, "window_s": 2})
    seed_alerts(sim, 300, seed=9)
    out = tmp_path / "graph.ndjson"
    assert main(["alerts", "pull", "--source", "graph", "--lookback", "3d", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 300 and {r["source"] for r in records} == {"graph"}
    assert {r["mda_id"] for r in records} == {a["_id"] for a in sim.mda("contoso", "GET", "alerts")["alerts"]}
    summary = capsys.readouterr().out
    assert "[alerts-graph]: alerts=300" in summary and "429s=0" in summary
