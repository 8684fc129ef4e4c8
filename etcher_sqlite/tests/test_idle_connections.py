"""An ended thread's connection goes to the next new thread (``backend._Idle``).

A server that runs each request in a new thread would otherwise open a
connection and prepare every statement for every request (measured: a small
document's ``db[k]()`` ~290 µs in a fresh thread against ~30 µs in a warm one).
These tests pin the hand-over and what must never be handed over: a connection
to two living threads, one left inside a transaction, one of a closed store or
of the parent after ``fork()``.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etcher import DB
from etcher_sqlite import SQLiteBackend
from etcher_sqlite.backend import IDLE_CONNECTIONS


def in_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` run in a new thread that has ended (and released its locals) on return."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def test_a_new_thread_takes_over_an_ended_threads_connection(store: SQLiteBackend) -> None:
    store.set("k", 1)
    first = in_thread(lambda: (store.get("k"), store._conn())[1])
    second = in_thread(lambda: (store.get("k"), store._conn())[1])
    assert second is first
    assert in_thread(lambda: store.get("k")) == b"1"
    assert store._conn() is not first  # the main thread kept its own


def test_a_connection_left_inside_a_transaction_is_not_handed_over(
    store: SQLiteBackend,
) -> None:
    def leave_a_read_open() -> sqlite3.Connection:
        store.unit_scope(False).__enter__()  # never left: the thread ends inside it
        conn = store._conn()
        assert conn.in_transaction
        return conn

    left = in_thread(leave_a_read_open)
    fresh = in_thread(store._conn)
    assert fresh is not left
    assert not fresh.in_transaction
    store.set("k", 2)  # nothing holds the store


def test_at_most_idle_connections_are_kept(store: SQLiteBackend) -> None:
    n = IDLE_CONNECTIONS + 3
    together = threading.Barrier(n)

    def hold() -> None:
        store.get("k")
        together.wait(10)  # all alive at once: n distinct connections

    threads = [threading.Thread(target=hold) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store._idle.conns) == IDLE_CONNECTIONS


def test_close_closes_the_idle_connections(db_path: Path) -> None:
    store = SQLiteBackend(db_path)
    idle = in_thread(lambda: (store.set("k", 1), store._conn())[1])
    assert list(store._idle.conns) == [idle]
    store.close()
    assert not store._idle.conns
    with pytest.raises(sqlite3.ProgrammingError):
        idle.execute("SELECT 1")
    # A thread ending after close() does not hand its connection to anyone either.
    assert not store._idle.conns


def _child_takes_no_parent_connection(
    store: SQLiteBackend, pooled: sqlite3.Connection, queue: Any
) -> None:
    try:
        mine = in_thread(lambda: (store.rpush("forked", "child"), store._conn())[1])
        queue.put((mine is pooled, store._conn() is pooled, store.lrange("forked", 0, -1)))
    except BaseException as exc:
        queue.put(repr(exc))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_a_forked_child_never_takes_the_parents_idle_connections(store: SQLiteBackend) -> None:
    pooled = in_thread(lambda: (store.rpush("forked", "parent"), store._conn())[1])
    assert list(store._idle.conns) == [pooled]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_takes_no_parent_connection, args=(store, pooled, queue))
    child.start()
    result = queue.get(timeout=60)
    child.join(60)
    assert result == (False, False, [b"parent", b"child"])
    # The parent still hands its idle connection over, and it still works.
    assert in_thread(store._conn) is pooled
    assert store.lrange("forked", 0, -1) == [b"parent", b"child"]


def test_short_lived_readers_beside_a_writer_see_whole_commits(db_path: Path) -> None:
    """Threads that each read a document once and end, handing their connections on,
    while another thread keeps replacing the document: every read is one commit."""

    def state(i: int) -> dict[str, Any]:
        return {"a": {"v": i}, "b": {"v": i}, "l": [i, i]}

    db = DB(f"sqlite:///{db_path}")
    db["doc"] = state(0)
    stop, wrote = threading.Event(), threading.Event()
    failures: list[object] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            db["doc"] = state(i)
            wrote.set()

    def reader() -> None:
        try:
            got = db["doc"]()
            n = got["a"]["v"]
            if got != state(n):
                failures.append(got)
        except BaseException as exc:
            failures.append(exc)

    writing = threading.Thread(target=writer)
    writing.start()
    try:
        wrote.wait(10)
        for _ in range(100):
            pair = [threading.Thread(target=reader) for _ in range(2)]
            for thread in pair:
                thread.start()
            for thread in pair:
                thread.join()
    finally:
        stop.set()
        writing.join()
    assert failures == []
    backend = db.backend
    assert isinstance(backend, SQLiteBackend)
    idle = list(backend._idle.conns)
    assert 1 <= len(idle) <= IDLE_CONNECTIONS  # the readers' connections went round
    assert not any(conn.in_transaction for conn in idle)
    db.close()
