"""Kill-at-random trials for the alert pull (used by bench/bench_alerts.py and, bounded, by the tests).

One trial: a fresh tenant profile name (so a fresh checkpoint) pulls the seeded alerts with
`mcasctl alerts pull` in a subprocess that is SIGKILLed at a random moment (up to `max_kills` times), then
rerun until it completes. Checked per trial:
- at least once: every seeded alert (Graph change feed: every (id, version)) is in the delivered output;
- no duplicate after sink-side idempotency: no alert id is in two different page blobs (a redelivered page
  has the same deterministic blob name and overwrites itself);
- the checkpoint watermark, sampled every few ms while the processes run, never moves backwards;
- with `sinks="blob,logs"` and a `logs_ids` reader: every seeded alert is a row of the Log Analytics table
  (the simulated Logs Ingestion endpoint), and duplicate rows stay within one page per kill.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_REDRAWS = 5  # fresh starts of a trial whose kills all came too late


@dataclass
class TrialResult:
    trial: int
    tenant: str
    kills: int = 0
    killed_at_s: list[float] = field(default_factory=list)
    runs: int = 0
    delivered_lines: int = 0
    missing: int = 0  # seeded alerts absent from the blob sink
    missing_in_file: int = 0  # ... absent from the --out NDJSON (a second, non-idempotent sink)
    page_blobs: int = 0
    duplicates_after_idempotency: int = 0
    raw_duplicates: int = 0  # in the non-idempotent NDJSON output: at most one page per kill
    missing_in_logs: int = 0  # ... absent from the Log Analytics table (when the logs sink runs)
    logs_duplicates: int = 0  # extra rows in the table: at most one page per kill
    watermarks_sampled: int = 0
    monotonic: bool = True
    final_exit: int | None = None
    page_size: int = 100  # records per page: the raw duplicates allowed per kill

    @property
    def ok(self) -> bool:
        return (
            self.missing == 0
            and self.missing_in_file == 0
            and self.duplicates_after_idempotency == 0
            and self.monotonic
            and self.final_exit == 0
            and self.raw_duplicates <= self.page_size * self.kills
            and self.missing_in_logs == 0
            and self.logs_duplicates <= self.page_size * self.kills
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def alerts_pull_command(
    out: Path,
    *,
    lookback: str | None = None,
    wait_for_lease: bool = False,
    as_json: bool = False,
    source: str | None = None,
) -> list[str]:
    """`mcasctl alerts pull` as a subprocess command line, run with this interpreter (trials, benchmarks)."""
    cmd = [sys.executable, "-m", "mcasctl.cli", "alerts", "pull"]
    if source is not None:
        cmd += ["--source", source]
    if lookback is not None:
        cmd += ["--lookback", lookback]
    if wait_for_lease:
        cmd.append("--wait-for-lease")
    if as_json:
        cmd.append("--json")
    return [*cmd, "--out", str(out)]


def record_key(record: dict[str, Any], *, by_version: bool = False) -> str:
    """What a delivery is counted by: the alert id, or (change feeds) the id and its version."""
    return f"{record['id']}:{record.get('version')}" if by_version else str(record["id"])


def _sample_checkpoints(
    connection_string: str, tenant: str, stop: threading.Event, out: list[int], stream: str
) -> None:
    from azure.data.tables import TableServiceClient

    from shared.alerts.checkpoints import TableCheckpointStore

    table = TableServiceClient.from_connection_string(connection_string).get_table_client("mcasCheckpoints")
    store = TableCheckpointStore(table)
    while not stop.is_set():
        try:
            cp = store.load(stream, tenant)
        except Exception:  # table not created yet
            cp = None
        if cp is not None:
            out.append(cp.watermark_ms)
        stop.wait(0.01)


def _blob_pages(
    connection_string: str, tenant: str, *, stream: str, by_version: bool
) -> dict[str, list[str]]:
    from azure.storage.blob import BlobServiceClient

    container = BlobServiceClient.from_connection_string(connection_string).get_container_client(
        "mcas-alerts"
    )
    pages: dict[str, list[str]] = {}
    for blob in container.list_blobs(name_starts_with=f"{tenant}/{stream}/"):
        data = container.download_blob(blob.name).readall().decode()
        pages[blob.name] = [
            record_key(json.loads(line), by_version=by_version) for line in data.splitlines() if line
        ]
    return pages


def run_trial(
    trial: int,
    *,
    rng: random.Random,
    kill_after: tuple[float, float] = (0.3, 3.0),
    max_kills: int = 2,
    **options: Any,
) -> TrialResult:
    """One trial (`options` as `_one_trial` takes them).

    A trial whose runs all end before their planned kills proves nothing about kills, so it starts again on a
    fresh tenant with kill moments drawn from half the window, up to `_REDRAWS` times: on a busy machine the
    calibrated run can be slower than a trial's run, and a kill drawn late would then miss every run."""
    window = kill_after
    for _ in range(_REDRAWS):
        result = _one_trial(trial, rng=rng, kill_after=window, max_kills=max_kills, **options)
        if result.kills > 0 or max_kills == 0:
            break
        window = (window[0] / 2, window[1] / 2)
    return result


def _one_trial(
    trial: int,
    *,
    env: dict[str, str],
    expected_ids: set[str],
    workdir: Path,
    rng: random.Random,
    kill_after: tuple[float, float],
    max_kills: int,
    run_timeout: float = 120.0,
    sinks: str = "blob",
    logs_ids: Callable[[str], list[str]] | None = None,
    source: str | None = None,
    stream: str = "alerts",
    page_size: int = 100,
    by_version: bool = False,
) -> TrialResult:
    """`logs_ids(tenant)`: the AlertId of every table row of that tenant (when `sinks` includes logs).
    `expected_ids` holds `record_key`s: alert ids, or `id:version` for a schema-2 change feed (Graph)."""
    tenant = f"kill{trial:02d}{uuid.uuid4().hex[:6]}"
    result = TrialResult(trial=trial, tenant=tenant, page_size=page_size)
    run_env = {**env, "MCAS_TENANT_NAME": tenant, "MCAS_ALERT_SINKS": sinks}
    samples: list[int] = []
    stop = threading.Event()
    sampler = threading.Thread(
        target=_sample_checkpoints,
        args=(env["AzureWebJobsStorage"], tenant, stop, samples, stream),
        daemon=True,
    )
    sampler.start()
    outputs: list[Path] = []
    kills_planned = rng.randint(1, max_kills) if max_kills > 0 else 0
    try:
        while True:
            out = workdir / f"{tenant}-run{result.runs}.ndjson"
            outputs.append(out)
            cmd = alerts_pull_command(out, lookback="30d", wait_for_lease=True, source=source)
            # stderr to a file, never a pipe nobody drains: a chatty run would block on a full pipe.
            log_path = workdir / f"{tenant}-run{result.runs}.log"
            with log_path.open("wb") as log_file:
                proc = subprocess.Popen(
                    cmd, cwd=PROJECT_ROOT, env=run_env, stdout=subprocess.DEVNULL, stderr=log_file
                )
            result.runs += 1
            if result.kills < kills_planned:
                delay = rng.uniform(*kill_after)
                try:
                    proc.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    result.kills += 1
                    result.killed_at_s.append(round(delay, 3))
                    continue
                # Finished before the planned kill: a complete run; the trial still counts (no kill).
            else:
                proc.wait(timeout=run_timeout)
            result.final_exit = proc.returncode
            if proc.returncode != 0:
                stderr = log_path.read_text(errors="replace")
                raise RuntimeError(f"trial {trial}: final pull failed: {stderr[-2000:]}")
            break
    finally:
        time.sleep(0.05)
        stop.set()
        sampler.join(timeout=5)
    lines: list[str] = []
    for out in outputs:
        if out.exists():
            lines += [
                record_key(json.loads(line), by_version=by_version)
                for line in out.read_text().splitlines()
                if line.strip()
            ]
    result.delivered_lines = len(lines)
    result.raw_duplicates = len(lines) - len(set(lines))
    pages = _blob_pages(env["AzureWebJobsStorage"], tenant, stream=stream, by_version=by_version)
    result.page_blobs = len(pages)
    per_id = Counter(i for ids in pages.values() for i in ids)
    result.duplicates_after_idempotency = sum(1 for count in per_id.values() if count > 1)
    result.missing = len(expected_ids - set(per_id))
    result.missing_in_file = len(expected_ids - set(lines))
    if logs_ids is not None:
        rows = logs_ids(tenant)
        result.missing_in_logs = len(expected_ids - set(rows))
        result.logs_duplicates = len(rows) - len(set(rows))
    result.watermarks_sampled = len(samples)
    result.monotonic = all(a <= b for a, b in itertools.pairwise(samples))
    return result


def calibrate(env: dict[str, str], workdir: Path, *, source: str | None = None) -> float:
    """Seconds one complete, unkilled `mcasctl alerts pull` of the seeded alerts takes (fresh checkpoint), so
    trials can pick kill moments inside a run rather than after it."""
    tenant = f"calib{uuid.uuid4().hex[:6]}"
    cmd = alerts_pull_command(workdir / f"{tenant}.ndjson", lookback="30d", source=source)
    started = time.monotonic()
    with (workdir / f"{tenant}.log").open("wb") as log_file:
        code = subprocess.call(
            cmd,
            cwd=PROJECT_ROOT,
            env={**env, "MCAS_TENANT_NAME": tenant, "MCAS_ALERT_SINKS": "blob"},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    if code != 0:
        raise RuntimeError(f"calibration pull failed: {(workdir / f'{tenant}.log').read_text()[-2000:]}")
    return time.monotonic() - started


@dataclass
class KillTrials:
    calibrated_run_s: float
    results: list[TrialResult]


def kill_trials(
    env: dict[str, str],
    workdir: Path,
    *,
    expected_ids: set[str],
    trials: int,
    seed: int,
    source: str | None = None,
    window: tuple[float, float] = (0.15, 0.85),
    report: Callable[[TrialResult], None] | None = None,
    **options: Any,
) -> KillTrials:
    """`trials` runs, each killed up to twice at moments drawn inside `window` (fractions) of a calibrated,
    unkilled run, then run to the end. `report` sees each trial's result as it ends (benchmarks print it)."""
    duration = calibrate(env, workdir, source=source)
    kill_after = (window[0] * duration, window[1] * duration)
    rng = random.Random(seed)
    results = []
    for i in range(trials):
        result = run_trial(
            i,
            env=env,
            expected_ids=expected_ids,
            workdir=workdir,
            rng=rng,
            kill_after=kill_after,
            max_kills=2,
            source=source,
            **options,
        )
        if report is not None:
            report(result)
        results.append(result)
    return KillTrials(calibrated_run_s=duration, results=results)
