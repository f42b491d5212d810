"""`mcasctl discovery upload` against the simulator, and its progress bar."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mcasctl.cli import main
from mcasctl.progress import ProgressBar, human_bytes, human_duration
from shared.discovery.content import UTF8_BOM
from tests.fixtures.discovery import SimDiscovery, log_lines, sha256


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_upload_files_with_summary_lines_and_a_skip_on_rerun(
    discovery_env: Callable[..., None],
    sim_discovery: SimDiscovery,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = log_lines(3000), log_lines(70_000)
    (tmp_path / "a.log").write_bytes(UTF8_BOM + first)
    (tmp_path / "b.log").write_bytes(second)
    args = [
        "discovery",
        "upload",
        str(tmp_path / "a.log"),
        str(tmp_path / "b.log"),
        "--source",
        "palo_alto",
        "--stream",
        "paloalto-hq",
    ]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'a.log'}: uploaded;") and "PALO_ALTO -> paloalto-hq" in lines[0]
    assert f"sha256 {sha256(first)[:12]}" in lines[0] and "1 part" in lines[1]
    assert sim_discovery.uploads(sha256(first)) and sim_discovery.uploads(sha256(second))

    assert main(args[:3] + args[4:]) == 0  # a.log again: the app's ledger knows it
    assert "already uploaded" in capsys.readouterr().out


def test_failures_are_reported_per_file_and_in_the_exit_status(
    discovery_env: Callable[..., None],
    sim_discovery: SimDiscovery,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = tmp_path / "good.log"
    good.write_bytes(log_lines(500))
    missing = tmp_path / "missing.log"
    stream = f"report-{uuid.uuid4().hex[:8]}"
    code = main(
        [
            "discovery",
            "upload",
            str(missing),
            str(good),
            "--source",
            "SQUID",
            "--stream",
            stream,
            "--snapshot",
        ]
    )
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert code == 1
    assert f"{missing}: FAILED:" in err and f"{missing}" not in out  # failures go to stderr
    assert f"{good}: uploaded;" in out and "(snapshot)" in out


def test_invalid_source_is_a_usage_error(
    discovery_env: Callable[..., None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.log").write_bytes(b"x\n")
    assert main(["discovery", "upload", str(tmp_path / "x.log"), "--source", "NOPE", "--stream", "s"]) == 1
    assert "unknown source type" in capsys.readouterr().err


def test_progress_bar_on_a_terminal(
    discovery_env: Callable[..., None],
    sim_discovery: SimDiscovery,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tty = FakeTty()
    monkeypatch.setattr("sys.stderr", tty)
    (tmp_path / "p.log").write_bytes(log_lines(20_000))
    assert (
        main(
            [
                "discovery",
                "upload",
                str(tmp_path / "p.log"),
                "--source",
                "SQUID",
                "--stream",
                "s1",
                "--snapshot",
            ]
        )
        == 0
    )
    drawn = tty.getvalue()
    assert "\r" in drawn and "100.0%" in drawn and "ETA" in drawn


def test_progress_bar_renders_bytes_rate_and_eta() -> None:
    now = [100.0]
    bar = ProgressBar("fw.log", FakeTty(), clock=lambda: now[0])
    line = bar.render(50 * 1024 * 1024, 200 * 1024 * 1024, elapsed=10.0)
    assert "fw.log [" in line and " 25.0% 50.0 MiB/200.0 MiB 5.0 MiB/s ETA 0:30" in line
    assert not ProgressBar("x", io.StringIO()).enabled  # no bar when not a terminal
    assert (human_bytes(512), human_duration(3725)) == ("512 B", "1:02:05")


def test_without_app_storage_it_uploads_and_says_duplicates_are_not_tracked(
    discovery_env: Callable[..., None],
    sim_discovery: SimDiscovery,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("AzureWebJobsStorage")
    discovery_env()  # rebuild settings without storage
    data = log_lines(1000)
    (tmp_path / "n.log").write_bytes(data)
    assert (
        main(
            [
                "discovery",
                "upload",
                str(tmp_path / "n.log"),
                "--source",
                "SQUID",
                "--stream",
                "n1",
                "--snapshot",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "not checked against the app's ledger" in captured.err and "uploaded;" in captured.out
    assert sim_discovery.uploads(sha256(data))


def test_drop_stores_the_log_and_queues_the_event_grid_message_the_function_uploads(
    discovery_env: Callable[..., None],
    sim_discovery: SimDiscovery,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Event Grid is not emulated locally: `discovery drop` plays its part, the function does the rest."""
    from shared.discovery.handler import handle_discovery_message
    from shared.storage import QUEUE_DISCOVERY_JOBS, queue_client

    discovery_env()
    data = log_lines(3000)
    path = tmp_path / f"fw-{uuid.uuid4().hex}.log"
    path.write_bytes(data)
    queue = queue_client(QUEUE_DISCOVERY_JOBS)
    assert main(["discovery", "drop", str(path), "--source", "PALO_ALTO", "--stream", "paloalto-hq"]) == 0
    assert f"PALO_ALTO/paloalto-hq/{path.name}; BlobCreated queued" in capsys.readouterr().out
    mine = [m for m in queue.receive_messages(max_messages=32) if path.name in m.content]
    assert len(mine) == 1
    event = json.loads(mine[0].content)
    assert event["eventType"] == "Microsoft.Storage.BlobCreated" and event["data"]["url"].endswith(path.name)
    outcome = handle_discovery_message(mine[0].content, message_id=mine[0].id, dequeue_count=1)
    queue.delete_message(mine[0])
    assert [r.outcome for r in outcome.uploaded] == ["uploaded"]
    [finished] = sim_discovery.uploads(sha256(data))
    assert finished["stream"] == "paloalto-hq" and finished["source"] == "PALO_ALTO"
