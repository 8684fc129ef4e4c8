"""Many threads and processes on one store: nothing lost, nothing torn."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etcher.errors import BackendUnavailable, WatchError
from etcher_sqlite import SQLiteBackend

APPEND = """
import sys
from etcher_sqlite import SQLiteBackend
store = SQLiteBackend(sys.argv[1])
for i in range(500):
    store.rpush("log", f"{sys.argv[2]}-{i}")
"""


def test_two_processes_append_500_each(
    store: SQLiteBackend, db_path: Path, start: Callable[..., Any]
) -> None:
    children = [start(APPEND, db_path, tag) for tag in ("a", "b")]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    log = store.lrange("log", 0, -1)
    assert len(log) == store.llen("log") == 1000
    for tag in (b"a", b"b"):  # each writer's items are all there, in its own order
        assert [item for item in log if item.startswith(tag)] == [
            tag + b"-%d" % i for i in range(500)
        ]


TRANSACT = """
import sys
from etcher.errors import WatchError
from etcher_sqlite import SQLiteBackend
store = SQLiteBackend(sys.argv[1])
for _ in range(100):
    while True:
        pipe = store.pipeline()
        pipe.watch("counter")
        value = int(pipe.get("counter") or 0)
        pipe.multi()
        pipe.set("counter", value + 1)
        try:
            pipe.execute()
            break
        except WatchError:
            continue
"""


def test_optimistic_counter_across_processes_loses_no_update(
    store: SQLiteBackend, db_path: Path, start: Callable[..., Any]
) -> None:
    children = [start(TRANSACT, db_path) for _ in range(2)]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    assert store.get("counter") == b"200"


def test_threads_sharing_one_backend(store: SQLiteBackend) -> None:
    errors: list[BaseException] = []

    def work(tag: int) -> None:
        try:
            for i in range(100):
                store.rpush("log", f"{tag}-{i}")
                store.hincrby("counts", str(tag))
                store.incr("total")
                done = 0
                while not done:
                    pipe = store.pipeline()
                    pipe.watch("cas")
                    value = int(pipe.get("cas") or 0)
                    pipe.multi()
                    pipe.set("cas", value + 1)
                    try:
                        pipe.execute()
                        done = 1
                    except WatchError:
                        pass
        except BaseException as exc:  # surfaced below: a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.llen("log") == 600
    assert store.get("total") == b"600"
    assert store.get("cas") == b"600"
    assert store.hgetall("counts") == {str(t).encode(): b"100" for t in range(6)}


def test_each_thread_gets_its_own_connection(store: SQLiteBackend) -> None:
    # Threads alive at once: an ended thread's connection may go to a later one
    # (test_idle_connections.py), never to two living threads.
    seen = []
    together = threading.Barrier(3)

    def grab() -> None:
        seen.append(store._conn())
        together.wait(10)

    threads = [threading.Thread(target=grab) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen.append(store._conn())
    assert len({id(conn) for conn in seen}) == 4


def test_close_closes_every_threads_connection(db_path: Path) -> None:
    store = SQLiteBackend(db_path)
    ready, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def worker() -> None:
        store.set("from-thread", 1)  # opens this thread's connection
        ready.set()
        release.wait(10)
        try:
            store.get("from-thread")
        except BackendUnavailable as exc:
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    ready.wait(10)
    store.close()
    release.set()
    thread.join()
    assert len(outcome) == 1 and "closed" in str(outcome[0])
    with pytest.raises(BackendUnavailable):
        store.get("x")
    with pytest.raises(BackendUnavailable):
        store.pipeline().set("x", 1).execute()
    store.close()  # harmless


def _child_after_fork(store: SQLiteBackend, inherited: object, queue: Any) -> None:
    try:
        store.rpush("forked", "child")
        queue.put((store.lrange("forked", 0, -1), store._conn() is inherited))
    except BaseException as exc:
        queue.put(repr(exc))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_backend_used_across_fork(store: SQLiteBackend) -> None:
    """A forked child must open its own connection rather than reuse the parent's."""
    store.rpush("forked", "parent")
    parent_conn = store._conn()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_after_fork, args=(store, parent_conn, queue))
    child.start()
    result = queue.get(timeout=60)
    child.join(60)
    assert result == ([b"parent", b"child"], False)
    assert store._conn() is parent_conn  # the parent keeps its connection
    store.rpush("forked", "parent-again")
    assert store.lrange("forked", 0, -1) == [b"parent", b"child", b"parent-again"]
