"""benchmarks/wal_pages.py and wide_floor.py: the measurements behind two verdicts.

wal_pages.py counts the pages a commit dirties by reading the WAL's frame headers; a
parser that skipped or invented frames would make the page comparison with diskcache
lie, so its count is checked against SQLite's own. wide_floor.py argues that a plain-Python
build of the wide dict grows as fast as etcher's ``()``: that build must produce the same
value etcher returns. Tiny sizes.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

pytest.importorskip("etcher_sqlite")
pytest.importorskip("msgpack")

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import wal_pages  # noqa: E402
import wide_floor  # noqa: E402


def _has_dbstat() -> bool:
    try:
        sqlite3.connect(":memory:").execute("SELECT count(*) FROM dbstat").fetchone()
    except sqlite3.OperationalError:
        return False
    return True


needs_dbstat = pytest.mark.skipif(
    not _has_dbstat(), reason="this sqlite3 was built without the dbstat table"
)


@needs_dbstat
def test_the_frames_read_are_the_frames_sqlite_logged(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    assert wal_pages.wal_frames(path + "-wal") == []
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(f"k{i:04}", b"x" * 300) for i in range(40)])
    conn.execute("COMMIT")
    frames = wal_pages.wal_frames(path + "-wal")
    # A passive checkpoint answers (busy, frames in the log, frames checkpointed).
    _busy, logged, _done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert len(frames) == logged > 1  # 40 rows of 300 bytes need several pages
    owners = wal_pages.page_owners(path)
    assert {owners[page].split()[0] for page in frames} <= {"t", "sqlite_schema"}
    assert any(owners[page] == "t leaf" for page in frames)
    conn.close()


def test_a_missing_wal_has_no_frames(tmp_path: Path) -> None:
    assert wal_pages.wal_frames(str(tmp_path / "none-wal")) == []


@needs_dbstat
def test_an_etcher_write_dirties_keys_pages() -> None:
    frames, owners = wal_pages.measure("etcher", docs=5, sample=3)
    assert frames >= 1
    assert owners["keys leaf"] > 0


def test_an_unknown_implementation_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown implementation"):
        wal_pages.writer("shelve", "/nonexistent")


def test_the_plain_python_build_is_the_value_etcher_returns(tmp_path: Path) -> None:
    from etcher import DB

    with DB(str(tmp_path / "w.db")) as db:
        db["w"] = {f"k{i}": {"v": i} for i in range(7)}
        assert wide_floor.python_build(7)() == db["w"]()


def test_every_part_is_measured() -> None:
    parts = wide_floor.measure(20, rounds=1)
    assert set(parts) == {"sql", "python", "etcher"}
    assert all(seconds >= 0 for seconds in parts.values())
