"""Cloud Discovery requests as the API documents them, sent to the simulator by `mcasctl discovery upload`:
`uploadAsSnapshot` only for snapshots, one report per snapshot part, the data source looked up once per run
before any byte goes out, and a warning for logs older than 90 days."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mcasctl.cli import main
from shared.discovery.freshness import newest_date, staleness_warning
from tests.fixtures.discovery import SimDiscovery, log_lines, sha256

KIB = 1024


def _upload(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict], str]:
    code = main(["discovery", "upload", *argv, "--json"])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_upload_as_snapshot_is_sent_only_for_snapshots(
    discovery_env: Callable[..., None], sim_discovery: SimDiscovery, tmp_path: Path, capsys
) -> None:
    discovery_env()
    data, snap = log_lines(2 * KIB), log_lines(2 * KIB)
    (tmp_path / "d.log").write_bytes(data)
    (tmp_path / "s.log").write_bytes(snap)
    assert (
        _upload(capsys, str(tmp_path / "d.log"), "--source", "PALO_ALTO", "--stream", "paloalto-hq")[0] == 0
    )
    assert (
        _upload(capsys, str(tmp_path / "s.log"), "--source", "PALO_ALTO", "--stream", "once", "--snapshot")[0]
        == 0
    )
    [plain] = sim_discovery.uploads(sha256(data))
    [snapshot] = sim_discovery.uploads(sha256(snap))
    assert plain["keys"] == ["inputStreamName", "uploadUrl"] and plain["snapshot"] is False
    assert snapshot["keys"] == ["inputStreamName", "uploadAsSnapshot", "uploadUrl"] and snapshot["snapshot"]


def test_a_snapshot_split_into_parts_gets_one_named_report_per_part(
    discovery_env: Callable[..., None], sim_discovery: SimDiscovery, tmp_path: Path, capsys
) -> None:
    discovery_env(MCAS_DISCOVERY_MAX_FILE_BYTES=str(8 * KIB))
    (tmp_path / "big.log").write_bytes(log_lines(20 * KIB))
    report = f"audit-{uuid.uuid4().hex[:6]}"
    code, [result], _ = _upload(
        capsys, str(tmp_path / "big.log"), "--source", "SQUID", "--stream", report, "--snapshot"
    )
    assert code == 0 and len(result["parts"]) == 3
    names = [f"{report}-part{i}of3" for i in (1, 2, 3)]
    assert [p["report"] for p in result["parts"]] == names
    finished = {u["sha256"]: u["stream"] for u in sim_discovery.uploads()}
    assert [finished[p["sha256"]] for p in result["parts"]] == names
    streams = sim_discovery.simulator.mda("contoso", "GET", "streams")["streams"]
    assert sorted(s["displayName"] for s in streams if s["displayName"].startswith(report)) == names


def test_the_data_source_is_looked_up_once_per_run_before_any_byte(
    discovery_env: Callable[..., None], sim_discovery: SimDiscovery, tmp_path: Path, capsys
) -> None:
    discovery_env()
    files = []
    for n in range(3):
        path = tmp_path / f"f{n}.log"
        path.write_bytes(log_lines(KIB))
        files.append(str(path))
    before = sim_discovery.requests("mda", "streams")
    code, results, _ = _upload(capsys, *files, "--source", "PALO_ALTO", "--stream", "paloalto-hq")
    assert code == 0 and [r["outcome"] for r in results] == ["uploaded"] * 3
    assert sim_discovery.requests("mda", "streams") == before + 1

    puts = sim_discovery.requests("mda", "upload_url")
    code, results, err = _upload(capsys, files[0], "--source", "PALO_ALTO", "--stream", "no-such-source")
    assert code == 1 and results[0]["outcome"] == "failed" and "nothing was sent" in err
    assert sim_discovery.requests("mda", "upload_url") == puts


def test_a_log_older_than_90_days_is_uploaded_with_a_warning(
    discovery_env: Callable[..., None], sim_discovery: SimDiscovery, tmp_path: Path, capsys
) -> None:
    discovery_env()
    old = tmp_path / "old.log"
    old.write_bytes(log_lines(4 * KIB))  # events of 2024-05-01
    today = dt.datetime.now(dt.UTC).date().isoformat()
    fresh = tmp_path / "fresh.log"
    fresh.write_bytes(log_lines(4 * KIB).replace(b"2024-05-01", today.encode()))
    code, results, err = _upload(
        capsys, str(old), str(fresh), "--source", "PALO_ALTO", "--stream", "paloalto-hq"
    )
    assert code == 0 and [r["outcome"] for r in results] == ["uploaded", "uploaded"]
    assert "2024-05-01" in results[0]["warnings"][0] and "older than 90 days" in results[0]["warnings"][0]
    assert results[1]["warnings"] == []
    assert f"{old}: warning:" in err and f"{fresh}: warning" not in err


def test_staleness_reads_the_newest_calendar_date() -> None:
    today = dt.date(2026, 6, 1)
    assert newest_date([b"x 2025/12/31 y", b"2026-02-28T10:00 2026-13-01 12026-01-01"]) == dt.date(
        2026, 2, 28
    )
    assert staleness_warning("a.log", [b"2026-03-03 ok"], today=today) is None  # 90 days: still processed
    assert staleness_warning("a.log", [b"2026-03-02 old"], today=today) is not None
    assert staleness_warning("a.log", [b"no dates at all"], today=today) is None
