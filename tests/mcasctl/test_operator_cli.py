"""Operator mistakes that used to lose alerts, made on purpose through `mcasctl` over the simulator and
Azurite: a future `--since`, a future checkpoint, an existing `--out` file, a half-written line; and the
commands that show, repair and export around the checkpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from mcasctl.cli import main
from shared.alerts.checkpoints import (
    STREAM_SCHEDULED,
    Checkpoint,
    FutureCheckpointError,
    MemoryCheckpointStore,
    TableCheckpointStore,
    checkpoint_store,
)
from shared.storage import TABLE_CHECKPOINTS, table_client

DAY_MS = 86_400_000
FUTURE = "2099-01-01T00:00:00Z"
FUTURE_MS = 4_070_908_800_000


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _add(sim: Any, count: int, *, ago_ms: int) -> list[str]:
    stamp = int(time.time() * 1000) - ago_ms
    ids: list[str] = sim.mda("contoso", "POST", "alerts/add", {"count": count, "timestamp": stamp})["ids"]
    return ids


def _lines(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


# -- 1. future times ------------------------------------------------------------------------------------


def test_a_future_since_is_refused_and_writes_no_checkpoint(alerts_env, tmp_path, capsys):
    tenant = alerts_env["tenant"]
    code, out, err = _cli(capsys, "alerts", "pull", "--since", FUTURE, "--out", str(tmp_path / "a.ndjson"))
    assert code == 2 and out == ""
    assert "--since 2099-01-01T00:00:00.000Z is in the future" in err and err.count("\n") == 1
    assert checkpoint_store().load(STREAM_SCHEDULED, tenant) is None
    assert not (tmp_path / "a.ndjson").exists()


def test_a_checkpoint_write_beyond_now_is_refused_by_both_stores(app_env):
    table = TableCheckpointStore(table_client(TABLE_CHECKPOINTS))
    for store in (table, MemoryCheckpointStore()):
        with pytest.raises(FutureCheckpointError, match="in the future"):
            store.save(STREAM_SCHEDULED, "future-write-test", Checkpoint(watermark_ms=FUTURE_MS))
        assert store.load(STREAM_SCHEDULED, "future-write-test") is None
    # A few minutes ahead is clock skew, not a mistake.
    skewed = int(time.time() * 1000) + 60_000
    saved = MemoryCheckpointStore().save(STREAM_SCHEDULED, "skew", Checkpoint(watermark_ms=skewed))
    assert saved.watermark_ms == skewed


def test_a_stored_future_checkpoint_fails_every_pull_and_shows_in_health_and_show(alerts_env, capsys):
    from shared.health import check_pulls
    from shared.settings import get_settings

    tenant = alerts_env["tenant"]
    # Written as an older version would have (no guard): the clock of this store is far ahead.
    ahead = TableCheckpointStore(table_client(TABLE_CHECKPOINTS), now=lambda: FUTURE_MS / 1000)
    ahead.save(STREAM_SCHEDULED, tenant, Checkpoint(watermark_ms=FUTURE_MS))

    code, _, err = _cli(capsys, "alerts", "pull")
    assert code == 1
    assert "FutureCheckpointError" in err and "mcasctl alerts checkpoint set" in err

    health = check_pulls(get_settings(), 5)
    assert not health.ok and "in the future" in health.detail
    assert health.data["tenants"][tenant]["status"] == "future_checkpoint"

    code, out, err = _cli(capsys, "alerts", "checkpoint", "show", "--json")
    assert code == 1
    assert "in the future" in json.loads(out)[0]["problem"]


# -- 2. show / set / reset / export --------------------------------------------------------------------


def test_checkpoint_set_and_reset_repair_the_watermark_with_confirmation(alerts_env, tmp_path, capsys):
    sim, tenant = alerts_env["sim"], alerts_env["tenant"]
    old = _add(sim, 3, ago_ms=2 * DAY_MS)
    recent = _add(sim, 2, ago_ms=3_600_000)
    out_file = tmp_path / "a.ndjson"
    assert _cli(capsys, "alerts", "pull", "--lookback", "1d", "--out", str(out_file))[0] == 0
    assert sorted(_lines(out_file)) == sorted(recent)

    code, out, _ = _cli(capsys, "alerts", "checkpoint", "show")
    assert code == 0 and out.startswith(f"{tenant}: watermark ") and "2 alerts in 1 pages" in out

    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 86400))
    code, _, err = _cli(capsys, "alerts", "checkpoint", "set", "--since", since)  # no terminal, no --yes
    assert code == 2 and "--yes is needed to confirm" in err
    code, _, err = _cli(capsys, "alerts", "checkpoint", "set", "--since", FUTURE, "--yes")
    assert code == 2 and "is in the future" in err

    code, out, err = _cli(capsys, "alerts", "checkpoint", "set", "--since", since, "--yes", "--json")
    assert code == 0 and json.loads(out)["after"].startswith(since[:19])
    assert "set by an operator" in err  # logged
    assert _cli(capsys, "alerts", "pull", "--out", str(out_file), "--append")[0] == 0
    assert sorted(_lines(out_file)) == sorted([*recent, *old, *recent])  # re-delivered from the new time

    code, out, err = _cli(capsys, "alerts", "checkpoint", "reset", "--yes")
    assert code == 0 and "checkpoint reset" in out and "reset by an operator" in err
    assert checkpoint_store().load(STREAM_SCHEDULED, tenant) is None


def test_set_is_refused_while_another_run_holds_the_lease(alerts_env, capsys):
    tenant = alerts_env["tenant"]
    held = Checkpoint(watermark_ms=int(time.time() * 1000) - DAY_MS).leased("other-run", time.time() + 60)
    checkpoint_store().save(STREAM_SCHEDULED, tenant, held)
    code, _, err = _cli(capsys, "alerts", "checkpoint", "reset", "--yes")
    assert code == 1 and "lease held by other-run" in err
    assert checkpoint_store().load(STREAM_SCHEDULED, tenant) is not None


def test_export_reads_a_window_without_touching_the_checkpoint_or_the_sinks(alerts_env, tmp_path, capsys):
    sim, tenant = alerts_env["sim"], alerts_env["tenant"]
    inside = _add(sim, 4, ago_ms=2 * DAY_MS)
    _add(sim, 2, ago_ms=5 * DAY_MS)  # before the window
    _add(sim, 3, ago_ms=3_600_000)  # after it
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 86400))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
    out_file = tmp_path / "window.ndjson"

    code, out, _ = _cli(
        capsys, "alerts", "export", "--since", since, "--until", until, "--out", str(out_file), "--json"
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["alerts"] == 4 and summary["complete"] is True
    assert sorted(_lines(out_file)) == sorted(inside)
    assert checkpoint_store().load(STREAM_SCHEDULED, tenant) is None  # the timer's: never created

    code, _, err = _cli(capsys, "alerts", "export", "--since", since, "--out", str(out_file))
    assert code == 2 and "already exists (4 lines)" in err


# -- 3. --out never truncates silently; only whole lines -------------------------------------------------


def test_an_existing_out_file_is_refused_unless_append_or_overwrite(alerts_env, tmp_path, capsys):
    sim = alerts_env["sim"]
    first = _add(sim, 3, ago_ms=7_200_000)
    out_file = tmp_path / "alerts.ndjson"
    assert _cli(capsys, "alerts", "pull", "--lookback", "1d", "--out", str(out_file))[0] == 0
    kept = out_file.read_bytes()

    second = _add(sim, 2, ago_ms=3_600_000)
    code, out, err = _cli(capsys, "alerts", "pull", "--out", str(out_file))
    assert code == 2 and out == "" and "already exists (3 lines); nothing was written" in err
    assert out_file.read_bytes() == kept

    # A killed run left half a line: --append removes it, then adds whole lines only.
    with out_file.open("ab") as handle:
        handle.write(b'{"id": "half-writ')
    code, _, err = _cli(capsys, "alerts", "pull", "--out", str(out_file), "--append")
    assert code == 0 and "removed an incomplete last line (17 bytes)" in err
    assert _lines(out_file) == [*_lines_of(kept), *second] and sorted(_lines_of(kept)) == sorted(first)

    code, _, _ = _cli(capsys, "alerts", "pull", "--out", str(out_file), "--overwrite")
    assert code == 0 and out_file.read_bytes() == b""  # nothing new: replaced by an empty file


def _lines_of(data: bytes) -> list[str]:
    return [json.loads(line)["id"] for line in data.decode().splitlines()]


def test_a_page_interrupted_while_writing_leaves_no_partial_line(tmp_path, monkeypatch):
    import os

    from shared.alerts.sinks import AlertBatch, FileSink
    from tests.alerts.fakes import T0_MS

    path = tmp_path / "out.ndjson"
    path.write_bytes(b'{"id": "before"}\n')
    alert: Any = {"id": "x" * 24, "timestamp_ms": T0_MS, "title": "t" * 5000}
    other: Any = {**alert, "id": "y" * 24}
    batch = AlertBatch.build("t", "alerts", "k", [alert, other])
    real_write = os.write
    calls = {"n": 0}

    def write_then_interrupt(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_write(fd, bytes(data)[:3000])  # short writes: the page needs several calls

    monkeypatch.setattr(os, "write", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        FileSink(path).deliver(batch, deadline=None)
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == b'{"id": "before"}\n'


# -- 5. Ctrl-C: prompt stop, lease released, a report; a second Ctrl-C quits without a traceback -----------


class _Pull:
    """`mcasctl alerts pull` in a child process whose third request waits a long time for the budget."""

    def __init__(self, tmp_path: Path, sim: Any) -> None:
        import os
        import queue
        import subprocess
        import sys
        import threading
        import uuid

        ids = _add(sim, 250, ago_ms=3_600_000)
        assert len(ids) == 250
        window = 100 + uuid.uuid4().int % 1000 / 10  # its own budget partition: no slots used by others
        env = {
            **os.environ,
            "MCAS_RATE_LIMIT_PER_MINUTE": "2",
            "MCAS_RATE_LIMIT_WINDOW_SECONDS": f"{window:g}",
            "MCAS_ALERT_SINKS": "",
            "PYTHONUNBUFFERED": "1",
        }
        self.out = tmp_path / "alerts.ndjson"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mcasctl.cli",
                "alerts",
                "pull",
                "--lookback",
                "1d",
                "--out",
                f"{self.out}",
            ],
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        assert self.proc.stderr is not None
        stderr = self.proc.stderr

        def pump() -> None:
            for line in stderr:
                self.err.append(line)
                self.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, text: str, timeout: float = 120) -> None:
        import queue

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if text in self.lines.get(timeout=1):
                    return
            except queue.Empty:
                assert self.proc.poll() is None, "".join(self.err)
        raise AssertionError(f"no {text!r} in {''.join(self.err)}")

    def interrupt(self, times: int = 1) -> tuple[int, float]:
        import signal

        began = time.monotonic()
        for _ in range(times):
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        return code, time.monotonic() - began


def test_ctrl_c_during_a_budget_wait_stops_at_once_releases_the_lease_and_reports(alerts_env, tmp_path):
    tenant = alerts_env["tenant"]
    run = _Pull(tmp_path, alerts_env["sim"])
    run.wait_for("page 2: 100 alerts")  # the third request now waits ~100 s for the request budget
    code, took = run.interrupt()
    err = "".join(run.err)
    assert code == 130, err
    assert took < 20, f"took {took:.1f} s to stop (the budget wait was ~100 s)"
    assert "Traceback" not in err
    assert f"{tenant}: stopped; 200 alerts in 2 pages delivered and committed" in err
    assert "Not delivered: alerts created after" in err
    cp = checkpoint_store().load(STREAM_SCHEDULED, tenant)
    assert cp is not None and cp.lease_owner is None and cp.delivered_total == 200  # lease released
    assert len(_lines(run.out)) == 200


def test_a_second_ctrl_c_quits_without_a_traceback(alerts_env, tmp_path):
    run = _Pull(tmp_path, alerts_env["sim"])
    run.wait_for("page 2: 100 alerts")
    code, _took = run.interrupt(times=2)
    err = "".join(run.err)
    assert code == 130 and "Traceback" not in err, err
    assert len(_lines_raw(run.out)) in (100, 200)


def _lines_raw(path: Path) -> list[str]:
    lines = path.read_text().split("\n")
    assert lines[-1] == ""  # whole lines only
    return [json.loads(line)["id"] for line in lines[:-1]]


# -- 11. no sink: one clear error per timer run, and health says so ----------------------------------------


def test_without_a_sink_the_timer_logs_one_error_and_health_fails(alerts_env, monkeypatch, caplog):
    import logging

    from azure.functions.timer import TimerRequest

    from functions.alerts import alerts_pull_timer
    from localdev.host.invoke import LocalContext
    from shared.caches import reset_all_caches
    from shared.health import check_pulls
    from shared.settings import get_settings

    monkeypatch.setenv("MCAS_ALERT_SINKS", "")
    reset_all_caches()
    timer = TimerRequest(past_due=False)
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            alerts_pull_timer(timer, LocalContext("alerts_pull_timer", "."))  # no exception, no traceback
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "alert pull timer did not run: MCAS_ALERT_SINKS names no sink: set any of queue, blob, webhook, logs"
    ] * 2
    assert not any(r.exc_info for r in caplog.records)
    health = check_pulls(get_settings(), 5)
    assert not health.ok and "MCAS_ALERT_SINKS names no sink" in health.detail
