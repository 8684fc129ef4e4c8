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

from etcher._db import DB
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


def pop_and_push_ends(url: str, prefix: str, key: str, n: int, tag: int, out_path: str) -> None:
    """``n`` times: pop at an end of ``db[key]``, push a new item at an end; write the pops.

    Pops alternate ``pop()``/``pop(0)``; pushes cycle through a document in front,
    a scalar in front and a scalar appended, numbered ``tag * 10_000 + k``.
    """
    got = []
    with DB(url, prefix=prefix) as db:
        items = db[key]
        for k in range(n):
            value = items.pop(0 if k % 2 else -1)
            got.append(value["i"] if isinstance(value, dict) else value)
            new = tag * 10_000 + k
            if k % 3 == 0:
                items.insert(0, {"i": new})
            elif k % 3 == 1:
                items.insert(0, new)
            else:
                items.append(new)
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


def append_to_list(url: str, prefix: str, key: str, value: Any) -> None:
    """One plain ``db[key].append(value)``."""
    with DB(url, prefix=prefix) as db:
        db[key].append(value)


def _one_process(start_method: str, target: Callable[..., Any], *args: Any) -> None:
    """Run ``target(*args)`` in one process started with ``start_method``, to the end."""
    ctx: Any = multiprocessing.get_context(start_method)
    proc = ctx.Process(target=target, args=args)
    proc.start()
    proc.join(timeout=120)
    if proc.is_alive():
        proc.kill()
        raise AssertionError("a worker process hung (blocked by a unit held open?)")
    assert proc.exitcode == 0, f"worker exited with {proc.exitcode}"


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


# --------------------------------------------------------------------------- handle lifetime

LIFETIME_LOCKSTEP = 5
"""Rounds in which the writer replaces the document between a reader's fetch and its use."""
LIFETIME_FREE_ROUNDS = 60
"""Replacements the writer then makes while the reader loops freely."""
SYNC_TIMEOUT = 120.0


def lifetime_version(i: int) -> dict[str, Any]:
    """A document of a few levels whose every part carries version ``i``."""
    leaf = {"v": i}
    return {
        "version": i,
        "nested": {"v": i, "deep": {"v": i, "list": [{"v": i}, {"v": i, "more": [i]}]}},
        "items": [i] * 10 + [leaf, leaf],
    }


def check_lifetime_version(doc: dict[str, Any]) -> int:
    """Return the version of ``doc``; ``AssertionError`` unless it is exactly one version."""
    i = doc["version"]
    assert doc == lifetime_version(i), f"torn read: {doc!r}"
    assert doc["items"][-1] is doc["items"][-2], "shared structure lost"
    return int(i)


def _search_items(items: Any, i: int) -> None:
    """The list searches on version ``i``'s items list, all answered from that version."""
    assert i in items and {"v": i} in items and (i + 1) not in items
    assert items.index(i) == 0 and items.index({"v": i}) == 10
    assert items.count(i) == 10 and items.count({"v": i}) == 2


def _acquire(sem: Any) -> None:
    if not sem.acquire(timeout=SYNC_TIMEOUT):
        raise AssertionError("the other side of the test stopped answering")


def _report(result_path: str, text: str) -> None:
    with open(result_path, "w") as fh:
        fh.write(text)


def lifetime_reader(url: str, prefix: str, sync: tuple[Any, Any, Any], result_path: str) -> None:
    """Use the documented read idioms while ``lifetime_writer`` keeps replacing ``db["big"]``."""
    got, replaced, finished = sync
    reads = 0
    try:
        with DB(url, prefix=prefix) as db:
            for _ in range(LIFETIME_LOCKSTEP):
                big = db["big"]
                items, deep = big["items"], big["nested"]["deep"]
                version = big["version"]
                got.release()
                _acquire(replaced)  # the writer has replaced (and unlinked) what we hold
                assert check_lifetime_version(big()) == version, "an old handle read newer data"
                assert deep["list"][1]["more"][0] == version
                _search_items(items, version)
                reads += 1
            deadline = time.monotonic() + 240
            while not finished.is_set() and time.monotonic() < deadline:
                version = check_lifetime_version(db["big"]())
                big = db["big"]
                assert big["nested"]["deep"]["list"][1]["more"][0] == big["version"]
                items = db["big"]["items"]
                _search_items(items, items[0])
                reads += 1
        _report(result_path, f"ok {reads}")
    except BaseException:
        _report(result_path, traceback.format_exc())
        for _ in range(LIFETIME_LOCKSTEP):
            got.release()  # let the writer finish instead of waiting for us
        raise


def lifetime_writer(url: str, prefix: str, sync: tuple[Any, Any, Any], result_path: str) -> None:
    """Replace ``db["big"]`` in lockstep with the reader, then freely; then set ``finished``."""
    got, replaced, finished = sync
    try:
        with DB(url, prefix=prefix) as db:
            n = 0
            for _ in range(LIFETIME_LOCKSTEP):
                _acquire(got)
                n += 1
                db["big"] = lifetime_version(n)
                replaced.release()
            for _ in range(LIFETIME_FREE_ROUNDS):
                n += 1
                db["big"] = lifetime_version(n)
        _report(result_path, f"ok {n}")
    except BaseException:
        _report(result_path, traceback.format_exc())
        for _ in range(LIFETIME_LOCKSTEP):
            replaced.release()  # let the reader finish instead of waiting for us
        raise
    finally:
        finished.set()


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
            barrier = multiprocessing.get_context("fork").Barrier(FORK_CHILDREN)
            args = [(db, child, barrier) for child in range(FORK_CHILDREN)]
            _run_processes(_forked_writer, args, start="fork")
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
        from etcher._containers import RD

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
            barrier = multiprocessing.get_context("fork").Barrier(PROCESSES)
            args = [(db, barrier, INCREMENTS)] * PROCESSES
            _run_processes(_inherited_rd_incr, args, start="fork")
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

    @pytest.mark.parametrize("start_method", ["fork", "spawn"])
    def test_processes_pop_and_push_at_the_ends_exactly(
        self, store_url: str, ns: str, tmp_path: Any, start_method: str
    ) -> None:
        """Pops and pushes at both ends of one list from several processes: every item,
        scalar or document, is popped at most once and nothing is lost (on SQLite these
        run as held scopes without a unit of work, a popped document in the same scope)."""
        self._skip_unless_processes(store_url, ns, start_method)
        pops = 24
        total = 3 * PROCESSES
        with self._db(store_url, ns) as db:
            db["l"] = [{"i": i} if i % 2 else i for i in range(total)]
        outs = [os.path.join(str(tmp_path), f"ends-{k}.txt") for k in range(PROCESSES)]
        args = [(store_url, ns, "l", pops, k + 1, out) for k, out in enumerate(outs)]
        _run_processes(pop_and_push_ends, args, start=start_method)
        popped: list[int] = []
        for out in outs:
            with open(out) as fh:
                popped.extend(int(word) for word in fh.read().split())
        pushed = [(k + 1) * 10_000 + j for k in range(PROCESSES) for j in range(pops)]
        with self._db(store_url, ns) as db:
            left = [x["i"] if isinstance(x, dict) else x for x in db["l"]()]
            assert len(popped) == PROCESSES * pops
            assert len(left) == total
            assert sorted(popped + left) == sorted([*range(total), *pushed])
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

    # -- caller code runs outside units, once ----------------------------------------------
    def _skip_unless_processes(self, store_url: str, ns: str, start_method: str) -> None:
        if start_method not in multiprocessing.get_all_start_methods():
            pytest.skip(f"no {start_method} start method here")
        with self._db(store_url, ns) as db:
            backend = db.backend
            if not getattr(backend.capabilities, "multiprocess", True):
                pytest.skip(f"{type(backend).__name__}.capabilities.multiprocess is False")

    @pytest.mark.parametrize("start_method", ["fork", "spawn"])
    def test_sort_key_may_wait_for_another_process(
        self, store_url: str, ns: str, start_method: str
    ) -> None:
        self._skip_unless_processes(store_url, ns, start_method)
        with self._db(store_url, ns) as db:
            db["l"] = [3, 1, 2]
            db["other"] = []
            calls: list[int] = []

            def key(v: int) -> int:
                calls.append(v)
                if len(calls) == 1:
                    # Another process writes while the key runs: it must not be blocked by
                    # (SQLite) or invalidate and re-run (Redis) a unit open around the key.
                    _one_process(start_method, append_to_list, store_url, ns, "other", v)
                return v

            db["l"].sort(key=key)
            assert calls == [3, 1, 2] and db["l"]() == [1, 2, 3] and db["other"]() == [3]

            calls.clear()

            def meddling_key(v: int) -> int:
                calls.append(v)
                if len(calls) == 1:
                    _one_process(start_method, append_to_list, store_url, ns, "l", 0)
                return v

            with pytest.raises(ValueError, match="modified during sort"):
                db["l"].sort(key=meddling_key, reverse=True)
            assert calls == [1, 2, 3] and db["l"]() == [1, 2, 3, 0]
            assert db.check().ok

    @pytest.mark.parametrize("start_method", ["fork", "spawn"])
    def test_remove_eq_runs_once_while_another_process_appends(
        self, store_url: str, ns: str, start_method: str
    ) -> None:
        self._skip_unless_processes(store_url, ns, start_method)

        class Probe:
            calls = 0

            def __eq__(self, other: object) -> bool:
                Probe.calls += 1
                if Probe.calls == 1:
                    _one_process(start_method, append_to_list, store_url, ns, "l", "late")
                return other == "b"

            __hash__ = None  # type: ignore[assignment]

        with self._db(store_url, ns) as db:
            db["l"] = ["a", "b", "c"]
            db["l"].remove(Probe())
            # Compared with "a" and "b" once each; the retry after the other process's
            # append asks nothing again.
            assert Probe.calls == 2
            assert db["l"]() == ["a", "c", "late"]
            assert db.check().ok

    @pytest.mark.parametrize("start", ["thread", "fork", "spawn"])
    def test_read_idioms_never_fail_beside_a_replacing_writer(
        self, store_url: str, ns: str, tmp_path: Any, start: str
    ) -> None:
        """``db[k]()``, chained reads and list searches survive concurrent replacements.

        The writer replaces the document between a reader's fetching a handle
        and using it (in lockstep, then freely): an old handle must read its
        own version, whole, within the grace period (docs/concepts.md).
        """
        with self._db(store_url, ns) as db:
            if start != "thread" and not db.backend.capabilities.multiprocess:
                pytest.skip(f"{type(db.backend).__name__} cannot be shared between processes")
            db["big"] = lifetime_version(0)
        results = [os.path.join(str(tmp_path), name) for name in ("reader", "writer")]
        if start == "thread":
            sync: tuple[Any, Any, Any] = (
                threading.Semaphore(0),
                threading.Semaphore(0),
                threading.Event(),
            )
            workers: list[Any] = [
                threading.Thread(target=lifetime_reader, args=(store_url, ns, sync, results[0])),
                threading.Thread(target=lifetime_writer, args=(store_url, ns, sync, results[1])),
            ]
        else:
            ctx: Any = multiprocessing.get_context(start)
            sync = (ctx.Semaphore(0), ctx.Semaphore(0), ctx.Event())
            workers = [
                ctx.Process(target=lifetime_reader, args=(store_url, ns, sync, results[0])),
                ctx.Process(target=lifetime_writer, args=(store_url, ns, sync, results[1])),
            ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=300)
        for w in workers:
            if w.is_alive():
                if start != "thread":
                    w.kill()
                raise AssertionError(f"a {start} worker hung")
        outcomes = []
        for path in results:
            with open(path) as fh:
                outcomes.append(fh.read())
        assert outcomes[0].startswith("ok"), f"the reader failed:\n{outcomes[0]}"
        assert outcomes[1].startswith("ok"), f"the writer failed:\n{outcomes[1]}"
        assert int(outcomes[0].split()[1]) >= LIFETIME_LOCKSTEP
        last = LIFETIME_LOCKSTEP + LIFETIME_FREE_ROUNDS
        with self._db(store_url, ns) as db:
            assert db["big"]() == lifetime_version(last)
            report = db.check()
            assert report.ok, str(report)


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
