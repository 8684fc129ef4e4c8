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

from etcher._check import CHUNK
from etcher._codec import encode_key, encode_link, item_value, link_target
from etcher._db import DB
from etcher._layout import ROOT
from etcher.errors import StaleHandleError
from etcher.testing._harness.instrument import CountingBackend

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
    """One writer: open the store, meet the others at barrier ``go``, run ``rounds`` rounds."""
    work = _write_rounds if kind == "docs" else _namespace_rounds
    with DB(url, prefix=prefix) as db:
        go.wait(120)
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
    """Keys of ``db``'s namespace that belong to no node reachable from its root (raw scan).

    Every grace period is ended first: unlinked nodes waiting to be swept are expected,
    and what the sweep leaves is not.
    """
    db.maintenance(reclaim_all=True)
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
    """Writers started together (threads or processes) and joined with their outcome.

    Every writer opens its store, then waits on a barrier with the test, so
    the maintenance under test starts only once all writers are ready to write.
    """

    def __init__(self, mode: str, size: int, kind: str) -> None:
        self.mode = mode
        self.kind = kind
        self.errors: list[str] = []
        if mode == "thread":
            self.go: Any = threading.Barrier(size + 1)
        else:
            self.ctx: Any = multiprocessing.get_context(mode)
            self.go = self.ctx.Barrier(size + 1)
        self.workers: list[Any] = []

    def add(self, *args: Any) -> None:
        full = (*args, self.go, self.kind)
        if self.mode == "thread":

            def run() -> None:
                try:
                    writer(*full)
                except BaseException:  # pragma: no cover - reported by join()
                    self.errors.append(traceback.format_exc())
                    self.go.abort()

            self.workers.append(threading.Thread(target=run, daemon=True))
        else:
            self.workers.append(self.ctx.Process(target=writer, args=full))

    def start(self) -> None:
        for w in self.workers:
            w.start()
        self.go.wait(120)

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


def _usable_mode(mode: str, store_url: str) -> str:
    if mode != "thread":
        with DB(store_url, prefix="maintenance-probe") as db:
            caps = db.backend.capabilities
            name = type(db.backend).__name__
            db.delete_prefix_immediately("maintenance-probe")
        if not caps.multiprocess:
            pytest.skip(f"{name}.capabilities.multiprocess is False")
        if mode == "fork" and (sys.platform == "win32" or not hasattr(os, "fork")):
            pytest.skip("fork is not available here")
    return mode


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
        return _usable_mode(request.param, store_url)

    @pytest.fixture(params=["thread", "fork"])
    def quick_mode(self, request: pytest.FixtureRequest, store_url: str) -> str:
        """Threads or forked processes (spawn start-up costs seconds per process: the
        gc test covers spawned writers)."""
        return _usable_mode(request.param, store_url)

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
        crew = _Crew(mode, WRITERS, kind)
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
        self, store_url: str, quick_mode: str, namespaces: Callable[[], str]
    ) -> None:
        prefix = namespaces()
        crew = self._crew(quick_mode, store_url, prefix, "docs")
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
        self, store_url: str, quick_mode: str, namespaces: Callable[[], str]
    ) -> None:
        doomed, other = namespaces(), namespaces()
        crew = self._crew(quick_mode, store_url, doomed, "namespace")
        bystanders = _Crew(quick_mode, 2, "docs")
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

    # --- without writers: structure, pending garbage, progress ----------------------------

    bound = 4 * CHUNK + 16
    """The most keys one batch may name and one unit may watch during maintenance."""

    def test_maintenance_steps_stay_bounded(
        self, store_url: str, namespaces: Callable[[], str]
    ) -> None:
        prefix = namespaces()
        with DB(store_url, prefix=prefix) as db:
            db["big"] = [{"k": i} for i in range(5 * CHUNK)]
            db["doc"] = {"a": {"b": [1, 2]}}
            layout = db._layout
            # A little damage, so verification and repair have work to do too.
            db.backend.hset(layout.refs("Dorphan"), b"#k", b"d")
            db.backend.hset(layout.refs(db["doc"]["a"].uid), db["doc"].uid.encode(), b"3")
            counting = CountingBackend(db.backend)
            with DB(backend=counting, prefix=prefix) as watched:
                steps: list[tuple[str, int, int | None]] = []
                report = watched.check(progress=lambda *step: steps.append(step))
                assert report.orphans == ["Dorphan"] and len(report.wrong_counts) == 1
                assert {phase for phase, _done, _total in steps} >= {"scan", "read", "verify"}
                assert watched.gc().orphans == ["Dorphan"]
                assert watched.check().ok
                assert watched.delete_prefix_immediately(prefix) > 2 * 5 * CHUNK
            assert counting.largest_batch <= self.bound, counting.largest_batch
            assert counting.largest_watch <= self.bound, counting.largest_watch
            assert stray_keys(db) == []

    def test_pending_garbage_is_not_reported_or_repaired(
        self, store_url: str, namespaces: Callable[[], str]
    ) -> None:
        prefix = namespaces()
        with DB(store_url, prefix=prefix) as db:
            db["x"] = {"a": 1}
            layout = db._layout
            backend = db.backend
            # Pending garbage as grace-period reclamation keeps it: unreachable, and
            # linking to a node that is already gone.
            backend.hset(layout.refs("Dpending1"), mapping={b"#k": b"d", b"#s": b"1"})
            field = encode_key("x")
            backend.hset(layout.content("Dpending1"), field, b"0|" + encode_link("Dgone1"))
            damaged = db.check()
            assert damaged.orphans == ["Dpending1"] and damaged.dangling == [
                ("Dpending1", "Dgone1")
            ]
            backend.hset(layout.pending, b"Dpending1", b"9999999999")
            before = dump_keys(db)
            report = db.check()
            assert report.ok, str(report)
            assert report.pending == 1
            assert db.gc().ok
            assert dump_keys(db) == before, "gc() touched pending garbage"

    def test_writes_proceed_between_maintenance_steps(
        self, store_url: str, namespaces: Callable[[], str]
    ) -> None:
        prefix = namespaces()
        with DB(store_url, prefix=prefix) as db, DB(store_url, prefix=prefix) as other:
            db["big"] = [{"k": i} for i in range(3 * CHUNK)]
            hook = _WriteBetweenSteps(other)
            assert db.check(progress=hook).ok
            assert db.gc(progress=hook).ok
            assert hook.writes >= 6, "maintenance reported too few steps"
            assert db.check().ok
            doomed = namespaces()
            with DB(store_url, prefix=doomed) as gone:
                gone["big"] = [{"k": i} for i in range(3 * CHUNK)]
                before = hook.writes
                gone.delete_prefix_immediately(doomed, progress=hook)
                assert hook.writes > before
                assert stray_keys(gone) == []
            assert db.check().ok
            assert len(other) == 1 + min(hook.writes, 5)


def dump_keys(db: DB) -> dict[str, Any]:
    """Every key of ``db``'s namespace with its raw value (for before/after comparisons)."""
    out: dict[str, Any] = {}
    backend = db.backend
    for raw in backend.scan_iter(match=db._layout.scan):
        kind = backend.type(raw)
        if kind == b"hash":
            out[raw.decode()] = backend.hgetall(raw)
        elif kind == b"list":
            out[raw.decode()] = backend.lrange(raw, 0, -1)
        else:
            out[raw.decode()] = backend.get(raw)
    return out


class _WriteBetweenSteps:
    """A ``progress=`` callback that writes through another DB at every step it reports.

    Maintenance that held the store (a whole-run write lock, a unit spanning
    the run) would make these writes wait or conflict with it; a maintenance
    made of bounded steps lets each one through at once.
    """

    def __init__(self, other: DB) -> None:
        self.other = other
        self.writes = 0

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        self.other[f"between-{self.writes % 5}"] = {"phase": phase, "done": done}
        self.writes += 1
