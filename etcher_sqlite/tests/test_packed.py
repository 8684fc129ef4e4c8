"""The schema 2 layout: small containers packed in their key's row, big ones spilled;
random versions instead of the write counter; upgrading schema 1 files."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import msgpack  # type: ignore[import-untyped]
import msgpack.fallback  # type: ignore[import-untyped]
import pytest

from etcher.errors import StoreCorrupt, WatchError
from etcher.spec import StorageBackend
from etcher.testing import BackendFixtures, StorageConformance
from etcher_sqlite import SQLiteBackend, packed, schema


def rows(raw: sqlite3.Connection, table: str) -> int:
    return int(raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_small_hash_is_one_row(store: SQLiteBackend, raw: sqlite3.Connection) -> None:
    store.hset("h", mapping={"a": 1, "b": 2})
    store.hset("h", "c", 3)
    assert (rows(raw, "keys"), rows(raw, "hashes")) == (1, 0)
    assert store.hgetall("h") == {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert store.hlen("h") == 3


def test_a_small_list_is_one_row(store: SQLiteBackend, raw: sqlite3.Connection) -> None:
    store.rpush("l", 1, 2)
    store.lpush("l", 0)
    assert (rows(raw, "keys"), rows(raw, "list_items")) == (1, 0)
    assert store.lrange("l", 0, -1) == [b"0", b"1", b"2"]
    assert store.llen("l") == 3


def test_a_hash_spills_past_max_entries(
    store: SQLiteBackend, raw: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packed, "MAX_BYTES", 1 << 20)  # only the entry limit counts here
    n = packed.MAX_ENTRIES
    store.hset("h", mapping={f"f{i}": i for i in range(n)})
    assert rows(raw, "hashes") == 0
    store.hset("h", "one-more", 1)
    assert rows(raw, "hashes") == n + 1
    assert raw.execute("SELECT value FROM keys WHERE name = 'h'").fetchone()[0] is None
    assert store.hlen("h") == n + 1
    assert store.hget("h", "f7") == b"7"
    assert store.hdel("h", "f7", "missing") == 1
    assert store.hlen("h") == n
    assert store.delete("h") == 1
    assert rows(raw, "hashes") == 0


def test_a_list_spills_past_max_bytes(store: SQLiteBackend, raw: sqlite3.Connection) -> None:
    store.rpush("l", b"x" * (packed.MAX_BYTES // 2))
    assert rows(raw, "list_items") == 0
    store.rpush("l", b"y" * (packed.MAX_BYTES // 2))
    assert rows(raw, "list_items") == 2
    store.lpush("l", "head")
    assert store.lrange("l", 0, 0) == [b"head"]
    assert store.lpop("l") == b"head"
    assert store.llen("l") == 2
    store.set("l", "now a string")
    assert rows(raw, "list_items") == 0


def test_one_batch_writes_a_packed_key_once(store: SQLiteBackend) -> None:
    pipe = store.pipeline()
    for i in range(10):
        pipe.hset("h", f"f{i}", i)
    pipe.rpush("l", "a")
    pipe.hset("h", "f0", "again")
    assert pipe.execute() == [1] * 10 + [1, 0]
    assert store.hget("h", "f0") == b"again"
    assert store.hlen("h") == 10


def test_damaged_packed_content_is_store_corrupt(
    store: SQLiteBackend, raw: sqlite3.Connection
) -> None:
    store.hset("h", "a", 1)
    raw.execute("UPDATE keys SET value = x'c1' WHERE name = 'h'")
    with pytest.raises(StoreCorrupt, match="'h'"):
        store.hgetall("h")


def test_watch_sees_a_write_to_a_packed_key(store: SQLiteBackend, other: SQLiteBackend) -> None:
    store.hset("h", "a", 1)
    pipe = store.pipeline()
    pipe.watch("h")
    other.hset("h", "a", 1)  # the same value: still a change
    pipe.multi()
    pipe.hset("h", "b", 2)
    with pytest.raises(WatchError):
        pipe.execute()
    assert store.hgetall("h") == {b"a": b"1"}


def test_versions_differ_across_forked_writers(db_path: Path) -> None:
    """Forked children must not replay the parent's version stamps (no shared seed)."""
    store = SQLiteBackend(db_path)
    store.set("k", 0)
    r, w = os.pipe()
    pids = []
    for i in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                child = SQLiteBackend(db_path)
                child.set(f"c{i}", i)
                child.close()
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    os.close(w)
    os.close(r)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    versions = [v for (v,) in store._conn().execute("SELECT version FROM keys")]
    assert len(set(versions)) == 3
    store.close()


# --- schema 1 files ------------------------------------------------------------------

# A builder of schema 1 stores (etcher-sqlite 0.3.0 before the packed format), with the
# raw SQL of that release's schema.py and its layout: every member in its own row, the
# global write counter as version.
SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES
    ('format', 'etcher'), ('schema_version', 1), ('write_counter', 0);
CREATE TABLE keys (
    name TEXT PRIMARY KEY, type INTEGER NOT NULL, version INTEGER NOT NULL,
    lo INTEGER, hi INTEGER, value BLOB
) WITHOUT ROWID;
CREATE TABLE hashes (
    name TEXT NOT NULL, field BLOB NOT NULL, value BLOB NOT NULL, PRIMARY KEY (name, field)
) WITHOUT ROWID;
CREATE TABLE list_items (
    name TEXT NOT NULL, pos INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (name, pos)
) WITHOUT ROWID;
PRAGMA application_id = 1163150152;
PRAGMA user_version = 1;
"""


def build(path: Path, *, wal: bool = True) -> None:
    """A schema 1 store holding a string ``s``, a hash ``h`` and a list ``l`` (lo = -2)."""
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(SCHEMA_1)
    conn.execute("BEGIN IMMEDIATE")
    version = conn.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'write_counter' RETURNING value"
    ).fetchone()[0]
    conn.execute("INSERT INTO keys VALUES ('s', 1, ?, NULL, NULL, ?)", (version, b"text"))
    conn.execute("INSERT INTO keys VALUES ('h', 2, ?, 0, 2, NULL)", (version,))
    conn.executemany("INSERT INTO hashes VALUES ('h', ?, ?)", [(b"a", b"1"), (b"b", b"2")])
    conn.execute("INSERT INTO keys VALUES ('l', 3, ?, -2, 1, NULL)", (version,))
    conn.executemany(
        "INSERT INTO list_items VALUES ('l', ?, ?)", [(-2, b"x"), (-1, b"y"), (0, b"z")]
    )
    conn.execute("COMMIT")
    conn.close()


def test_a_schema_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    build(path)
    store = SQLiteBackend(path)
    assert store.get("s") == b"text"
    assert store.hgetall("h") == {b"a": b"1", b"b": b"2"}
    assert store.lrange("l", 0, -1) == [b"x", b"y", b"z"]
    raw = sqlite3.connect(path)
    assert dict(raw.execute("SELECT key, value FROM meta")) == {
        "format": "etcher",
        "schema_version": 2,
    }
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    # The old (spilled) containers stay writable in place and may be read back.
    assert store.hset("h", "c", 3) == 1
    assert store.rpush("l", "w") == 4
    assert store.lpop("l") == b"x"
    assert store.lrange("l", 0, -1) == [b"y", b"z", b"w"]
    assert store.hgetall("h") == {b"a": b"1", b"b": b"2", b"c": b"3"}
    store.close()
    raw.close()
    again = SQLiteBackend(path)  # a second open finds nothing left to upgrade
    assert again.hlen("h") == 3
    again.close()


def test_a_schema_1_store_is_upgraded_by_one_of_two_openers(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    build(path)
    first, second = SQLiteBackend(path), SQLiteBackend(path)
    assert first.hgetall("h") == second.hgetall("h") == {b"a": b"1", b"b": b"2"}
    first.close()
    second.close()


def test_an_old_release_can_no_longer_write_an_upgraded_store(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    build(path)
    SQLiteBackend(path).close()
    raw = sqlite3.connect(path, isolation_level=None)
    # What schema 1 code runs first in every write: it finds no counter to bump.
    raw.execute("BEGIN IMMEDIATE")
    got = raw.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'write_counter' RETURNING value"
    ).fetchone()
    raw.execute("ROLLBACK")
    raw.close()
    assert got is None


def test_a_read_only_schema_1_store_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    build(path, wal=False)
    os.chmod(path, 0o444)
    try:
        if os.access(path, os.W_OK):
            pytest.skip("running as a user who can write read-only files")
        store = SQLiteBackend(path)
        assert store.hgetall("h") == {b"a": b"1", b"b": b"2"}
        assert store.lrange("l", 0, -1) == [b"x", b"y", b"z"]
        store.close()
    finally:
        os.chmod(path, 0o644)


@pytest.mark.parametrize("version", [0, "1"])
def test_an_unknown_old_schema_says_how_to_move_the_data(tmp_path: Path, version: object) -> None:
    path = tmp_path / "old.db"
    build(path)
    raw = sqlite3.connect(path)
    raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    raw.commit()
    raw.close()
    with pytest.raises(StoreCorrupt, match=r"etcher export.*etcher import"):
        SQLiteBackend(path)
    assert schema.SCHEMA_VERSION == 2


def test_a_schema_1_store_without_its_counter_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    build(path)
    raw = sqlite3.connect(path)
    raw.execute("DELETE FROM meta WHERE key = 'write_counter'")
    raw.commit()
    raw.close()
    with pytest.raises(StoreCorrupt, match="write_counter"):
        SQLiteBackend(path)


# --- the storage kit with tiny packing limits ------------------------------------------


class TinyPackFixtures(BackendFixtures):
    @pytest.fixture
    def make_backend(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Callable[[], StorageBackend]:
        # One member stays packed, two spill: every kit test crosses both layouts.
        monkeypatch.setattr(packed, "MAX_ENTRIES", 1)
        return lambda: SQLiteBackend.from_path(tmp_path / "kit.db")


class TestSQLiteTinyPackConformance(StorageConformance, TinyPackFixtures):
    """Every kit test with containers spilling after their first member."""


def test_threads_pack_independently(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each thread packs with its own buffer: no content from another thread leaks in.

    msgpack's C Packer never lets another thread in mid-pack, its pure-Python fallback
    (used where the extension is not built) does; the test runs on the fallback, switching
    threads as often as it can.
    """
    monkeypatch.setattr(msgpack, "Packer", msgpack.fallback.Packer)
    monkeypatch.setattr(packed, "_packers", threading.local())
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    barrier = threading.Barrier(4)
    failures: list[object] = []

    def work(t: int) -> None:
        barrier.wait()
        for i in range(2000):
            content = [b"%d-%d" % (t, i)] * (1 + i % 5)
            try:
                if packed.unpack_list(packed.pack(content), "k") == content:
                    continue
            except StoreCorrupt:
                pass
            failures.append((t, i))
            return

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old_interval)
    assert failures == []
