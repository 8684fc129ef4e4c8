"""Opening stores: files, URLs, options, permissions, persistence and the clear errors."""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from etcher import DB
from etcher.errors import (
    BackendUnavailable,
    ReadOnlyStore,
    StoreCorrupt,
    StoreLocked,
    WatchError,
)
from etcher.spec import Capabilities, Pipeline, StorageBackend, UnitScopes
from etcher_sqlite import SQLiteBackend, SQLiteMemoryBackend

# --- capabilities and Protocol ------------------------------------------------------


def test_file_store_capabilities(store: SQLiteBackend) -> None:
    assert SQLiteBackend.capabilities == Capabilities(
        persistent=True,
        multiprocess=True,
        atomic_batches=True,
        maintenance=True,
        snapshot_reads=True,
        locking_units=True,
        subtree_reads=True,
        subtree_visits=True,
        whole_hash_writes=True,
    )
    assert store.capabilities is SQLiteBackend.capabilities
    assert isinstance(store, UnitScopes)


def test_memory_store_capabilities() -> None:
    store = SQLiteBackend.from_url("sqlite:///:memory:")
    assert isinstance(store, SQLiteMemoryBackend)
    assert store.capabilities.persistent is False
    assert store.capabilities.multiprocess is False
    assert store.capabilities.atomic_batches is True
    store.close()


def test_satisfies_the_protocols(store: SQLiteBackend) -> None:
    assert isinstance(store, StorageBackend)
    assert isinstance(store.pipeline(), Pipeline)


# --- files ----------------------------------------------------------------------------


def test_new_store_is_wal_with_the_etcher_schema(
    store: SQLiteBackend, raw: sqlite3.Connection
) -> None:
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    meta = dict(raw.execute("SELECT key, value FROM meta"))
    assert meta == {"format": "etcher", "schema_version": 2}
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"meta", "keys", "hashes", "list_items"}
    assert raw.execute("PRAGMA application_id").fetchone()[0] == 0x45544348


def test_options_reach_every_connection(db_path: Path) -> None:
    store = SQLiteBackend(db_path, timeout=2.5, durability="full")
    conns = [store._conn()]
    thread = threading.Thread(target=lambda: conns.append(store._conn()))
    thread.start()
    thread.join()
    for conn in conns:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2500
    store.close()
    default = SQLiteBackend(db_path)
    assert default._conn().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert default._conn().execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    default.close()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"timeout": -1}, ValueError),
        ({"timeout": float("nan")}, ValueError),
        ({"timeout": "soon"}, ValueError),
        ({"timeout": None}, TypeError),
        ({"durability": "extra"}, ValueError),
    ],
)
def test_bad_option_values(db_path: Path, options: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        SQLiteBackend(db_path, **options)  # type: ignore[arg-type]
    assert not db_path.exists()


def test_data_persists_across_reopen(db_path: Path) -> None:
    store = SQLiteBackend(db_path)
    store.set("s", "v")
    store.hset("h", mapping={"a": 1})
    store.lpush("l", "b", "a")
    store.rpush("l", "c")
    before = {v for (v,) in store._conn().execute("SELECT version FROM keys")}
    store.close()
    again = SQLiteBackend(db_path)
    assert again.get("s") == b"v"
    assert again.hgetall("h") == {b"a": b"1"}
    assert again.lrange("l", 0, -1) == [b"a", b"b", b"c"]
    again.set("t", 1)
    assert (
        again._conn().execute("SELECT version FROM keys WHERE name = 't'").fetchone()[0]
        not in before
    )
    again.close()


def test_existing_empty_file_becomes_a_store(db_path: Path) -> None:
    db_path.touch()
    store = SQLiteBackend(db_path)
    store.set("a", 1)
    assert store.get("a") == b"1"
    store.close()


def test_relative_path_is_fixed_at_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = SQLiteBackend("rel.db")
    assert store.path == str(tmp_path / "rel.db")
    store.set("a", 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(store.get("a")))
    thread.start()
    thread.join()
    assert result == [b"1"]  # the new thread's connection opened the same file
    assert not (elsewhere / "rel.db").exists()
    store.close()


def test_two_opens_of_a_new_file_at_once(db_path: Path) -> None:
    stores: list[SQLiteBackend] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            stores.append(SQLiteBackend(db_path))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stores[0].set("a", 1)
    assert all(s.get("a") == b"1" for s in stores)
    for s in stores:
        s.close()


def test_a_new_file_another_writer_is_creating_is_waited_for(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Switching a new file to WAL while another connection holds its write lock (another
    process creating the schema) fails at once in SQLite, without its busy handler: the
    opener waits it out within its timeout, as any other lock, instead of failing."""
    db_path.touch()
    creator = sqlite3.connect(db_path, isolation_level=None)
    creator.execute("BEGIN IMMEDIATE")
    waiting = threading.Event()
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        waiting.set()

    monkeypatch.setattr("etcher_sqlite.backend._pause", pause)
    opened: list[SQLiteBackend] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            opened.append(SQLiteBackend(db_path, timeout=30))
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=open_it)
    thread.start()
    assert waiting.wait(30), "the opener never met the lock"
    creator.execute("ROLLBACK")  # the other writer is done
    creator.close()
    thread.join()
    assert errors == []
    assert pauses, "the switch to WAL was retried"
    store = opened[0]
    store.set("a", 1)
    assert store.get("a") == b"1"
    assert sqlite3.connect(db_path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_a_new_file_locked_past_the_timeout_is_store_locked(db_path: Path) -> None:
    db_path.touch()
    creator = sqlite3.connect(db_path, isolation_level=None)
    creator.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreLocked, match=str(db_path)):
            SQLiteBackend(db_path, timeout=0.05)
    finally:
        creator.execute("ROLLBACK")
        creator.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("umask", "expected"), [(0o000, 0o644), (0o022, 0o644), (0o077, 0o600)])
def test_new_files_are_never_world_writable(tmp_path: Path, umask: int, expected: int) -> None:
    old = os.umask(umask)
    try:
        store = SQLiteBackend(tmp_path / "perm.db")
        store.set("a", 1)
        assert _mode(tmp_path / "perm.db") == expected
        for suffix in ("-wal", "-shm"):
            side = tmp_path / f"perm.db{suffix}"
            if side.exists():
                assert _mode(side) & 0o022 == 0
        store.close()
    finally:
        os.umask(old)


# --- errors ---------------------------------------------------------------------------


def test_garbage_file_is_store_corrupt(db_path: Path) -> None:
    garbage = b"this is not a database, just text\n" * 200
    db_path.write_bytes(garbage)
    with pytest.raises(StoreCorrupt, match=str(db_path)):
        SQLiteBackend(db_path)
    assert db_path.read_bytes() == garbage


def test_foreign_sqlite_database_is_store_corrupt_and_untouched(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ann')")
    conn.commit()
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(StoreCorrupt, match=r"not an etcher store.*users") as info:
        SQLiteBackend(db_path)
    assert str(db_path) in str(info.value)
    assert db_path.read_bytes() == before  # not even switched to WAL
    assert not Path(f"{db_path}-wal").exists()


def test_foreign_meta_table_is_store_corrupt(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value)")
    conn.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorrupt, match="not an etcher store"):
        SQLiteBackend(db_path)


def test_store_from_a_newer_release_is_refused(db_path: Path) -> None:
    SQLiteBackend(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorrupt, match="upgrade"):
        SQLiteBackend(db_path)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "x.db"
    with pytest.raises(BackendUnavailable, match="does not exist"):
        SQLiteBackend(target)
    assert not (tmp_path / "no").exists()


def test_directory_as_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="directory"):
        SQLiteBackend(tmp_path)


def test_locked_past_the_timeout_is_store_locked(store: SQLiteBackend, db_path: Path) -> None:
    store.set("a", "before")
    quick = SQLiteBackend(db_path, timeout=0.05)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreLocked, match=str(db_path)):
            quick.set("a", "after")
        assert quick.get("a") == b"before"  # WAL: reads go on while a writer holds the lock
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    quick.set("a", "after")
    assert store.get("a") == b"after"
    quick.close()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="etcher-ro-"))
    path.chmod(0o777)
    yield path
    path.chmod(0o700)
    shutil.rmtree(path)


def unprivileged(fn: Callable[[], object]) -> object:
    """Run ``fn`` without the power to ignore file modes.

    root may write any file, so as root ``fn`` runs in a forked child that
    has switched to the ``nobody`` user; its result comes back pickled.
    """
    if os.geteuid() != 0:
        return fn()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            try:
                result: object = fn()
            except BaseException as exc:
                result = ("raised", type(exc).__name__, str(exc))
            os.write(write_end, pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def _outcome(call: Callable[[], object]) -> object:
    try:
        return ("ok", call())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def test_read_only_file_reads_but_refuses_writes(shared_dir: Path) -> None:
    path = shared_dir / "ro.db"
    store = SQLiteBackend(path)
    store.set("a", "kept")
    store.close()
    path.chmod(0o444)

    def scenario() -> object:
        ro = SQLiteBackend(path)
        return [_outcome(lambda: ro.get("a")), _outcome(lambda: ro.set("a", "lost"))]

    result = unprivileged(scenario)
    assert isinstance(result, list)
    read, write = result
    assert read == ("ok", b"kept")
    assert write[0:2] == ("raised", ReadOnlyStore.__name__)
    assert str(path) in write[2]
    path.chmod(0o644)
    with SQLiteBackend(path) as again:
        assert again.get("a") == b"kept"


def test_read_only_directory_without_wal_files_fails_at_open(shared_dir: Path) -> None:
    path = shared_dir / "ro.db"
    SQLiteBackend(path).close()  # the last close removes the -wal and -shm files
    assert not Path(f"{path}-shm").exists()
    path.chmod(0o444)
    shared_dir.chmod(0o555)
    try:
        outcome = unprivileged(lambda: _outcome(lambda: SQLiteBackend(path)))
    finally:
        shared_dir.chmod(0o777)
    assert outcome[0:2] == ("raised", ReadOnlyStore.__name__)  # type: ignore[index]
    assert "cannot be opened" in outcome[2]  # type: ignore[index]


def test_new_file_in_a_read_only_directory(shared_dir: Path) -> None:
    shared_dir.chmod(0o555)
    try:
        outcome = unprivileged(lambda: _outcome(lambda: SQLiteBackend(shared_dir / "new.db")))
    finally:
        shared_dir.chmod(0o777)
    assert outcome[0:2] == ("raised", ReadOnlyStore.__name__)  # type: ignore[index]
    assert "not writable" in outcome[2]  # type: ignore[index]


# --- URLs and factories -----------------------------------------------------------------


def test_from_url_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rel = SQLiteBackend.from_url("sqlite:///sub%20dir.db")
    assert rel.path == str(tmp_path / "sub dir.db")
    rel.close()
    absolute = SQLiteBackend.from_url(f"sqlite:///{tmp_path}/abs.db")
    assert str(tmp_path).startswith("/")  # so the URL above had four slashes
    assert absolute.path == str(tmp_path / "abs.db")
    absolute.close()


def test_from_url_query_options_and_keyword_override(db_path: Path) -> None:
    store = SQLiteBackend.from_url(f"sqlite:///{db_path}?timeout=5&durability=full")
    assert store.timeout == 5.0
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2
    store.close()
    store = SQLiteBackend.from_url(f"sqlite:///{db_path}?timeout=5", timeout=1)
    assert store.timeout == 1.0
    store.close()


def test_from_url_memory_is_private_per_backend() -> None:
    one = SQLiteBackend.from_url("sqlite:///:memory:")
    two = SQLiteBackend.from_url("sqlite:///:memory:?timeout=1")
    one.set("a", 1)
    assert two.get("a") is None
    one.close()
    two.close()


@pytest.mark.parametrize(
    ("url", "kwargs", "names"),
    [
        ("sqlite:///x.db?bogus=1", {}, ["bogus"]),
        ("sqlite:///x.db", {"bogus": 1, "other": 2}, ["bogus", "other"]),
    ],
)
def test_unknown_options_are_named(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    kwargs: dict[str, object],
    names: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError) as info:
        SQLiteBackend.from_url(url, **kwargs)
    for name in names:
        assert name in str(info.value)
    with pytest.raises(TypeError, match="bogus"):
        SQLiteBackend.from_path(tmp_path / "x.db", bogus=1)
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    "url",
    ["redis://localhost/0", "sqlite://host/x.db", "sqlite://", "sqlite:///", "sqlite:///x.db?=&&"],
)
def test_malformed_urls(url: str) -> None:
    with pytest.raises(ValueError):
        SQLiteBackend.from_url(url)


def test_from_path_accepts_pathlike_and_memory(db_path: Path) -> None:
    store = SQLiteBackend.from_path(db_path, timeout=1)
    assert store.path == str(db_path)
    store.close()
    memory = SQLiteBackend.from_path(":memory:")
    assert isinstance(memory, SQLiteMemoryBackend)
    memory.close()
    memory = SQLiteBackend(Path(":memory:"))  # never a file literally named ":memory:"
    assert isinstance(memory, SQLiteMemoryBackend)
    memory.close()


# --- the in-memory store -------------------------------------------------------------


def test_memory_store_is_shared_by_threads_and_serialised() -> None:
    store = SQLiteBackend(":memory:")
    assert isinstance(store, SQLiteMemoryBackend)

    def work() -> None:
        for _ in range(200):
            pipe = store.pipeline()
            pipe.incr("n").rpush("l", 1)
            pipe.execute()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("n") == b"800"
    assert store.llen("l") == 800
    store.maintenance()
    store.close()
    with pytest.raises(BackendUnavailable):
        store.get("n")


def test_memory_store_watch_conflict() -> None:
    store = SQLiteMemoryBackend()
    pipe = store.pipeline()
    pipe.watch("k")
    store.set("k", 1)
    pipe.multi()
    pipe.set("k", 2)
    with pytest.raises(WatchError) as info:
        pipe.execute()
    assert "changed since watch" in info.value.detail  # the message is the same everywhere
    assert store.get("k") == b"1"
    with pytest.raises(ValueError):
        SQLiteMemoryBackend("file.db")


def test_three_slashes_are_relative_and_four_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    with DB("sqlite:///rel.db") as db:
        db["x"] = 1
    with DB(f"sqlite:///{tmp_path}/abs.db") as db:  # tmp_path starts with '/': four slashes
        db["x"] = 2
    assert (here / "rel.db").exists()
    assert (tmp_path / "abs.db").exists()
