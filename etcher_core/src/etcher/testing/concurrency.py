"""Concurrency conformance: no lost update, ever, across threads and processes.

These tests open the store under test by URL in several threads and child
processes, so they need a ``store_url`` fixture naming a store that other
processes can open (e.g. ``sqlite:////tmp/x.db``, ``unix:///tmp/redis.sock``)::

    class TestMyKVConcurrency(ConcurrencyConformance):
        @pytest.fixture
        def store_url(self, tmp_path):
            return f"mykv://{tmp_path}/store"

Worker functions live at module level so ``spawn``-started processes can
import them. Every worker opens its own ``DB``; nothing is shared but the store.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from etcher.db import DB
from etcher.errors import WatchError

PROCESSES = 4
INCREMENTS = 250


def _ctx() -> Any:
    # spawn: children never inherit open connections, locks or threads of the test runner.
    return multiprocessing.get_context("spawn")


def _run_processes(
    target: Callable[..., Any], args_list: list[tuple[Any, ...]], start: str = "spawn"
) -> None:
    ctx: Any = multiprocessing.get_context(start)
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    for p in procs:
        if p.is_alive():
            p.kill()
            raise AssertionError("a worker process hung")
        assert p.exitcode == 0, f"worker exited with {p.exitcode}"


# --------------------------------------------------------------------------- workers


def transact_increments(url: str, prefix: str, key: str, n: int) -> None:
    """Increment ``db[key]["n"]`` ``n`` times, each in a retried transaction."""
    with DB(url, prefix=prefix) as db:

        def bump(t: Any) -> None:
            t[key]["n"] = t[key]["n"] + 1

        for _ in range(n):
            db.transact(bump)


def published_transact_increments(url: str, prefix: str, key: str, n: int) -> None:
    """The same with the published transactor API (``t.transact(fn)``)."""
    with DB(url, prefix=prefix) as db:
        t = db.transactor()

        def txn() -> None:
            value = t[key]["n"]
            t.multi()
            t[key]["n"] = value + 1

        for _ in range(n):
            t.transact(txn)


def incr_counter(url: str, prefix: str, key: str, n: int) -> None:
    """``db.incr(key)`` ``n`` times."""
    with DB(url, prefix=prefix) as db:
        for _ in range(n):
            db.incr(key)


def rd_incr(url: str, prefix: str, key: str, n: int) -> None:
    """``db[key].incr("n")`` ``n`` times."""
    with DB(url, prefix=prefix) as db:
        counter = db[key]
        for _ in range(n):
            counter.incr("n")


def _inherited_rd_incr(db: DB, barrier: Any, n: int) -> None:
    barrier.wait(timeout=60)
    deep = db["c"]["deep"]
    for _ in range(n):
        deep.incr("n")


def pop_middle(url: str, prefix: str, key: str, n: int, out_path: str) -> None:
    """Pop ``n`` items next to either end of ``db[key]``; write what was popped to a file."""
    got = []
    with DB(url, prefix=prefix) as db:
        items = db[key]
        for k in range(n):
            value = items.pop(-2 if k % 2 else 1)
            got.append(value["i"] if isinstance(value, dict) else value)
    with open(out_path, "w") as fh:
        fh.write(" ".join(map(str, got)))


def _popitem_all(db: DB, out_path: str) -> None:
    """popitem() from ``db["d"]`` until it is empty; write the popped keys to a file."""
    got = []
    d = db["d"]
    while True:
        try:
            key, _ = d.popitem()
        except KeyError:
            break
        got.append(key)
    with open(out_path, "w") as fh:
        fh.write(" ".join(got))


def plain_write(url: str, prefix: str, key: str, value: int) -> None:
    """One plain (non-transactional) write of ``db[key]["n"]``."""
    with DB(url, prefix=prefix) as db:
        db[key]["n"] = value


def overwrite_loop(url: str, prefix: str, rounds: int) -> None:
    """Replace ``db["doc"]`` with a new consistent version ``rounds`` times."""
    with DB(url, prefix=prefix) as db:
        for i in range(rounds):
            db["doc"] = make_version(i)
        db["done"] = True


def read_loop(url: str, prefix: str, result_path: str) -> None:
    """Materialize ``db["doc"]`` until the writer is done; check every snapshot is whole."""
    reads = 0
    with DB(url, prefix=prefix) as db:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            done, doc = db.transact(lambda t: (t.get("done", False), t["doc"]()))
            check_version(doc)
            whole = db()
            check_version(whole["doc"])
            reads += 1
            if done:
                break
    with open(result_path, "w") as fh:
        fh.write(str(reads))


def make_version(i: int) -> dict[str, Any]:
    """A document whose every part carries the same version number."""
    return {
        "version": i,
        "items": [i] * 20,
        "nested": {"v": i, "deep": {"v": i, "list": [{"v": i}, {"v": i}]}},
        "shared": [{"v": i}] * 3,
    }


def check_version(doc: dict[str, Any]) -> None:
    """Raise ``AssertionError`` unless ``doc`` is exactly one version."""
    i = doc["version"]
    assert doc == make_version(i), f"torn read: {doc!r}"
    assert doc["shared"][0] is doc["shared"][1], "shared structure lost"


# --------------------------------------------------------------------------- conformance


class ConcurrencyConformance:
    """Lost-update and isolation tests for backends with ``capabilities.multiprocess``."""

    @pytest.fixture
    def store_url(self) -> str:
        """A URL other processes can open; authors must override this fixture."""
        pytest.skip("override the store_url fixture to run the concurrency conformance tests")

    @pytest.fixture
    def ns(self, store_url: str) -> Any:
        prefix = f"conc-*?[]-{uuid.uuid4().hex[:8]}"
        db = DB(store_url, prefix=prefix)
        yield prefix
        db.delete_prefix_immediately(prefix)
        db.close()

    def _db(self, store_url: str, ns: str) -> DB:
        return DB(store_url, prefix=ns)

    def test_processes_transact_one_counter_exactly(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["c"] = {"n": 0}
        args = [(store_url, ns, "c", INCREMENTS)] * PROCESSES
        _run_processes(transact_increments, args)
        with self._db(store_url, ns) as db:
            assert db["c"]["n"] == PROCESSES * INCREMENTS
            assert db.check().ok

    def test_processes_published_transact_exactly(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["c"] = {"n": 0}
        _run_processes(published_transact_increments, [(store_url, ns, "c", 100)] * 2)
        with self._db(store_url, ns) as db:
            assert db["c"]["n"] == 200

    def test_threads_transact_one_counter_exactly(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["c"] = {"n": 0}
            errors: list[BaseException] = []

            def worker() -> None:
                try:
                    for _ in range(INCREMENTS):
                        db.transact(lambda t: t["c"].update(n=t["c"]["n"] + 1))
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=worker) for _ in range(PROCESSES)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            assert not errors, errors
            assert db["c"]["n"] == PROCESSES * INCREMENTS

    def test_threads_plain_mutations_are_never_lost(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["log"] = []

            def worker(tag: int) -> None:
                for i in range(50):
                    db["log"].append([tag, i])

            threads = [threading.Thread(target=worker, args=(t,)) for t in range(PROCESSES)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            log = db["log"]()
            assert len(log) == PROCESSES * 50
            for t in range(PROCESSES):
                assert [i for tag, i in log if tag == t] == list(range(50))
            assert db.check().ok

    def test_processes_incr_exactly(self, store_url: str, ns: str) -> None:
        _run_processes(incr_counter, [(store_url, ns, "hits", INCREMENTS)] * PROCESSES)
        with self._db(store_url, ns) as db:
            assert db.count("hits") == PROCESSES * INCREMENTS

    def test_disjoint_transactions_interleaved_both_commit(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["a"] = {"n": 0}
            db["b"] = {"n": 0}
            t1, t2 = db.transactor(), db.transactor()
            t1.watch()
            t2.watch()
            a = t1["a"]["n"]
            b = t2["b"]["n"]
            t1.multi()
            t2.multi()
            t1["a"]["n"] = a + 1
            t2["b"]["n"] = b + 1
            t1.execute()
            t2.execute()
            assert (db["a"]["n"], db["b"]["n"]) == (1, 1)

    def test_same_key_interleaved_one_conflict_then_retry(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["a"] = {"n": 0}
            t1, t2 = db.transactor(), db.transactor()
            t1.watch()
            t2.watch()
            v1, v2 = t1["a"]["n"], t2["a"]["n"]
            t1.multi()
            t2.multi()
            t1["a"]["n"] = v1 + 1
            t2["a"]["n"] = v2 + 1
            t1.execute()
            with pytest.raises(WatchError):
                t2.execute()
            assert db["a"]["n"] == 1
            t2.transact(lambda: t2["a"].update(n=t2["a"]["n"] + 1))
            assert db["a"]["n"] == 2

    def test_plain_write_from_other_process_conflicts(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["k"] = {"n": 1}
            t = db.transactor()
            t.watch()
            value = t["k"]["n"]
            _run_processes(plain_write, [(store_url, ns, "k", 99)])
            t.multi()
            t["k"]["n"] = value + 1
            with pytest.raises(WatchError):
                t.execute()
            assert db["k"]["n"] == 99

    def test_reader_never_sees_a_torn_overwrite(
        self, store_url: str, ns: str, tmp_path: Any
    ) -> None:
        with self._db(store_url, ns) as db:
            db["doc"] = make_version(-1)
        result = os.path.join(str(tmp_path), "reads.txt")
        ctx = _ctx()
        reader = ctx.Process(target=read_loop, args=(store_url, ns, result))
        writer = ctx.Process(target=overwrite_loop, args=(store_url, ns, 150))
        reader.start()
        writer.start()
        writer.join(timeout=300)
        reader.join(timeout=300)
        assert writer.exitcode == 0
        assert reader.exitcode == 0, "the reader saw a torn document or raised"
        with open(result) as fh:
            assert int(fh.read()) > 0
        with self._db(store_url, ns) as db:
            assert db["doc"]() == make_version(149)
            assert db.check().ok

    # ----------------------------------------------------------------- fork safety
    # A DB opened before fork() and used in the children (gunicorn --preload, a
    # "fork" multiprocessing pool) must give every child its own node ids and its
    # own connections; otherwise children write into each other's nodes.

    def test_db_opened_before_os_fork_is_safe_in_children(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["before"] = forked_doc(-1, 0)
            _fork_children(db, FORK_CHILDREN)
            _check_forked_docs(db, FORK_CHILDREN)

    def test_db_opened_before_fork_pool_is_safe_in_workers(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["before"] = forked_doc(-1, 0)
            db["log"] = []
            ctx = multiprocessing.get_context("fork")
            barrier = ctx.Barrier(FORK_CHILDREN)
            procs = [
                ctx.Process(target=_forked_writer, args=(db, child, barrier))
                for child in range(FORK_CHILDREN)
            ]
            for p in procs:
                p.start()
            for p in procs:
                p.join(timeout=300)
            for p in procs:
                if p.is_alive():
                    p.kill()
                    raise AssertionError("a forked worker hung")
                assert p.exitcode == 0, f"forked worker exited with {p.exitcode}"
            _check_forked_docs(db, FORK_CHILDREN)

    def test_db_opened_before_a_fork_pool_is_safe_in_its_tasks(
        self, store_url: str, ns: str
    ) -> None:
        # The pre-forking server shape: a module-level DB opened at import, a pool of
        # forked workers running tasks through it (no DB is pickled to them).
        global _POOL_DB
        with self._db(store_url, ns) as db:
            db["before"] = forked_doc(-1, 0)
            db["log"] = []
            _POOL_DB = db
            try:
                ctx: Any = multiprocessing.get_context("fork")
                tasks = [(child, j) for j in range(FORK_DOCS) for child in range(FORK_CHILDREN)]
                with ctx.Pool(FORK_CHILDREN) as pool:
                    assert pool.map(_pool_task, tasks, chunksize=1) == [None] * len(tasks)
            finally:
                _POOL_DB = None
            doc_keys = sorted(k for k in db if k.startswith("c"))
            assert len(doc_keys) == len(tasks)
            for child, j in tasks:
                assert db[f"c{child}-{j}"]() == forked_doc(child, j), (child, j)
            assert sorted(map(tuple, db["log"]())) == sorted(tasks)
            report = db.check()
            assert report.ok, report

    def test_forked_child_dropping_an_inherited_pinned_handle_keeps_it(
        self, store_url: str, ns: str
    ) -> None:
        # An RD(db) pin belongs to the process that made it: a child that drops its
        # copy of the handle must not release it (the parent still holds the node).
        from etcher.containers import RD

        with self._db(store_url, ns) as db:
            kept = RD(db, {"a": [1, 2]})
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                status = 1
                try:
                    handles = [kept]
                    del kept  # the child's only reference is now in the list
                    _drop_and_write(db, handles)
                    status = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(status)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert db["child"] == "wrote"
            assert kept() == {"a": [1, 2]}
            assert kept.pinned
            db["kept"] = kept
            assert db.check().ok

    # ----------------------------------------------------------------- nested counters
    def test_processes_rd_incr_exactly(self, store_url: str, ns: str) -> None:
        # Spawn-started (fresh interpreters, each opening the store by URL); two of them,
        # as each costs a full interpreter start. Four forked ones follow below.
        with self._db(store_url, ns) as db:
            db["c"] = {"n": 0, "other": "kept"}
        _run_processes(rd_incr, [(store_url, ns, "c", 150)] * 2)
        with self._db(store_url, ns) as db:
            assert db["c"]() == {"n": 2 * 150, "other": "kept"}
            assert db.check().ok

    def test_threads_rd_incr_exactly(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["c"] = {}
            counter = db["c"]
            threads = [
                threading.Thread(target=lambda: [counter.incr("n") for _ in range(100)])
                for _ in range(PROCESSES)
            ]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            assert db["c"]() == {"n": PROCESSES * 100}

    def test_forked_processes_rd_incr_exactly(self, store_url: str, ns: str) -> None:
        with self._db(store_url, ns) as db:
            db["c"] = {"deep": {}}
            ctx = multiprocessing.get_context("fork")
            barrier = ctx.Barrier(PROCESSES)
            procs = [
                ctx.Process(target=_inherited_rd_incr, args=(db, barrier, INCREMENTS))
                for _ in range(PROCESSES)
            ]
            for p in procs:
                p.start()
            for p in procs:
                p.join(timeout=300)
            assert [p.exitcode for p in procs] == [0] * PROCESSES
            assert db["c"]() == {"deep": {"n": PROCESSES * INCREMENTS}}
            assert db.check().ok

    # ----------------------------------------------------------------- list pops
    def test_processes_pop_from_the_middle_exactly(
        self, store_url: str, ns: str, tmp_path: Any
    ) -> None:
        # Each pop near an end re-pushes the items beside it; when another process has
        # shrunk the list meanwhile, that must be a retry, never a malformed command.
        pops = 50
        total = PROCESSES * pops + 2
        with self._db(store_url, ns) as db:
            db["l"] = [{"i": i} if i % 3 == 0 else i for i in range(total)]
        outs = [os.path.join(str(tmp_path), f"pops-{k}.txt") for k in range(PROCESSES)]
        # fork-started: the race needs no fresh interpreter, and four spawns cost seconds.
        args = [(store_url, ns, "l", pops, out) for out in outs]
        _run_processes(pop_middle, args, start="fork")
        popped: list[int] = []
        for out in outs:
            with open(out) as fh:
                popped.extend(int(line) for line in fh.read().split())
        with self._db(store_url, ns) as db:
            left = [x["i"] if isinstance(x, dict) else x for x in db["l"]()]
            assert len(popped) == PROCESSES * pops
            assert sorted(popped + left) == list(range(total))
            assert db.check().ok

    def test_processes_popitem_each_item_exactly_once(
        self, store_url: str, ns: str, tmp_path: Any
    ) -> None:
        total = 200
        with self._db(store_url, ns) as db:
            db["d"] = {f"k{i}": i for i in range(total)}
            db["d"].popitem()  # this process remembers the order; the children inherit it
            outs = [os.path.join(str(tmp_path), f"popitem-{k}.txt") for k in range(PROCESSES)]
            ctx = multiprocessing.get_context("fork")
            procs = [ctx.Process(target=_popitem_all, args=(db, out)) for out in outs]
            for p in procs:
                p.start()
            db["d"]["late"] = -1  # an insertion while they pop: popped exactly once too
            for p in procs:
                p.join(timeout=300)
            assert [p.exitcode for p in procs] == [0] * PROCESSES
            popped: list[str] = []
            for out in outs:
                with open(out) as fh:
                    popped.extend(fh.read().split())
            left = list(db["d"])
            assert sorted(popped + left) == sorted([f"k{i}" for i in range(total - 1)] + ["late"])
            assert db.check().ok


FORK_CHILDREN = 3
FORK_DOCS = 25


def _drop_and_write(db: DB, handles: list[Any]) -> None:
    """Drop the only references to ``handles``, then write (which releases dropped pins)."""
    import gc

    handles.clear()
    gc.collect()
    db["child"] = "wrote"
    db["child2"] = "wrote"


def forked_doc(child: int, j: int) -> dict[str, Any]:
    """A nested document whose every node names the child and document that wrote it."""
    return {
        "child": child,
        "j": j,
        "items": [{"child": child, "j": j, "k": k} for k in range(3)],
        "sub": {"deep": {"child": child, "list": [child, j, [j]]}},
    }


_POOL_DB: DB | None = None


def _pool_task(task: tuple[int, int]) -> None:
    """One task of a fork pool: write a document through the DB the parent opened."""
    child, j = task
    db = _POOL_DB
    assert db is not None
    db[f"c{child}-{j}"] = forked_doc(child, j)
    db["log"].append([child, j])


def _forked_writer(db: DB, child: int, barrier: Any) -> None:
    """Write ``FORK_DOCS`` nested documents through a DB inherited from the parent."""
    barrier.wait(timeout=60)
    _forked_writer_unblocked(db, child)


def _fork_children(db: DB, n: int) -> None:
    """``os.fork()`` ``n`` children that all write through ``db`` at once; wait for them."""
    db["log"] = []
    read_end, write_end = os.pipe()
    pids = []
    for child in range(n):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            status = 1
            try:
                os.close(write_end)
                os.read(read_end, 1)  # EOF once the parent has forked every child
                _forked_writer_unblocked(db, child)
                # Closing the inherited DB in the child must leave the parent's connections
                # (and an embedded server the parent started) working.
                db.close()
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        pids.append(pid)
    os.close(read_end)
    os.close(write_end)  # releases every child at once
    failures = []
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            failures.append(status)
    assert not failures, f"forked children failed: {failures}"


def _forked_writer_unblocked(db: DB, child: int) -> None:
    for j in range(FORK_DOCS):
        db[f"c{child}-{j}"] = forked_doc(child, j)
        db["log"].append([child, j])


def _check_forked_docs(db: DB, n: int) -> None:
    assert db["before"]() == forked_doc(-1, 0)
    for child in range(n):
        for j in range(FORK_DOCS):
            assert db[f"c{child}-{j}"]() == forked_doc(child, j), (child, j)
    log = db["log"]()
    for child in range(n):
        assert [j for c, j in log if c == child] == list(range(FORK_DOCS))
    report = db.check()
    assert report.ok, report
