"""Content planning on local files: BOM skipping, archives passed through, line-boundary splits."""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.discovery.content import UTF8_BOM, FileSource, plan_content
from shared.discovery.transfer import block_id, block_size, rechunk
from shared.errors import TerminalError, ValidationError


def _write(tmp_path: Path, name: str, data: bytes) -> FileSource:
    path = tmp_path / name
    path.write_bytes(data)
    return FileSource(path, chunk_bytes=7)


def _read_parts(source: FileSource, max_bytes: int) -> list[bytes]:
    plan = plan_content(source, max_bytes)
    return [b"".join(source.open(p.start, p.length)) for p in plan.parts]


def test_bom_is_skipped_and_nothing_else(tmp_path: Path) -> None:
    source = _write(tmp_path, "a.log", UTF8_BOM + b"line 1\nline 2\n")
    plan = plan_content(source, 1000)
    assert (plan.kind, plan.bom_bytes, plan.upload_bytes) == ("text", 3, 14)
    assert _read_parts(source, 1000) == [b"line 1\nline 2\n"]


def test_a_bom_later_in_the_file_is_content(tmp_path: Path) -> None:
    source = _write(tmp_path, "a.log", b"x\n" + UTF8_BOM + b"y\n")
    assert _read_parts(source, 1000) == [b"x\n" + UTF8_BOM + b"y\n"]


def test_gzip_and_zip_pass_through_unchanged(tmp_path: Path) -> None:
    gz = gzip.compress(b"a\n" * 100)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fw.log", "a\n" * 100)
    for name, data, kind in (("a.log.gz", gz, "gzip"), ("a.zip", buffer.getvalue(), "zip")):
        source = _write(tmp_path, name, data)
        plan = plan_content(source, len(data))
        assert plan.kind == kind and len(plan.parts) == 1 and plan.bom_bytes == 0
        assert _read_parts(source, len(data)) == [data]


def test_an_archive_above_the_limit_cannot_be_split(tmp_path: Path) -> None:
    source = _write(tmp_path, "big.gz", gzip.compress(bytes(range(256)) * 64))
    with pytest.raises(TerminalError, match="compressed files cannot be split"):
        plan_content(source, 100)


@pytest.mark.parametrize("data", [b"", UTF8_BOM])
def test_empty_files_are_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ValidationError, match="nothing to upload"):
        plan_content(_write(tmp_path, "e.log", data), 100)


def test_split_at_the_last_line_break_before_each_limit(tmp_path: Path) -> None:
    data = b"aaaa\nbb\ncccccc\nd\n"  # 17 bytes
    parts = _read_parts(_write(tmp_path, "s.log", data), 8)
    assert parts == [b"aaaa\nbb\n", b"cccccc\n", b"d\n"]


def test_a_line_longer_than_the_limit_is_terminal(tmp_path: Path) -> None:
    with pytest.raises(TerminalError, match="no line break"):
        plan_content(_write(tmp_path, "l.log", b"x" * 50 + b"\n"), 20)


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(
        st.binary(min_size=0, max_size=30).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=40
    ),
    bom=st.booleans(),
    trailing_newline=st.booleans(),
    limit=st.integers(min_value=32, max_value=200),
)
def test_split_property(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    bom: bool,
    trailing_newline: bool,
    limit: int,
) -> None:
    """Parts concatenate to the file minus its BOM, fit the limit, and end at line breaks (but the last)."""
    body = b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    if body.startswith(b"\x1f\x8b") or body.startswith(b"PK") or not body or body.startswith(UTF8_BOM):
        return
    source = _write(tmp_path_factory.mktemp("p"), "p.log", (UTF8_BOM if bom else b"") + body)
    parts = _read_parts(source, limit)
    assert b"".join(parts) == body
    assert all(0 < len(p) <= limit for p in parts)
    assert all(p.endswith(b"\n") for p in parts[:-1])


def test_rechunk_makes_equal_blocks_and_ids_have_one_length() -> None:
    blocks = list(rechunk([b"abc", b"defgh", b"", b"ijklmnop", b"q"], 4))
    assert blocks == [b"abcd", b"efgh", b"ijkl", b"mnop", b"q"]
    assert len({len(block_id(i)) for i in (0, 9, 99_999)}) == 1
    assert block_size(5_000_000_000, 4 * 1024 * 1024) == 4 * 1024 * 1024
    assert block_size(5_000_000_000, 1024) == 100_000  # grown: at most 50,000 blocks per blob
    assert hashlib.sha256(b"".join(blocks)).hexdigest() == hashlib.sha256(b"abcdefghijklmnopq").hexdigest()
