"""Maintenance conformance: ``gc``, ``check`` and ``delete_prefix_immediately`` beside writers.

Maintenance must never harm a writer: ``gc()`` run while four writers
create, replace and extend documents must keep every acknowledged write,
``check()`` on a healthy store must report nothing however busy it is, and
deleting a namespace must leave nothing of it behind while writers keep
writing to it (and must not disturb writers of another namespace).

Writers are processes, started with ``fork`` and with ``spawn``, on stores
other processes can open (``capabilities.multiprocess``), and threads
everywhere. Like :mod:`etcher.testing.concurrency`, the class needs a
``store_url`` fixture::

    class TestMyKVMaintenance(MaintenanceConformance):
        @pytest.fixture
        def store_url(self, tmp_path):
            return f"mykv://{tmp_path}/store"

Nothing here measures time: writers run a bounded number of rounds, and the
maintenance call repeats until they are done (they start together on an event).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from etcher.codec import item_value, link_target
from etcher.db import DB
from etcher.errors import StaleHandleError
from etcher.layout import ROOT

WRITERS = 4
ROUNDS = 60
"""Rounds per writer: each round adds a document, replaces one and appends to a log."""
BALLAST = 400
"""Nodes stored before the writers start, so one maintenance pass spans many writes."""


def document(tag: str, i: int) -> dict[str, Any]:
    """What writer ``tag`` stores in round ``i`` (nested, with a shared node)."""
    shared = {"i": i}
    return {"tag": tag, "i": i, "items": [i, [i, {"n": i}]], "a": shared, "b": shared}


def _write_rounds(db: DB, tag: str, rounds: int) -> None:
    db[f"{tag}-log"] = []
    for i in range(rounds):
        db[f"{tag}-{i}"] = document(tag, i)
        db[f"{tag}-cur"] = document(tag, i)
        db[f"{tag}-log"].append({"i": i})
        if i % 3 == 2:
            del db[f"{tag}-{i - 1}"]


def _namespace_rounds(db: DB, tag: str, rounds: int) -> None:
    """Writes to a namespace that is being deleted: top-level only, tolerant of the delete."""
    for i in range(rounds):
        db[f"{tag}-{i % 7}"] = document(tag, i)
        # Deleted meanwhile with its namespace: then there is nothing to extend.
        with contextlib.suppress(KeyError, StaleHandleError):
            db[f"{tag}-{(i + 3) % 7}"]["items"].append(i)


def writer(url: str, prefix: str, tag: str, rounds: int, go: Any, kind: str) -> None:
    """One writer: wait for ``go``, then run ``rounds`` rounds of the ``kind`` workload."""
    work = _write_rounds if kind == "docs" else _namespace_rounds
    with DB(url, prefix=prefix) as db:
        go.wait(60)
        work(db, tag, rounds)


def expect_written(db: DB, tag: str, rounds: int) -> None:
    """Raise ``AssertionError`` unless every acknowledged write of ``tag`` reads back."""
    for i in range(rounds):
        key = f"{tag}-{i}"
        if i % 3 == 1 and i + 1 < rounds:
            assert key not in db, f"{key} was deleted by its writer"
        else:
            assert db[key]() == document(tag, i), f"acknowledged write {key} lost"
            doc = db[key]
            assert doc["a"].uid == doc["b"].uid, "shared node split"
    assert db[f"{tag}-cur"]() == document(tag, rounds - 1)
    assert db[f"{tag}-log"]() == [{"i": i} for i in range(rounds)]


def stray_keys(db: DB) -> list[str]:
    """Keys of ``db``'s namespace that belong to no node reachable from its root (raw scan)."""
    layout = db._layout
    backend = db.backend
    reached = {ROOT}
    level = [ROOT]
    while level:
        nxt = []
        for uid in level:
            key = layout.content(uid)
            if uid[0] == "D":
                raws = [item_value(v) for v in backend.hgetall(key).values()]
            else:
                raws = backend.lrange(key, 0, -1)
            for raw in raws:
                child = link_target(raw)
                if child is not None and child not in reached:
                    reached.add(child)
                    nxt.append(child)
        level = nxt
    allowed = {layout.meta, layout.pending}
    for uid in reached:
        allowed |= {layout.refs(uid), layout.content(uid)}
    out = []
    for raw in backend.scan_iter(match=layout.scan):
        key = raw.decode()
        if key not in allowed and not key.startswith(layout.counter_prefix):
            out.append(key)
    return sorted(out)


class _Crew:
    """Writers started together (threads or processes) and joined with their outcome."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.errors: list[str] = []
        if mode == "thread":
            self.go: Any = threading.Event()
        else:
            self.ctx = multiprocessing.get_context(mode)
            self.go = self.ctx.Event()
        self.workers: list[Any] = []

    def add(self, *args: Any) -> None:
        if self.mode == "thread":

            def run() -> None:
                try:
                    writer(*args, self.go, *self.extra)
                except BaseException:  # pragma: no cover - reported by join()
                    self.errors.append(traceback.format_exc())

            self.workers.append(threading.Thread(target=run, daemon=True))
        else:
            self.workers.append(self.ctx.Process(target=writer, args=(*args, self.go, *self.extra)))

    extra: tuple[Any, ...] = ()

    def start(self) -> None:
        for w in self.workers:
            w.start()
        self.go.set()

    def running(self) -> bool:
        return any(w.is_alive() for w in self.workers)

    def join(self) -> None:
        for w in self.workers:
            w.join(300)
        for w in self.workers:
            if w.is_alive():
                if self.mode != "thread":
                    w.kill()
                raise AssertionError("a writer hung")
            if self.mode != "thread":
                assert w.exitcode == 0, f"a writer exited with {w.exitcode}"
        assert not self.errors, "\n".join(self.errors)


class MaintenanceConformance:
    """``gc``/``check``/``delete_prefix_immediately`` beside concurrent writers."""

    rounds = ROUNDS

    @pytest.fixture
    def store_url(self) -> str:
        """A URL other processes can open; authors must override this fixture."""
        pytest.skip("override the store_url fixture to run the maintenance conformance tests")

    @pytest.fixture(params=["thread", "fork", "spawn"])
    def mode(self, request: pytest.FixtureRequest, store_url: str) -> str:
        """How writers run: threads, or processes started with fork or spawn."""
        mode: str = request.param
        if mode != "thread":
            with DB(store_url, prefix="maintenance-probe") as db:
                caps = db.backend.capabilities
                db.delete_prefix_immediately("maintenance-probe")
            if not caps.multiprocess:
                pytest.skip(f"{type(db.backend).__name__}.capabilities.multiprocess is False")
            if mode == "fork" and (sys.platform == "win32" or not hasattr(os, "fork")):
                pytest.skip("fork is not available here")
        return mode

    @pytest.fixture
    def namespaces(self, store_url: str) -> Iterator[Callable[[], str]]:
        made: list[str] = []

        def make() -> str:
            prefix = f"maint-*?[]-{uuid.uuid4().hex[:8]}"
            made.append(prefix)
            return prefix

        yield make
        with DB(store_url, prefix="maintenance-cleanup") as db:
            for prefix in [*made, "maintenance-cleanup"]:
                db.delete_prefix_immediately(prefix)

    def _crew(self, mode: str, url: str, prefix: str, kind: str) -> _Crew:
        with DB(url, prefix=prefix) as db:
            db["ballast"] = [{"k": i} for i in range(BALLAST)]
        crew = _Crew(mode)
        crew.extra = (kind,)
        for w in range(WRITERS):
            crew.add(url, prefix, f"w{w}", self.rounds)
        return crew

    def test_gc_beside_writers_keeps_every_acknowledged_write(
        self, store_url: str, mode: str, namespaces: Callable[[], str]
    ) -> None:
        prefix = namespaces()
        crew = self._crew(mode, store_url, prefix, "docs")
        with DB(store_url, prefix=prefix) as db:
            crew.start()
            runs = 0
            while crew.running() or runs < 2:
                db.gc()
                runs += 1
            crew.join()
            for w in range(WRITERS):
                expect_written(db, f"w{w}", self.rounds)
            report = db.check()
            assert report.ok, str(report)
            assert stray_keys(db) == []

    def test_check_beside_writers_reports_nothing(
        self, store_url: str, mode: str, namespaces: Callable[[], str]
    ) -> None:
        prefix = namespaces()
        crew = self._crew(mode, store_url, prefix, "docs")
        with DB(store_url, prefix=prefix) as db:
            crew.start()
            runs = 0
            while crew.running() or runs < 2:
                report = db.check()
                assert report.ok, f"check() beside writers reported: {report}"
                runs += 1
            crew.join()
            for w in range(WRITERS):
                expect_written(db, f"w{w}", self.rounds)
            assert db.check().ok

    def test_delete_prefix_beside_writers_leaves_nothing_behind(
        self, store_url: str, mode: str, namespaces: Callable[[], str]
    ) -> None:
        doomed, other = namespaces(), namespaces()
        crew = self._crew(mode, store_url, doomed, "namespace")
        bystanders = _Crew(mode)
        bystanders.extra = ("docs",)
        for w in range(2):
            bystanders.add(store_url, other, f"b{w}", self.rounds)
        with DB(store_url, prefix=other) as db:
            bystanders.start()
            crew.start()
            runs = 0
            while crew.running() or runs < 2:
                db.delete_prefix_immediately(doomed)
                runs += 1
            crew.join()
            bystanders.join()
            for w in range(2):
                expect_written(db, f"b{w}", self.rounds)
            assert db.check().ok
        with DB(store_url, prefix=doomed) as left:
            assert stray_keys(left) == [], "delete_prefix_immediately left keys behind"
            report = left.check()
            assert report.ok, str(report)
